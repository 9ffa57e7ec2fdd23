"""``tune``: the cheapest training-free setting within an error budget (API and command), on a small
MixSTE and generated motion."""
import argparse
import copy
import json
import os

import numpy as np
import pytest
import torch

from hourglass_tokenizer import wrap_with_hot
from hourglass_tokenizer.models import build_model
from hourglass_tokenizer.tuning import TuneError, read_hot_config, search, tune, write_results

SMALL = dict(num_frames=9, embed_dim=16, depth=3, num_heads=2, mlp_hidden_dim=32)
SMALL_ARGS = [f"--model-arg={k}={v}" for k, v in SMALL.items() if k != "num_frames"] + ["--frames", "9"]


def small_model(seed=0, **overrides):
    torch.manual_seed(seed)
    return build_model("mixste", "small", **{**SMALL, **overrides}).eval()


def walking_sequences(count=3, frames=40, joints=17, seed=0):
    """Smooth random 3D motion (metres) and a fixed linear 2D view of it."""
    g = np.random.default_rng(seed)
    seqs = []
    for _ in range(count):
        pose = g.normal(scale=0.2, size=(1, joints, 3)) + np.cumsum(g.normal(scale=0.01, size=(frames, joints, 3)), 0)
        seqs.append(((pose[..., :2] * 2).astype(np.float32), pose.astype(np.float32)))
    return seqs


def fake_macs(model, window):
    """MACs as if every block cost the same per frame (fvcore's trace is slow for a test)."""
    hot = getattr(model, "hot", None)
    if hot is None:
        return 3 * 9 * 1000
    return 1000 * (hot.prune_block * 9 + (3 - hot.prune_block) * hot.tokens) + (hot.recover == "nearest")


def fake_mpjpe(monkeypatch, penalty):
    """Score wrapped models with ``penalty(prune_block, tokens, selector, recover)`` percent over 50 mm, and
    count their MACs with :func:`fake_macs`."""
    monkeypatch.setattr(search, "count_macs", fake_macs)
    def evaluate(model, data, **kwargs):
        hot = getattr(model, "hot", None)
        mpjpe = 50.0 if hot is None else 50.0 * (1 + penalty(hot.prune_block, hot.tokens, hot.selector, hot.recover) / 100)
        return {"mpjpe": mpjpe, "p_mpjpe": mpjpe, "frames": 120}
    monkeypatch.setattr(search, "evaluate", evaluate)


def monotone_penalty(p, f, selector, recover):
    """Error falls with tokens and depth; uniform and interpolate are the best pair."""
    bonus = {"uniform": 0.0, "dpc_knn_coverage": 0.5, "dpc_knn": 2.0}[selector]
    return 40.0 / (f * p) + bonus + {"interpolate": 0.0, "interpolate+residual": 1.0, "nearest": 3.0}[recover]


def test_finds_the_cheapest_setting_of_the_whole_grid_without_scoring_it(monkeypatch):
    fake_mpjpe(monkeypatch, monotone_penalty)
    model = small_model()
    result = tune(model, walking_sequences(), max_increase=6.0, progress=False)
    # The whole grid, scored by brute force with the same MACs counter.
    best = None
    for p in (1, 2):
        for f in range(2, 9):
            change = monotone_penalty(p, f, "uniform", "interpolate")
            if change <= 6.0:
                macs = fake_macs(wrap_with_hot(copy.deepcopy(model), p, f, recover="interpolate"), None)
                best = min(best or (macs, p, f), (macs, p, f))
    assert result.chosen == dict(prune_block=best[1], tokens=best[2], selector="uniform", recover="interpolate")
    grid = 2 * 7 * len(search.DEFAULT_SELECTORS) * len(search.DEFAULT_RECOVERS)
    assert len(result.rows) < grid / 3
    screened = [r for r in result.rows if r.stage == "screen"]
    assert len(screened) == len(search.DEFAULT_SELECTORS) * len(search.DEFAULT_RECOVERS)
    assert {(r.selector, r.recover) for r in result.rows if r.stage == "search"} <= {
        ("uniform", "interpolate"), ("dpc_knn_coverage", "interpolate")}


def test_the_chosen_setting_is_the_cheapest_within_the_budget_in_its_own_table(one_thread):
    model = small_model()
    seqs = walking_sequences()
    result = tune(model, seqs, max_increase=2.0, selectors=("uniform", "dpc_knn"), progress=False)
    fits = [r for r in result.rows if r.change_pct <= 2.0]
    assert result.chosen_row in fits
    assert result.chosen_row.macs_ratio == min(r.macs_ratio for r in fits)
    # The table's numbers are the model's own: rescoring the chosen setting gives the same MPJPE.
    from hourglass_tokenizer.training import evaluate
    again = evaluate(wrap_with_hot(copy.deepcopy(model), **result.chosen), seqs)["mpjpe"]
    assert again == pytest.approx(result.chosen_row.mpjpe, rel=1e-6)
    assert result.baseline_mpjpe == pytest.approx(evaluate(model, seqs)["mpjpe"], rel=1e-6)
    assert not hasattr(model, "hot")  # the user's model is never wrapped


