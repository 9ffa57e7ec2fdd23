"""The bench command and the benchmark() function at tiny configurations."""
from __future__ import annotations

import csv
import copy

import pytest
import torch
from torch import nn

from hourglass_tokenizer import bench


def _read_csv(path) -> list:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_bench_command_prints_both_rows_and_writes_csv(tmp_path, capsys) -> None:
    out = tmp_path / "bench.csv"
    rc = bench.main(["--model", "mixste", "--config", "small", "--tokens", "9", "--prune-block", "2",
                     "--repeats", "2", "--warmup", "0", "--threads", "1", "--csv", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "mixste-27" in printed and "HoT (2, 9)" in printed
    assert "torch " + torch.__version__ in printed and "threads 1" in printed
    rows = _read_csv(out)
    assert len(rows) == 2
    base, hot = rows
    assert base["variant"] == "mixste-27" and hot["variant"] == "HoT (2, 9)"
    assert (hot["prune_block"], hot["tokens"], hot["recover"]) == ("2", "9", "tra")
    assert int(hot["macs"]) < int(base["macs"])
    assert int(hot["paper_flops"]) == 2 * int(hot["macs"])
    assert int(hot["params"]) > int(base["params"])  # TRA and the token embedding are new parameters
    assert float(hot["ideal_speedup"]) == pytest.approx(int(base["macs"]) / int(hot["macs"]), rel=1e-4)
    for row in rows:
        assert row["torch"] == torch.__version__ and row["threads"] == "1" and row["machine"]
        assert float(row["latency_ms_min"]) <= float(row["latency_ms_median"]) <= float(row["latency_ms_max"])


def test_bench_tpc_only_and_plot(tmp_path, capsys) -> None:
    pytest.importorskip("matplotlib")
    png = tmp_path / "bench.png"
    rc = bench.main(["--model", "motionbert", "--config", "small", "--tokens", "9", "--prune-block", "1",
                     "--no-recover", "--repeats", "1", "--warmup", "0", "--threads", "1", "--plot", str(png)])
    assert rc == 0
    assert "HoT TPC-only (1, 9)" in capsys.readouterr().out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


class _Frames(nn.Module):
    """A stand-in "model": per-frame linear layers, so half the frames cost half the MACs."""

    def __init__(self, frames: int) -> None:
        super().__init__()
        self.frames = frames
        self.fc = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x[:, : self.frames])


def test_benchmark_function_rows() -> None:
    full, half = _Frames(20), _Frames(10)
    x = torch.randn(3, 20, 8)
    rows = bench.benchmark(full.train(), half, x, repeats=3, warmup=1, labels=("full", "half"))
    assert [r["variant"] for r in rows] == ["full", "half"]
    assert full.training  # timing restores the training flag
    base, cheap = rows
    assert base["macs"] == 20 * 8 * 8 and cheap["macs"] == 10 * 8 * 8  # per clip, batch 1
    assert cheap["macs_ratio"] == pytest.approx(0.5) and cheap["ideal_speedup"] == pytest.approx(2.0)
    assert cheap["macs_reduction_pct"] == pytest.approx(50.0)
    assert base["throughput_fps"] == pytest.approx(3 * 20 / (base["latency_ms_median"] / 1e3))
    assert base["speedup"] == 1.0 and cheap["repeats"] == 3 and base["batch"] == 3
    # Several candidates against one reference, interleaved in one run.
    rows = bench.benchmark(full, {"a": half, "b": copy.deepcopy(half)}, x, repeats=2, warmup=0)
    assert [r["variant"] for r in rows] == ["original", "a", "b"]


def test_format_table_has_one_line_per_row() -> None:
    rows = bench.benchmark(_Frames(20), _Frames(10), torch.randn(1, 20, 8), repeats=2, warmup=0)
    table = bench.format_table(rows)
    assert len(table.splitlines()) == 2 + len(rows)
    assert "MACs red." in table and "50.0%" in table


def _paper_table_module():
    import importlib.util
    import os

    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks", "paper_table.py")
    import sys

    if "paper_table" in sys.modules:
        return sys.modules["paper_table"]
    spec = importlib.util.spec_from_file_location("paper_table", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["paper_table"] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name, overrides, prune_block, tokens, recover", [
    ("mixste", {"num_frames": 30}, 2, 9, True),
    ("mixste", {"num_frames": 30}, 3, 10, False),
    ("motionbert", {"maxlen": 30}, 1, 9, True),
    ("poseformer", {"num_frames": 31}, 1, 9, False),
])
def test_wrapped_macs_match_the_analytic_count(name, overrides, prune_block, tokens, recover) -> None:
    """The benchmark script's hand-derived MAC counts equal fvcore's, original and HoT: the
    wrapper runs the pruned blocks on exactly ``tokens`` frames and adds only TPC and TRA."""
    from hourglass_tokenizer import wrap_with_hot
    from hourglass_tokenizer.flops import count_flops
    from hourglass_tokenizer.models import build_model

    analytic_macs = _paper_table_module().analytic_macs
    torch.manual_seed(0)
    model = build_model(name, "small", **overrides)
    x = torch.randn(1, model.num_frames, model.num_joints, model.in_chans)
    assert count_flops(model, x) == analytic_macs(name, model)
    hot = wrap_with_hot(copy.deepcopy(model), prune_block=prune_block, tokens=tokens, recover=recover)
    assert count_flops(hot, x) == analytic_macs(name, model, prune_block, tokens, recover)
