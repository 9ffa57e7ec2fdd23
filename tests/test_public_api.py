"""The public surface: every name in ``hourglass_tokenizer.__all__`` imports, module paths users know
keep working after the move of the plugin into ``core/``, and the core imports nothing from the tooling."""
from __future__ import annotations

import ast
import importlib
import os

import pytest

import hourglass_tokenizer

PACKAGE = os.path.dirname(hourglass_tokenizer.__file__)


@pytest.mark.parametrize("name", hourglass_tokenizer.__all__)
def test_every_public_name_imports(name):
    namespace: dict = {}
    exec(f"from hourglass_tokenizer import {name}", namespace)
    assert namespace[name] is getattr(hourglass_tokenizer, name)


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'wrap'"):
        hourglass_tokenizer.wrap  # noqa: B018


@pytest.mark.parametrize("path, names", [
    ("hourglass_tokenizer.wrapping", ["wrap_with_hot", "unwrap_hot", "is_hot", "HotState", "load_official_hot"]),
    ("hourglass_tokenizer.clustering", ["dpc_knn", "uniform", "resolve_selector", "SELECTORS"]),
    ("hourglass_tokenizer.training", ["TrainConfig", "train", "evaluate", "save_checkpoint", "load_checkpoint",
                                      "load_pretrained", "load_model", "predict", "main"]),
    ("hourglass_tokenizer.bench", ["benchmark", "count_macs", "main", "demo"]),
    ("hourglass_tokenizer.models", ["build_model", "available_models"]),
    ("hourglass_tokenizer.data", ["load_cmu", "PoseWindowDataset"]),
    ("hourglass_tokenizer.tuning", ["tune"]),
])
def test_module_paths_users_import_keep_working(path, names):
    module = importlib.import_module(path)
    assert all(hasattr(module, name) for name in names)
    if path in ("hourglass_tokenizer.wrapping", "hourglass_tokenizer.clustering"):  # thin re-exports of core/
        core = importlib.import_module(path.replace("hourglass_tokenizer.", "hourglass_tokenizer.core.")
                                       .replace("clustering", "selection"))
        assert all(getattr(module, name) is getattr(core, name) for name in names)


def _imports(path: str) -> set:
    """Modules a source file imports, relative ones resolved against the package."""
    tree = ast.parse(open(path, encoding="utf-8").read())
    package = os.path.relpath(os.path.dirname(path), os.path.dirname(PACKAGE)).replace(os.sep, ".")
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
            found.add(".".join(base + ([node.module] if node.module else [])))
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_the_core_imports_only_torch_einops_and_itself():
    core = os.path.join(PACKAGE, "core")
    for name in sorted(os.listdir(core)):
        if name.endswith(".py"):
            outside = {m for m in _imports(os.path.join(core, name))
                       if m.startswith("hourglass_tokenizer") and not m.startswith("hourglass_tokenizer.core")}
            assert outside == set(), f"core/{name} imports tooling: {outside}"
            third_party = {m.split(".")[0] for m in _imports(os.path.join(core, name))} - {
                "hourglass_tokenizer", "torch", "einops", "__future__"}
            assert all(importlib.util.find_spec(m).origin in (None, "built-in", "frozen")
                       or "site-packages" not in (importlib.util.find_spec(m).origin or "")
                       for m in third_party), f"core/{name} imports {third_party}"


def test_no_import_circles_in_the_package():
    graph = {}
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                module = os.path.relpath(path, os.path.dirname(PACKAGE))[:-3].replace(os.sep, ".")
                module = module[: -len(".__init__")] if module.endswith(".__init__") else module
                graph[module] = {m for m in _imports(path) if m in graph or m.startswith("hourglass_tokenizer")}
    graph = {m: {d for d in deps if d in graph and d != m} for m, deps in graph.items()}
    state: dict = {}

    def visit(module, trail):
        state[module] = "open"
        for dep in graph[module]:
            if dep.startswith(module + ".") and module.count(".") < dep.count("."):
                continue  # a package's __init__ re-exporting its own modules
            assert state.get(dep) != "open", f"import circle: {' -> '.join(trail + [dep])}"
            if dep not in state:
                visit(dep, trail + [dep])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
