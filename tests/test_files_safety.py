"""Files users can trust (issue 14): no code runs from a checkpoint or a VideoPose3D file on any loading
path, legitimate files still load, and no output is half-written or lost when a write fails.

Each attack carries a payload whose unpickling calls ``os.system`` to create a marker file; the
control tests show that the payload is live (plain ``torch.load``/``np.load`` run it).
"""
import io
import json
import os
import pickle
import shlex
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch

from hourglass_tokenizer.data import PARENTS, PoseWindowDataset, project_clips
from hourglass_tokenizer.data.h36m import load_h36m_sequences
from hourglass_tokenizer.data.readers import DataLayoutError, load_h36m_2d, load_h36m_3d
from hourglass_tokenizer.files import FileReadError, OutputPathError, UnsafeFileError, atomic_write, load_npz
from hourglass_tokenizer.models import build_model
from hourglass_tokenizer.training import main as train_main
from hourglass_tokenizer.training.checkpoints import (load_checkpoint, load_model, load_pretrained,
                                                      save_checkpoint)
from hourglass_tokenizer.training.trainer import TrainConfig, train
from hourglass_tokenizer import wrap_with_hot

pytestmark = pytest.mark.usefixtures("one_thread")

T = 27


class _Payload:
    """Unpickling this runs ``touch MARKER`` (the attack of issue 14)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(self.marker)}",)


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / "PAYLOAD_RAN"
    yield path
    assert not path.exists(), "the payload ran"


def _model():
    torch.manual_seed(0)
    return build_model("mixste", "small", depth=2)


def _clips(n, length=60, seed=0):
    rng = np.random.default_rng(seed)
    clips = []
    for _ in range(n):
        rest = np.zeros((17, 3))
        for j in range(1, 17):
            rest[j] = rest[PARENTS[j]] + rng.normal(scale=0.15, size=3) + [0, 0.1, 0]
        t = np.arange(length)[:, None, None] / 50.0
        clips.append((rest + 0.05 * np.sin(2 * np.pi * t + rng.uniform(0, 6, (1, 17, 3))) + [0, 1, 0]
                      ).astype(np.float32))
    return clips


def _motion_file(path):
    """A motion .npz in the layout ``data bvh`` writes: two training clips and one test clip."""
    clips = _clips(3)
    offsets = np.cumsum([0] + [len(c) for c in clips])
    np.savez(path, positions=np.concatenate(clips), clip_offsets=offsets, fps=np.float32(50),
             clip_names=np.array(["a", "b", "c"]), split=np.array(["train", "train", "test"]))
    return str(path)


# -- the malicious files --------------------------------------------------------------------------

def _payload_checkpoint(path, marker):
    """The whole pickle is the payload."""
    torch.save(_Payload(marker), path)
    return str(path)


def _poisoned_checkpoint(path, marker, model=None):
    """A valid checkpoint of ``model`` with one extra malicious entry."""
    save_checkpoint(path, model or _model(), epoch=0, payload=_Payload(marker))
    return str(path)


def _videopose3d_files(folder, marker=None, poison="3d"):
    """data_3d_h36m.npz and data_2d_h36m_cpn_ft_h36m_dbb.npz in VideoPose3D's layout (pickled dicts:
    subject -> action -> (N, 32, 3) metres; subject -> action -> 4 cameras of (N, 17, 2) pixels, and
    metadata), with the payload inside the 3D dict or the 2D metadata when ``marker`` is given."""
    rng = np.random.default_rng(0)
    positions_3d = {"S1": {"Walking": rng.normal(size=(40, 32, 3)).astype(np.float32)}}
    positions_2d = {"S1": {"Walking": [rng.uniform(0, 1000, size=(40, 17, 2)).astype(np.float32) for _ in range(4)]}}
    metadata = {"layout_name": "h36m", "num_joints": 17, "keypoints_symmetry": [[4, 5, 6, 11, 12, 13],
                                                                                   [1, 2, 3, 14, 15, 16]]}
    if marker is not None and poison == "3d":
        positions_3d["S1"]["Evil"] = _Payload(marker)
    if marker is not None and poison == "2d":
        metadata["extra"] = _Payload(marker)
    os.makedirs(folder, exist_ok=True)
    np.savez_compressed(os.path.join(folder, "data_3d_h36m.npz"), positions_3d=positions_3d)
    np.savez_compressed(os.path.join(folder, "data_2d_h36m_cpn_ft_h36m_dbb.npz"), positions_2d=positions_2d,
                        metadata=metadata)
    return str(folder)


def test_the_payloads_are_live_when_loaded_the_unsafe_way(tmp_path, marker):
    torch.load(_poisoned_checkpoint(tmp_path / "c.pt", marker), weights_only=False)
    assert marker.exists()
    marker.unlink()
    folder = _videopose3d_files(tmp_path / "h36m", marker)
    np.load(os.path.join(folder, "data_3d_h36m.npz"), allow_pickle=True)["positions_3d"]
    assert marker.exists()
    marker.unlink()
    load_checkpoint(_payload_checkpoint(tmp_path / "p.pt", marker), trusted=True)  # the documented opt-in
    assert marker.exists()
    marker.unlink()


# -- checkpoints -----------------------------------------------------------------------------------

@pytest.mark.parametrize("attack", ["payload", "poisoned"])
@pytest.mark.parametrize("path_name", ["load_checkpoint", "load_pretrained", "load_model", "train_resume",
                                       "train_resume_auto"])
def test_no_checkpoint_loading_path_runs_the_payload(tmp_path, marker, attack, path_name):
    make = _payload_checkpoint if attack == "payload" else _poisoned_checkpoint
    out = tmp_path / "run"
    out.mkdir()
    bad = make(out / "last.pt" if path_name == "train_resume_auto" else tmp_path / "bad.pt", marker)
    loaders = {
        "load_checkpoint": lambda: load_checkpoint(bad),
        "load_pretrained": lambda: load_pretrained(wrap_with_hot(_model(), 1, 9), bad),
        "load_model": lambda: load_model(bad, name="mixste", config="small", model_kwargs={"depth": 2}),
        "train_resume": lambda: train(_model(), _window_set(), None, _train_config(out, resume=bad)),
        "train_resume_auto": lambda: train(_model(), _window_set(), None, _train_config(out, resume="auto")),
    }
    with pytest.raises(UnsafeFileError, match=r"(posix|os)\.system") as caught:
        loaders[path_name]()
    assert bad in str(caught.value) and "trusted=True" in str(caught.value)
    assert "\n" not in str(caught.value)


def _window_set():
    return PoseWindowDataset(project_clips(_clips(1), 1, seed=0), T, stride=9)


def _train_config(out, **kw):
    return TrainConfig(epochs=1, steps_per_epoch=1, batch_size=2, progress=False, verbose=False,
                       out_dir=str(out), **kw)


def test_bad_checkpoint_files_are_one_line_errors(tmp_path):
    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint at all" * 10)
    good = tmp_path / "good.pt"
    save_checkpoint(good, _model())
    (tmp_path / "truncated.pt").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    for name, expected in (("empty.pt", "is empty"), ("garbage.pt", "not a readable torch file"),
                           ("truncated.pt", "not a readable torch file"), ("missing.pt", "does not exist"),
                           ("", "is a directory")):
        with pytest.raises(FileReadError, match=expected) as caught:
            load_checkpoint(tmp_path / name)
        assert "\n" not in str(caught.value)


def test_own_and_upstream_style_checkpoints_load_without_trust(tmp_path):
    plain, hot = _model(), wrap_with_hot(_model(), 1, 9, recover="tra")
    save_checkpoint(tmp_path / "plain.pt", plain, epoch=3, history=[{"mpjpe": np.float64(50.0)}])
    save_checkpoint(tmp_path / "hot.pt", hot, torch.optim.AdamW(hot.parameters()), epoch=1)
    assert load_checkpoint(tmp_path / "plain.pt")["epoch"] == 3
    assert load_checkpoint(tmp_path / "hot.pt")["hot"]["tokens"] == 9
    # Upstream training scripts store numpy values next to the weights (a numpy RandomState's state,
    # a numpy min_loss), pickled by numpy 1 under the module name numpy.core.
    upstream = {"epoch": 80, "lr": 1e-4, "random_state": np.random.RandomState(1).get_state(),
                "min_loss": np.float64(41.7), "model_pos": {"module." + k: v for k, v in plain.state_dict().items()}}
    torch.save(upstream, tmp_path / "upstream.bin")
    _as_numpy1_pickle(tmp_path / "upstream.bin")
    loaded = load_checkpoint(tmp_path / "upstream.bin")
    assert loaded["min_loss"] == 41.7 and loaded["random_state"][1].dtype == np.uint32
    assert torch.equal(loaded["model_pos"]["module.Spatial_patch_to_embedding.weight"],
                       plain.state_dict()["Spatial_patch_to_embedding.weight"])


def _as_numpy1_pickle(path):
    """Rewrite a torch file's pickle as numpy 1 writes it (``numpy.core`` for ``numpy._core``)."""
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    pkl = next(name for name in members if name.endswith("data.pkl"))
    assert b"numpy._core.multiarray" in members[pkl]
    members[pkl] = members[pkl].replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


