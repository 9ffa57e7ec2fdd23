"""The bench command and the benchmark() function at tiny configurations."""
from __future__ import annotations

import csv
import os
import copy

import pytest
import torch
from torch import nn

from hourglass_tokenizer import bench
from hourglass_tokenizer.bench import cli as bench_cli
from hourglass_tokenizer.bench import timing as bench_timing


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
    # The speed-up column is the ratio of the two medians written next to it.
    assert float(hot["speedup"]) == pytest.approx(
        float(base["latency_ms_median"]) / float(hot["latency_ms_median"]), rel=1e-4)
    for row in rows:
        assert row["torch"] == torch.__version__ and row["threads"] == "1" and row["machine"]
        assert row["repeats"] == "2" and row["device"] == "cpu"


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
    assert cheap["repeats"] == 3 and base["batch"] == 3
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
    from hourglass_tokenizer.bench.flops import count_flops
    from hourglass_tokenizer.models import build_model

    analytic_macs = _paper_table_module().analytic_macs
    torch.manual_seed(0)
    model = build_model(name, "small", **overrides)
    x = torch.randn(1, model.num_frames, model.num_joints, model.in_chans)
    assert count_flops(model, x) == analytic_macs(name, model)
    hot = wrap_with_hot(copy.deepcopy(model), prune_block=prune_block, tokens=tokens, recover=recover,
                        selector="dpc_knn")  # the clustering the analytic count includes
    assert count_flops(hot, x) == analytic_macs(name, model, prune_block, tokens, recover)


def test_benchmark_statistics_from_known_times(monkeypatch) -> None:
    """Latency, quartiles, throughput and both speed-ups computed from given per-repeat times."""
    times = [[0.010, 0.020, 0.012], [0.004, 0.012, 0.008]]
    monkeypatch.setattr(bench_timing, "time_interleaved", lambda models, x, **kw: [list(t) for t in times])
    base, cheap = bench.benchmark(_Frames(20), _Frames(10), torch.randn(2, 20, 8), repeats=3, warmup=0)
    assert (base["latency_ms_median"], base["latency_ms_min"], base["latency_ms_max"]) == pytest.approx((12, 10, 20))
    assert (cheap["latency_ms_q1"], cheap["latency_ms_q3"]) == pytest.approx((6, 10))
    assert cheap["throughput_fps"] == pytest.approx(2 * 20 / 0.008)
    assert cheap["speedup"] == pytest.approx(1.5)  # ratio of the medians, 12 / 8
    assert cheap["speedup_paired"] == pytest.approx(20 / 12)  # median of 2.5, 20/12, 1.5
    assert cheap["speedup_vs_ideal"] == pytest.approx(1.5 / 2.0)
    assert base["speedup"] == pytest.approx(1.0) and base["ideal_speedup"] == pytest.approx(1.0)


class _Recorder(nn.Module):
    def __init__(self, name: str, log: list) -> None:
        super().__init__()
        self.name, self.log = name, log
        self.fc = nn.Linear(2, 2)

    def forward(self, x):
        self.log.append((self.name, self.training, torch.is_inference_mode_enabled()))
        return self.fc(x)


def test_time_interleaved_alternates_the_order_and_counts_progress() -> None:
    log: list = []
    a, b = _Recorder("a", log), _Recorder("b", log).train()
    a.fc.train(False)  # a frozen submodule keeps its own flag

    class Bar:
        n = 0

        def update(self, k):
            self.n += k

    bar = Bar()
    times = bench.time_interleaved([a, b], torch.randn(1, 2), repeats=3, warmup=1, progress=bar)
    assert [len(t) for t in times] == [3, 3] and all(v > 0 for t in times for v in t)
    assert [name for name, _, _ in log] == ["a", "b", "a", "b", "b", "a", "a", "b"]
    assert all(not training and inference for _, training, inference in log)
    assert bar.n == 8
    assert a.training and not a.fc.training and b.training and b.fc.training
    with pytest.raises(ValueError, match="repeats"):
        bench.time_interleaved([a], torch.randn(1, 2), repeats=0)