def test_hot_json_round_trips_into_wrap_with_hot(tmp_path, monkeypatch, one_thread):
    fake_mpjpe(monkeypatch, monotone_penalty)
    model = small_model()
    result = tune(model, walking_sequences(), max_increase=10.0, progress=False)
    written = write_results(result, str(tmp_path))
    assert {os.path.basename(p) for p in written} >= {"hot.json", "tune.csv"}
    with open(tmp_path / "hot.json") as fh:
        settings = json.load(fh)
    assert settings == result.chosen == read_hot_config(str(tmp_path / "hot.json"))
    from_file = wrap_with_hot(copy.deepcopy(model), **settings)
    direct = wrap_with_hot(copy.deepcopy(model), prune_block=result.chosen_row.prune_block,
                           tokens=result.chosen_row.tokens, selector=result.chosen_row.selector,
                           recover=result.chosen_row.recover)
    x = torch.randn(2, 9, 17, 2)
    with torch.no_grad():
        assert torch.equal(from_file(x), direct(x))
    assert (from_file.hot.prune_block, from_file.hot.tokens) == (settings["prune_block"], settings["tokens"])
    rows = (tmp_path / "tune.csv").read_text().splitlines()
    assert len(rows) == 1 + len(result.rows)
    assert sum(line.split(",")[-1] == "True" for line in rows[1:]) == 1  # one chosen row


def test_an_impossible_budget_keeps_the_best_found_and_chooses_nothing(tmp_path, monkeypatch):
    fake_mpjpe(monkeypatch, monotone_penalty)
    result = tune(small_model(), walking_sequences(), max_increase=0.1, progress=False)
    assert result.chosen is None and result.chosen_row is None
    assert result.closest_row.change_pct == min(r.change_pct for r in result.rows)
    written = write_results(result, str(tmp_path))
    assert not (tmp_path / "hot.json").exists() and (tmp_path / "tune.csv").exists()
    assert all("hot.json" not in p for p in written)


def test_the_time_budget_stops_the_search(monkeypatch):
    fake_mpjpe(monkeypatch, monotone_penalty)
    clock = iter(range(0, 10_000, 10))  # every call of time.time() is 10 s later
    monkeypatch.setattr(search.time, "time", lambda: next(clock))
    result = tune(small_model(), walking_sequences(), max_increase=6.0, time_budget=100, progress=False)
    assert not result.complete
    assert 0 < len(result.rows) < len(search.DEFAULT_SELECTORS) * len(search.DEFAULT_RECOVERS)


def test_data_that_does_not_fit_the_model_is_one_clear_error():
    with pytest.raises(TuneError, match="does not fit the model.*16 joints"):
        tune(small_model(), walking_sequences(joints=16), progress=False)
    with pytest.raises(TuneError, match="predicts 17 joints"):
        tune(small_model(), [(a, b[:, :15]) for a, b in walking_sequences()], progress=False)
    with pytest.raises(ValueError, match="already wrapped"):
        tune(wrap_with_hot(small_model(), 1, 3), walking_sequences(), progress=False)


# --- the command ----------------------------------------------------------------------------------


def motion_file(path, joints=17):
    """Two train and two test clips of smooth random motion, in the layout 'data bvh' writes."""
    g = np.random.default_rng(1)
    lengths = [30, 25, 40, 33]
    start = g.normal(scale=0.2, size=(1, joints, 3)) + [0, 1, 0]
    positions = np.concatenate([start + np.cumsum(g.normal(scale=0.01, size=(n, joints, 3)), 0) for n in lengths])
    np.savez(path, positions=positions.astype(np.float32), clip_offsets=np.cumsum([0] + lengths),
             clip_names=np.array(["a", "b", "c", "d"]), split=np.array(["train", "test", "train", "test"]),
             fps=np.float64(50))
    return str(path)


def tune_command(tmp_path, *extra, out="tune", **model_overrides):
    from hourglass_tokenizer.training import save_checkpoint
    from hourglass_tokenizer.tuning.cli import main

    ckpt = tmp_path / f"pretrained{''.join(f'_{k}{v}' for k, v in model_overrides.items())}.pt"
    if not ckpt.exists():
        save_checkpoint(str(ckpt), small_model(**model_overrides))
    model_args = SMALL_ARGS + [f"--model-arg={k}={v}" for k, v in model_overrides.items()]
    return main(["--data", motion_file(tmp_path / "motion.npz"), *model_args, "--init-from", str(ckpt),
                 "--out", str(tmp_path / out), "--threads", "1", "--no-progress", "--prune-blocks", "1",
                 "--tokens", "2,4,6", "--selectors", "uniform,dpc_knn", "--recovers", "interpolate", *extra])