# -- VideoPose3D files -----------------------------------------------------------------------------

@pytest.mark.parametrize("poison", ["3d", "2d"])
def test_no_videopose3d_loading_path_runs_the_payload(tmp_path, marker, poison):
    folder = _videopose3d_files(tmp_path / "h36m", marker, poison)
    name = "data_3d_h36m.npz" if poison == "3d" else "data_2d_h36m_cpn_ft_h36m_dbb.npz"
    loaders = [lambda: load_h36m_sequences(folder, ["S1"])]
    loaders.append((lambda: load_h36m_3d(os.path.join(folder, name))) if poison == "3d"
                   else (lambda: load_h36m_2d(os.path.join(folder, name))))
    for load in loaders:
        with pytest.raises(DataLayoutError, match=r"refused .*(posix|os)\.system") as caught:
            load()
        message = str(caught.value)
        assert os.path.join(folder, name) in message and "\n" not in message


def test_videopose3d_files_in_the_exact_layout_still_load(tmp_path):
    folder = _videopose3d_files(tmp_path / "h36m")
    sequences = load_h36m_sequences(folder, ["S1"])
    assert [(s.subject, s.action, s.camera) for s in sequences] == [("S1", "Walking", c) for c in range(4)]
    # The published files were prepared with numpy 1: pickle protocol 3, helpers named numpy.core.multiarray.
    path = os.path.join(folder, "data_2d_h36m_cpn_ft_h36m_dbb.npz")
    with np.load(path, allow_pickle=True) as archive:
        entries = {key: archive[key].item() for key in archive.files}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for key, value in entries.items():
            array, member = np.array(value, dtype=object), io.BytesIO()
            np.lib.format.write_array_header_1_0(member, np.lib.format.header_data_from_array_1_0(array))
            data = pickle.dumps(array, protocol=3)
            assert b"numpy._core.multiarray" in data
            member.write(data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
            archive.writestr(key + ".npy", member.getvalue())
    positions, metadata = load_h36m_2d(path)
    assert metadata["keypoints_symmetry"] == [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]]
    assert len(positions["S1"]["Walking"]) == 4 and positions["S1"]["Walking"][0].shape == (40, 17, 2)