SMALL = ["--model", "mixste", "--config", "small", "--repeats", "1", "--warmup", "0", "--threads", "1"]


@pytest.mark.parametrize("argv, message", [
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--config", "h36m-81"], "--config 'h36m-81' is not a configuration of mixste; choose from paper, h36m-243"),
    (["--model", "vitpose"], "argument --model: invalid choice"),
    (["--repeats", "0"], "argument --repeats: must be at least 1, got 0"),
    (["--tokens", "x"], "argument --tokens: expected an integer, got 'x'"),
    (["--device", "gpu"], "--device 'gpu': expected cpu or cuda[:index]"),
    (SMALL + ["--tokens", "99", "--prune-block", "1"], "tokens must be an int in 1..frames (27), got 99"),
])
def test_command_line_mistakes_give_one_line_and_status_2(argv, message, capsys) -> None:
    assert bench.main(argv, prog="hot-bench") == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hot-bench: error: ") and message in lines[0]
    assert "e.g." not in lines[0]  # both numbers were given or none was needed


def test_cuda_without_a_gpu_is_a_one_line_error(monkeypatch, capsys) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert bench.main(["--device", "cuda"], prog="hot-bench") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--device cuda: no CUDA GPU is available" in err
    assert bench.demo(["--device", "cuda:1"], prog="demo") == 2


def test_wrap_hint_only_when_a_number_is_missing(capsys) -> None:
    # One number without the other: the hint names numbers that work for this model.
    assert bench.main(SMALL + ["--tokens", "9"], prog="hot-bench") == 2
    err = capsys.readouterr().err
    assert "give both --prune-block and --tokens, e.g. --prune-block 1 --tokens 9" in err
    assert bench.main(SMALL + ["--prune-block", "1", "--tokens", "9"], prog="hot-bench") == 0
    # The hint scales with the clip length; here it would be wrong for 27 frames.
    assert bench.main(SMALL + ["--frames", "12", "--prune-block", "2"], prog="hot-bench") == 2
    assert "e.g. --prune-block 1 --tokens 4" in capsys.readouterr().err
    # Both numbers given and wrong: the error names the argument and gives no hint.
    assert bench.main(SMALL + ["--prune-block", "9", "--tokens", "9"], prog="hot-bench") == 2
    err = capsys.readouterr().err
    assert "prune_block must be an int in 1..3" in err and "e.g." not in err


def test_help_lists_configs_and_names_the_command(monkeypatch, capsys) -> None:
    monkeypatch.setattr("sys.argv", ["/venv/bin/hot-bench", "--help"])
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: hot-bench ")
    out = " ".join(out.split())  # argparse wraps the help text
    from hourglass_tokenizer.models import available_models

    for model, configs in available_models().items():
        assert f"{model}: {', '.join(['paper'] + configs)}" in out
    monkeypatch.setattr("sys.argv", [os.path.join(os.path.dirname(os.path.dirname(bench.__file__)), "__main__.py"), "bench", "--bogus"])
    assert bench.main(["--bogus"]) == 2
    assert capsys.readouterr().err.startswith("python -m hourglass_tokenizer bench: error: ")
    assert bench.demo(["--bogus"]) == 2
    assert capsys.readouterr().err.startswith("python -m hourglass_tokenizer demo: error: ")


def test_module_command_exits_2_without_traceback() -> None:
    import os
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "hourglass_tokenizer", "bench", "--repeats", "-1"],
                          capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == ("python -m hourglass_tokenizer bench: error: argument --repeats: must be at "
                                   "least 1, got -1 (see python -m hourglass_tokenizer bench --help)")