def test_the_command_writes_a_hot_json_that_train_and_bench_read(tmp_path, capsys):
    assert tune_command(tmp_path, "--max-increase", "1000") == 0
    out = capsys.readouterr().out
    settings = json.loads((tmp_path / "tune" / "hot.json").read_text())
    assert settings["prune_block"] == 1 and settings["tokens"] == 2  # anything goes within +1000 %
    assert "chosen (1, 2)" in out and (tmp_path / "tune" / "tune.csv").exists()

    from hourglass_tokenizer.bench.cli import main as bench
    assert bench(["--model", "mixste", "--config", "small", "--hot-config", str(tmp_path / "tune" / "hot.json"),
                  "--tokens", "3", "--repeats", "1", "--warmup", "0", "--threads", "1"]) == 0
    assert "HoT (1, 3)" in capsys.readouterr().out  # a flag given on the command line wins over the file

    from hourglass_tokenizer.training import load_checkpoint
    from hourglass_tokenizer.training.cli import main as train
    assert train(["--data", str(tmp_path / "motion.npz"), *SMALL_ARGS, "--hot-config",
                  str(tmp_path / "tune" / "hot.json"), "--init-from", str(tmp_path / "pretrained.pt"),
                  "--max-steps", "1", "--epochs", "1", "--batch-size", "2", "--out", str(tmp_path / "ft"),
                  "--no-progress", "--threads", "1"]) == 0
    hot = load_checkpoint(str(tmp_path / "ft" / "last.pt"))["hot"]
    assert {k: hot[k] for k in settings} == settings


def test_an_impossible_budget_exits_1_with_one_line(tmp_path, capsys):
    assert tune_command(tmp_path, "--max-increase", "-90") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no setting is within +-90 %; the best found is (1, " in err[0]
    assert not (tmp_path / "tune" / "hot.json").exists() and (tmp_path / "tune" / "tune.csv").exists()


def test_misfit_data_and_earlier_results_are_one_line_usage_errors(tmp_path, capsys):
    assert tune_command(tmp_path, num_joints=16) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not fit the model" in err[0] and "17 joints" in err[0]
    (tmp_path / "tune").mkdir()
    (tmp_path / "tune" / "tune.csv").write_text("earlier")
    assert tune_command(tmp_path) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--overwrite" in err[0]
    assert (tmp_path / "tune" / "tune.csv").read_text() == "earlier"


def test_the_command_tunes_a_user_factory_that_loads_its_own_weights(tmp_path, capsys):
    from hourglass_tokenizer.tuning.cli import main

    torch.save(small_model(seed=3).state_dict(), tmp_path / "weights.pt")
    factory = tmp_path / "my_model.py"
    factory.write_text(
        "import torch\nfrom hourglass_tokenizer.models import build_model\n\n"
        "def build():\n"
        f"    model = build_model('mixste', 'small', **{SMALL!r})\n"
        f"    model.load_state_dict(torch.load({str(tmp_path / 'weights.pt')!r}))\n"
        "    return model\n")
    assert main(["--data", motion_file(tmp_path / "motion.npz"), "--model", f"{factory}:build", "--out",
                 str(tmp_path / "out"), "--no-progress", "--prune-blocks", "1", "--tokens", "3,6",
                 "--selectors", "uniform", "--recovers", "interpolate", "--max-increase", "1000"]) == 0
    settings = json.loads((tmp_path / "out" / "hot.json").read_text())
    assert settings == dict(prune_block=1, tokens=3, selector="uniform", recover="interpolate")
    # The baseline the command scored is the factory's trained model, not a fresh one.
    from hourglass_tokenizer.training import evaluate
    from hourglass_tokenizer.training.datasets import make_test_set
    args = argparse.Namespace(dataset="mocap", data=str(tmp_path / "motion.npz"), data_dir=None, split_by=None,
                              max_test_clips=None, cameras=4, noise_px=0.0, seed=0)
    expected = evaluate(small_model(seed=3), make_test_set(args, 9))["mpjpe"]
    assert f"MPJPE {expected:.2f} mm" in capsys.readouterr().out


def test_wall_times_the_pareto_front_against_the_unwrapped_model(monkeypatch, one_thread):
    fake_mpjpe(monkeypatch, monotone_penalty)
    result = tune(small_model(), walking_sequences(), max_increase=6.0, wall=True, progress=False)
    timed = [r for r in result.rows if r.wall_ratio is not None]
    assert {id(r) for r in timed} == {id(r) for r in result.pareto()} | {id(result.chosen_row)}
    assert all(0 < r.wall_ratio < 10 for r in timed)
    assert "wall" in result.format_table().splitlines()[0]


def test_the_residual_recovery_is_screened_when_asked_for_and_chosen_where_it_wins(monkeypatch):
    fake_mpjpe(monkeypatch, lambda p, f, selector, recover: monotone_penalty(p, f, selector, "interpolate")
               - (2.0 if recover == "interpolate+residual" else 0.0))
    result = tune(small_model(), walking_sequences(), max_increase=6.0, progress=False,
                  recovers=("interpolate", "interpolate+residual"))
    assert {r.recover for r in result.rows if r.stage == "screen"} == {"interpolate", "interpolate+residual"}
    assert result.chosen["recover"] == "interpolate+residual"
    assert "interpolate+residual" not in search.DEFAULT_RECOVERS  # opt-in: see benchmarks/results/tune_residual