def test_restricted_unpickler_admits_plain_data_and_numpy_only(tmp_path):
    values = {"ok": {"a": [1, 2.5, "x", None, True], "b": np.arange(3, dtype=np.int16), "c": np.float64(2.0)}}
    np.savez(tmp_path / "ok.npz", **{k: np.array(v, dtype=object) for k, v in values.items()},
             plain=np.ones((2, 3), dtype=np.float32, order="F"))
    loaded = load_npz(tmp_path / "ok.npz")
    assert loaded["ok"].item()["a"] == [1, 2.5, "x", None, True] and loaded["ok"].item()["c"] == 2.0
    np.testing.assert_array_equal(loaded["plain"], np.ones((2, 3)))
    # A global that is harmless but not plain data is refused all the same: an allow-list.
    np.savez(tmp_path / "set.npz", s=np.array({"s": io.BytesIO}, dtype=object))
    with pytest.raises(UnsafeFileError, match=r"_io\.BytesIO"):
        load_npz(tmp_path / "set.npz")


# -- the command line --------------------------------------------------------------------------------

def _cli_case(kind, tmp_path, marker):
    common = ["--model", "mixste", "--config", "small", "--frames", str(T), "--model-arg", "depth=2",
              "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "2", "--cameras", "1", "--no-progress",
              "--eval-frame-stride", "9"]
    if kind == "init-from":
        return common + ["--data", _motion_file(tmp_path / "motion.npz"), "--out", str(tmp_path / "out"),
                         "--init-from", _poisoned_checkpoint(tmp_path / "pretrained.pt", marker)]
    if kind == "resume":
        (tmp_path / "out").mkdir()
        _poisoned_checkpoint(tmp_path / "out" / "last.pt", marker)  # planted in the run folder
        return common + ["--data", _motion_file(tmp_path / "motion.npz"), "--out", str(tmp_path / "out"), "--resume"]
    folder = _videopose3d_files(tmp_path / "h36m", marker)
    return common + ["--dataset", "h36m", "--data-dir", folder, "--out", str(tmp_path / "out")]