def test_bench_shows_progress_over_every_forward(monkeypatch, capsys) -> None:
    bars = []

    class Bar:
        def __init__(self, total, desc, **options):
            self.total, self.n = total, 0
            bars.append(self)

        def update(self, k):
            self.n += k

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(bench_cli, "progress_bar", Bar)
    assert bench.main(["--model", "poseformer", "--config", "small", "--repeats", "3", "--warmup", "1",
                       "--threads", "1", "--prune-block", "1", "--tokens", "9"], prog="hot-bench") == 0
    assert [(b.total, b.n) for b in bars] == [(8, 8)]


def _no_timing(*args, **kwargs):
    raise AssertionError("an output-path mistake must be reported before any timing")


@pytest.mark.parametrize("option, make, extra, message", [
    ("--csv", "file", [], "already exists; choose another name or pass --overwrite"),
    ("--plot", "file", [], "already exists; choose another name or pass --overwrite"),
    ("--csv", "dir", [], "is a directory; give a file name"),
    ("--csv", "under_file", [], "is a file, not a folder"),
    ("--csv", "under_file", ["--overwrite"], "is a file, not a folder"),
])
def test_output_paths_are_checked_before_any_timing(tmp_path, monkeypatch, capsys, option, make, extra,
                                                    message) -> None:
    if option == "--plot":
        pytest.importorskip("matplotlib")
    monkeypatch.setattr(bench_cli, "benchmark", _no_timing)
    target = tmp_path / ("out.csv" if option == "--csv" else "out.png")
    if make == "file":
        target.write_text("an earlier result")
    elif make == "dir":
        target.mkdir()
    else:
        (tmp_path / "plain").write_text("a file")
        target = tmp_path / "plain" / "out.csv"
    assert bench.main(SMALL + [option, str(target)] + extra, prog="hot-bench") == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"hot-bench: error: {option} ") and message in lines[0]
    if make == "file":
        assert target.read_text() == "an earlier result"


def test_overwrite_replaces_the_csv_atomically(tmp_path, monkeypatch, capsys) -> None:
    target = tmp_path / "out.csv"
    target.write_text("an earlier result")
    assert bench.main(SMALL + ["--csv", str(target), "--overwrite"], prog="hot-bench") == 0
    assert len(_read_csv(target)) == 2 and "wrote " + str(target) in capsys.readouterr().out

    def full_disk(value):  # the header is written, then the disk fills up in the first row
        raise OSError(28, "No space left on device")

    before = target.read_bytes()
    monkeypatch.setattr(bench_timing, "_csv_value", full_disk)
    with pytest.raises(OSError, match="No space left"):
        bench.main(SMALL + ["--csv", str(target), "--overwrite"], prog="hot-bench")
    assert target.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["out.csv"]


def test_a_batch_too_large_for_memory_is_one_line(capsys) -> None:
    # 10^12 clips of 27 x 17 x 2 floats exceed any address space: the allocation fails at once.
    assert bench.main(SMALL + ["--batch", str(10 ** 12)], prog="hot-bench") == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("hot-bench: error: --batch 1000000000000: not enough memory") and "smaller" in lines[0]


def test_running_out_of_memory_in_a_forward_is_one_line_and_other_errors_stay_errors(monkeypatch, capsys) -> None:
    def out_of_memory(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: you "
                           "tried to allocate 9000000000 bytes. Error code 12 (Cannot allocate memory)")

    monkeypatch.setattr(bench_cli, "benchmark", out_of_memory)
    assert bench.main(SMALL + ["--prune-block", "1", "--tokens", "9", "--batch", "64"], prog="hot-bench") == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == ["hot-bench: error: --batch 64: not enough memory on cpu for this batch (9.0 GB asked for); "
                     "try a smaller --batch (see hot-bench --help)"]

    def a_bug(*args, **kwargs):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    monkeypatch.setattr(bench_cli, "benchmark", a_bug)
    with pytest.raises(RuntimeError, match="mat1 and mat2"):
        bench.main(SMALL + ["--prune-block", "1", "--tokens", "9"], prog="hot-bench")