def _run_cli(argv, capsys):
    try:
        code = train_main(argv)
    except SystemExit as exc:
        code = exc.code
    except Exception as exc:  # noqa: BLE001 - what escaped is the finding
        code = exc
    return code, capsys.readouterr().err


@pytest.mark.parametrize("kind", ["init-from", "resume", "h36m"])
def test_cli_never_runs_the_payload(tmp_path, marker, capsys, kind):
    code, _ = _run_cli(_cli_case(kind, tmp_path, marker), capsys)
    assert code != 0


@pytest.mark.parametrize("kind", ["init-from", "resume", "h36m"])
def test_cli_reports_an_unsafe_file_in_one_line(tmp_path, marker, capsys, kind):
    code, err = _run_cli(_cli_case(kind, tmp_path, marker), capsys)
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("hot-train: error: ") and "system" in lines[0]


class _Legacy:
    """A harmless object of the kind old training scripts pickled beside the weights (their argparse
    options): refused by default like any non-plain object, accepted when the user vouches for the file."""

    def __init__(self):
        self.lr = 0.1


@pytest.mark.parametrize("kind", ["init-from", "resume"])
def test_a_legacy_checkpoint_loads_only_with_trust_checkpoint(tmp_path, capsys, kind):
    argv = _cli_case("init-from" if kind == "init-from" else "resume", tmp_path, tmp_path / "unused")
    path = argv[argv.index("--init-from") + 1] if kind == "init-from" else str(tmp_path / "out" / "last.pt")
    save_checkpoint(path, _model(), epoch=-1, options=_Legacy())  # -1: no epoch finished yet
    code, err = _run_cli(argv, capsys)
    assert code == 2 and "--trust-checkpoint" in err and len(err.strip().splitlines()) == 1
    code, err = _run_cli(argv + ["--trust-checkpoint"], capsys)
    assert code == 0, err


# -- data loss ---------------------------------------------------------------------------------------

def _listing(folder):
    return sorted(os.listdir(folder))


def test_a_failed_checkpoint_save_keeps_the_previous_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint(path, _model(), epoch=4)
    before = path.read_bytes()

    def failing_save(obj, target, *args, **kwargs):
        with open(target, "wb") as fh:
            fh.write(before[:1000])  # half-written, then the disk is full
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="No space"):
        save_checkpoint(path, _model(), epoch=5)
    assert path.read_bytes() == before and _listing(tmp_path) == ["last.pt"]
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 4


def test_a_directory_as_checkpoint_path_is_refused_and_nothing_is_left(tmp_path):
    (tmp_path / "runs").mkdir()
    with pytest.raises(OutputPathError, match="is a directory"):
        save_checkpoint(tmp_path / "runs", _model())
    assert _listing(tmp_path) == ["runs"] and _listing(tmp_path / "runs") == []


def test_failed_csv_and_png_writes_keep_the_previous_files(tmp_path, monkeypatch):
    import csv

    import matplotlib.figure

    from hourglass_tokenizer.bench.timing import plot_rows, write_csv

    rows = [_bench_row(i) for i in range(3)]
    write_csv(rows, str(tmp_path / "bench.csv"))
    plot_rows(rows, str(tmp_path / "bench.png"))
    before = {name: (tmp_path / name).read_bytes() for name in ("bench.csv", "bench.png")}
    assert before["bench.png"].startswith(b"\x89PNG")

    calls = []

    def failing_row(self, row):
        calls.append(row)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return self.writer.writerow(list(row.values()))

    def failing_savefig(self, target, **kwargs):
        with open(target, "wb") as fh:
            fh.write(b"\x89PNG partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(csv.DictWriter, "writerow", failing_row)
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", failing_savefig)
    for write in (lambda: write_csv(rows, str(tmp_path / "bench.csv")),
                  lambda: plot_rows(rows, str(tmp_path / "bench.png"))):
        with pytest.raises(OSError, match="No space"):
            write()
    assert {name: (tmp_path / name).read_bytes() for name in before} == before
    assert _listing(tmp_path) == ["bench.csv", "bench.png"]


def _bench_row(i):
    return {"variant": f"v{i}", "macs": 1e9 * (i + 1), "latency_ms_median": 10.0 + i, "latency_ms_q1": 9.0 + i,
            "latency_ms_q3": 11.0 + i, "speedup": 1.0 + i, "batch": 1, "machine": "m", "torch": "t", "threads": 1}


_DISK_FULL_SCRIPT = r"""
import json, resource, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot
import torch
from hourglass_tokenizer.bench.timing import plot_rows, write_csv
from hourglass_tokenizer.models import build_model
from hourglass_tokenizer.training.checkpoints import save_checkpoint

folder, rows = sys.argv[1], json.loads(sys.argv[2])
model = build_model("mixste", "small", depth=2)
limit = 4096  # bytes per file: every write below needs more
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
failed = {}
for name, write in (("last.pt", lambda p: save_checkpoint(p, model, epoch=9)),
                    ("bench.csv", lambda p: write_csv(rows * 50, p)),
                    ("bench.png", lambda p: plot_rows(rows, p))):
    try:
        write(f"{folder}/{name}")
        failed[name] = None
    except BaseException as exc:
        failed[name] = type(exc).__name__
print(json.dumps(failed))
"""


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "darwin", reason="RLIMIT_FSIZE as on Linux")
def test_disk_full_for_real_keeps_every_previous_file(tmp_path):
    from hourglass_tokenizer.bench.timing import plot_rows, write_csv

    rows = [_bench_row(i) for i in range(3)]
    save_checkpoint(tmp_path / "last.pt", _model(), epoch=4)
    write_csv(rows, str(tmp_path / "bench.csv"))
    plot_rows(rows, str(tmp_path / "bench.png"))
    before = {name: (tmp_path / name).read_bytes() for name in _listing(tmp_path)}
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", _DISK_FULL_SCRIPT, str(tmp_path), json.dumps(rows)],
                          capture_output=True, text=True, env=env, timeout=300,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert done.returncode == 0, done.stderr[-2000:]
    failed = json.loads(done.stdout.strip().splitlines()[-1])
    assert all(failed.values()), failed  # each write really hit the limit
    assert {name: (tmp_path / name).read_bytes() for name in _listing(tmp_path)} == before
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 4


def test_atomic_write_keeps_the_replaced_files_permissions(tmp_path):
    old = tmp_path / "shared.csv"
    old.write_text("old")
    os.chmod(old, 0o640)
    with atomic_write(old) as tmp:
        assert os.path.dirname(tmp) == str(tmp_path) and tmp.endswith(".csv")
        with open(tmp, "w") as fh:
            fh.write("new")
    assert old.read_text() == "new" and os.stat(old).st_mode & 0o777 == 0o640
    umask = os.umask(0o022)
    try:
        with atomic_write(tmp_path / "fresh.csv") as tmp:
            open(tmp, "w").close()
    finally:
        os.umask(umask)
    assert os.stat(tmp_path / "fresh.csv").st_mode & 0o777 == 0o644  # not mkstemp's private 0o600
    assert _listing(tmp_path) == ["fresh.csv", "shared.csv"]

