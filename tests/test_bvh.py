"""BVH reading, forward kinematics, joint maps, units, resampling and the `data bvh` command."""
import json
import os

import numpy as np
import pytest

from hourglass_tokenizer.__main__ import main as cli_main
from hourglass_tokenizer.data import JOINT_NAMES, PARENTS, DataFileNotFoundError, DataLayoutError, load_cmu
from hourglass_tokenizer.data.bvh import (BUILTIN_JOINT_MAPS, BVHError, forward_kinematics, guess_scale,
                                          load_joint_map, parse_bvh, read_bvh, resample, resolve_joint_map,
                                          rest_pose, to_h36m17)

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")
SHARED_BVH = os.path.join(SHARED, "bvh")
SHARED_CMU = os.path.join(SHARED, "cmu_mocap_h36m17_50fps.npz")
needs_bvh = pytest.mark.skipif(not os.path.isdir(SHARED_BVH), reason="shared CMU BVH clips ../shared/data/bvh are "
                               "absent (they live beside the checkout, never in the repository)")

pytestmark = pytest.mark.usefixtures("one_thread")


def _rodrigues(axis, degrees):
    """Rotation about a unit axis by Rodrigues' formula: an independent way to build the matrices."""
    k = np.asarray(axis, dtype=float)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    a = np.radians(degrees)
    return np.eye(3) + np.sin(a) * kx + (1 - np.cos(a)) * kx @ kx


def _reference_fk(bvh, frame):
    """Per-frame, per-joint recursive forward kinematics written independently of the library."""
    axes = {"X": (1, 0, 0), "Y": (0, 1, 0), "Z": (0, 0, 1)}
    row = bvh.motion[frame]
    cursor = 0
    world_r, world_p = {}, {}
    for j, parent in enumerate(bvh.parents):
        local_r, local_t = np.eye(3), bvh.offsets[j].copy()
        for name in bvh.channels[j]:
            value = row[cursor]
            cursor += 1
            if name.endswith("rotation"):
                local_r = local_r @ _rodrigues(axes[name[0]], value)
            else:
                local_t["XYZ".index(name[0])] = value
        if parent < 0:
            world_r[j], world_p[j] = local_r, local_t
        else:
            world_r[j] = world_r[parent] @ local_r
            world_p[j] = world_p[parent] + world_r[parent] @ local_t
    return np.array([world_p[j] for j in range(len(bvh.parents))])


TINY = """HIERARCHY
ROOT Hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Yrotation Xrotation
  JOINT Arm
  {
    OFFSET 1 0 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {
      OFFSET 0 -2 0
    }
  }
}
MOTION
Frames: 2
Frame Time: 0.5
0 0 0 0 0 0 0 0 0
10 20 30 90 0 0 0 90 0
"""


def test_tiny_bvh_by_hand():
    bvh = parse_bvh(TINY)
    assert bvh.names == ["Hips", "Arm", "Arm_end"] and bvh.parents == [-1, 0, 1] and bvh.fps == 2.0
    p = forward_kinematics(bvh)
    np.testing.assert_allclose(p[0], [[0, 0, 0], [1, 0, 0], [1, -2, 0]], atol=1e-12)
    # Frame 1: root at (10, 20, 30) turned 90 deg about Z, so the arm's offset x becomes y; the arm
    # turns 90 deg about its X, so its child's -y offset becomes -z, and the root's Z turn keeps z.
    np.testing.assert_allclose(p[1], [[10, 20, 30], [10, 21, 30], [10, 21, 28]], atol=1e-12)


@needs_bvh
def test_forward_kinematics_matches_an_independent_computation_on_real_cmu_data():
    bvh = read_bvh(os.path.join(SHARED_BVH, "cmu_131_01.bvh"))
    assert len(bvh.motion) == 994 and abs(bvh.fps - 120) < 0.01
    assert len([n for n in bvh.names if not n.endswith("_end")]) == 31
    assert bvh.channels[bvh.names.index("LeftElbow")] == ("Zrotation", "Xrotation", "Yrotation")  # mixed orders
    positions = forward_kinematics(bvh)
    for frame in (0, 137, 993):
        np.testing.assert_allclose(positions[frame], _reference_fk(bvh, frame), atol=1e-9)
    # Rigid bones: every joint stays at its offset's length from its parent in every frame.
    parents = np.array(bvh.parents[1:])
    lengths = np.linalg.norm(positions[:, 1:] - positions[:, parents], axis=-1)
    np.testing.assert_allclose(lengths, np.broadcast_to(np.linalg.norm(bvh.offsets[1:], axis=-1), lengths.shape),
                               atol=1e-9)


def test_parse_errors_name_the_file_and_what_was_expected(tmp_path):
    with pytest.raises(BVHError, match="x.bvh: not a BVH file"):
        parse_bvh("hello", "x.bvh")
    with pytest.raises(BVHError, match=r"expected 2 frames x 9 channels = 18 values .* found 17"):
        parse_bvh(TINY.rsplit(" ", 1)[0] + "\n", "y.bvh")
    with pytest.raises(BVHError, match="unknown channel 'Wrotation'"):
        parse_bvh(TINY.replace("Yrotation Xrotation\n", "Wrotation Xrotation\n", 1))
    with pytest.raises(DataFileNotFoundError, match="missing.bvh"):
        read_bvh(tmp_path / "missing.bvh")


def _named_skeleton(names_and_parents, scale=1.0):
    """A BVH with the given joints (name, parent name, offset) and two frames of small rotations."""
    lines, children = ["HIERARCHY"], {}
    for name, parent, _ in names_and_parents:
        children.setdefault(parent, []).append(name)
    offsets = {n: o for n, _, o in names_and_parents}

    def emit(name, depth, root=False):
        pad = "  " * depth
        lines.append(f"{pad}{'ROOT' if root else 'JOINT'} {name}")
        lines.append(pad + "{")
        lines.append(pad + "  OFFSET " + " ".join(str(v * scale) for v in offsets[name]))
        lines.append(pad + ("  CHANNELS 6 Xposition Yposition Zposition Zrotation Yrotation Xrotation" if root
                            else "  CHANNELS 3 Zrotation Yrotation Xrotation"))
        for child in children.get(name, []):
            emit(child, depth + 1)
        lines.append(pad + "}")

    emit(names_and_parents[0][0], 0, root=True)
    n_channels = 6 + 3 * (len(names_and_parents) - 1)
    lines += ["MOTION", "Frames: 2", "Frame Time: 0.0333333"]
    lines += [" ".join(["0"] * n_channels), " ".join(["5"] * n_channels)]
    return "\n".join(lines) + "\n"


BANDAI = [("joint_Root", None, (0, 0, 0)), ("Hips", "joint_Root", (0, 95, 0)),
          ("Spine", "Hips", (0, 10, 0)), ("Chest", "Spine", (0, 20, 0)), ("Neck", "Chest", (0, 20, 0)),
          ("Head", "Neck", (0, 10, 0)),
          ("Shoulder_L", "Chest", (5, 15, 0)), ("UpperArm_L", "Shoulder_L", (12, 0, 0)),
          ("LowerArm_L", "UpperArm_L", (28, 0, 0)), ("Hand_L", "LowerArm_L", (25, 0, 0)),
          ("Shoulder_R", "Chest", (-5, 15, 0)), ("UpperArm_R", "Shoulder_R", (-12, 0, 0)),
          ("LowerArm_R", "UpperArm_R", (-28, 0, 0)), ("Hand_R", "LowerArm_R", (-25, 0, 0)),
          ("UpperLeg_L", "Hips", (10, -5, 0)), ("LowerLeg_L", "UpperLeg_L", (0, -43, 0)),
          ("Foot_L", "LowerLeg_L", (0, -42, 0)), ("Toes_L", "Foot_L", (0, -5, 12)),
          ("UpperLeg_R", "Hips", (-10, -5, 0)), ("LowerLeg_R", "UpperLeg_R", (0, -43, 0)),
          ("Foot_R", "LowerLeg_R", (0, -42, 0)), ("Toes_R", "Foot_R", (0, -5, 12))]


def test_bandai_naming_is_mapped_and_centimetres_are_recognised():
    bvh = parse_bvh(_named_skeleton(BANDAI), "bandai.bvh")
    mapping = resolve_joint_map(bvh.names)  # picks the Bandai map on its own
    assert mapping == resolve_joint_map(bvh.names, "bandai")
    assert [bvh.names[i] for i in mapping[JOINT_NAMES.index("LKnee")]] == ["LowerLeg_L"]
    rest = to_h36m17(rest_pose(bvh)[None], mapping)[0]
    np.testing.assert_allclose(rest[0], [0, 90, 0])  # Hip: the midpoint of the two thighs' roots
    assert guess_scale(rest) == 0.01
    with pytest.raises(DataLayoutError, match="joint map does not fit: Hip <- "):
        resolve_joint_map(bvh.names, "cmu")


def test_user_joint_map_file(tmp_path):
    bvh = parse_bvh(_named_skeleton(BANDAI), "bandai.bvh")
    renamed = {j: n for j, n in zip(JOINT_NAMES, ["Hips", "UpperLeg_R", "LowerLeg_R", "Foot_R", "UpperLeg_L",
                                                  "LowerLeg_L", "Foot_L", "Spine", "Chest", "Neck", "Head",
                                                  "UpperArm_L", "LowerArm_L", "Hand_L", "UpperArm_R", "LowerArm_R",
                                                  "Hand_R"])}
    (tmp_path / "map.json").write_text(json.dumps(renamed))
    mapping = resolve_joint_map(bvh.names, load_joint_map(tmp_path / "map.json"))
    assert [bvh.names[i[0]] for i in mapping] == list(renamed.values())
    del renamed["RWrist"]
    renamed["Pelvis"] = "Hips"
    (tmp_path / "bad.json").write_text(json.dumps(renamed))
    with pytest.raises(DataLayoutError, match=r"missing \['RWrist'\], unknown \['Pelvis'\]"):
        load_joint_map(tmp_path / "bad.json")


def test_unknown_skeleton_asks_for_a_joint_map():
    bvh = parse_bvh(_named_skeleton([("root", None, (0, 0, 0)), ("a", "root", (0, 1, 0))]), "odd.bvh")
    with pytest.raises(DataLayoutError, match="no built-in joint map .* fits .*--joint-map"):
        resolve_joint_map(bvh.names)


def test_resample_is_exact_on_linear_motion_and_keeps_the_duration():
    t = np.arange(121) / 120.0
    motion = np.stack([2 * t, -t, 0 * t + 3], -1)[:, None, :]  # (121, 1, 3), 1 second
    out = resample(motion, 120.0, 50.0)
    assert out.shape == (51, 1, 3)
    t_out = np.arange(51) / 50.0
    np.testing.assert_allclose(out[:, 0], np.stack([2 * t_out, -t_out, 0 * t_out + 3], -1), atol=1e-12)
    np.testing.assert_array_equal(resample(motion, 50.0, 50.0), motion)


def _bone_lengths(positions):
    return np.median(np.linalg.norm(positions[:, 1:] - positions[:, list(PARENTS[1:])], axis=-1), axis=0)


@needs_bvh
@pytest.mark.skipif(not os.path.exists(SHARED_CMU), reason="shared CMU file ../shared/data/cmu_mocap_h36m17_50fps.npz "
                    "is absent (it lives beside the checkout, never in the repository)")
def test_convert_real_cmu_bvh_then_train(tmp_path, capsys):
    from hourglass_tokenizer.training import main as train_main

    out = tmp_path / "motion.npz"
    assert cli_main(["data", "bvh", SHARED_BVH, "-o", str(out), "--fps", "50"]) == 0
    assert "3 clips (1 test)" in capsys.readouterr().out
    mocap = load_cmu(out)  # also checks joint_names and parents
    assert list(mocap.clip_names) == ["cmu_131_01", "cmu_131_02", "cmu_131_03"]
    assert list(mocap.split) == ["train", "train", "test"] and mocap.fps == 50.0
    # 994 / 1247 / 1102 frames at 120 fps last 993/120 s ... : at 50 fps that is 414 / 520 / 459 frames.
    assert [len(mocap.clip(i)) for i in range(3)] == [414, 520, 459]
    with np.load(out) as data:
        assert np.allclose(data["scale"], 0.056444)  # CMU's ASF units, guessed from the legs
    positions = mocap.positions
    assert (positions[:, 10, 1] > positions[:, 0, 1] + 0.3).all()  # Y up: the head is above the pelvis
    assert abs(positions[:, [3, 6], 1].min()) < 0.15  # feet reach the floor (y = 0)
    reference = _bone_lengths(load_cmu(SHARED_CMU).positions)
    difference_cm = np.abs(_bone_lengths(positions) - reference) * 100
    assert difference_cm.max() < 6.0 and difference_cm.mean() < 2.5, difference_cm.round(1)

    rc = train_main(["--frames", "27", "--model-arg", "depth=2", "--cameras", "1", "--epochs", "1",
                     "--steps-per-epoch", "3", "--batch-size", "4", "--no-progress", "--eval-frame-stride", "8",
                     "--data", str(out), "--out", str(tmp_path / "run")])
    assert rc == 0 and "test MPJPE" in capsys.readouterr().out
    assert os.path.exists(tmp_path / "run" / "last.pt")


def test_data_bvh_command_errors(tmp_path, capsys):
    assert cli_main(["data", "bvh", str(tmp_path / "none"), "-o", str(tmp_path / "o.npz")]) == 2
    err = capsys.readouterr().err
    assert "error: BVH input not found" in err and str(tmp_path / "none") in err and "Traceback" not in err
    (tmp_path / "odd.bvh").write_text(_named_skeleton([("root", None, (0, 0, 0)), ("a", "root", (0, 1, 0))]))
    assert cli_main(["data", "bvh", str(tmp_path), "-o", str(tmp_path / "o.npz")]) == 2
    assert "--joint-map" in capsys.readouterr().err
    assert cli_main(["data", "frobnicate"]) == 2


def test_built_in_maps_name_every_joint():
    for joint_map in BUILTIN_JOINT_MAPS.values():
        assert list(joint_map) == list(JOINT_NAMES)


# ----- Bandai-Namco Research Motion layout: 6 channels (position and rotation) on every joint ---------

def _bandai_six_channels(frames=12, frame_time=1 / 30, zero_offsets=False, bad=None):
    """A BVH in the Bandai-Namco Research Motion layout: every joint (joint_Root > Hips > ...) has
    ``Xposition Yposition Zposition Zrotation Yrotation Xrotation``; centimetres, 30 fps. Each frame's
    position channels equal the joint's offset (the root walks along x), rotations vary. With
    ``zero_offsets`` every OFFSET is 0 and only the position channels carry the bones."""
    children = {}
    for name, parent, _ in BANDAI:
        children.setdefault(parent, []).append(name)
    offsets = {name: offset for name, _, offset in BANDAI}
    lines = ["HIERARCHY"]

    def emit(name, depth):
        pad = "\t" * depth
        lines.append(f"{pad}{'ROOT' if depth == 0 else 'JOINT'} {name}")
        lines.append(pad + "{")
        lines.append(pad + "\tOFFSET " + " ".join(f"{0 if zero_offsets else v:.6f}" for v in offsets[name]))
        lines.append(pad + "\tCHANNELS 6 Xposition Yposition Zposition Zrotation Yrotation Xrotation")
        for child in children.get(name, []):
            emit(child, depth + 1)
        if name not in children:
            lines.extend([pad + "\tEnd Site", pad + "\t{", pad + "\t\tOFFSET 0.000000 5.000000 0.000000", pad + "\t}"])
        lines.append(pad + "}")

    emit("joint_Root", 0)
    rng = np.random.default_rng(0)
    motion = []
    for f in range(frames):
        row = []
        for name, _, offset in BANDAI:
            position = [2.0 * f, 0.0, 0.0] if name == "joint_Root" else list(offset)
            row += position + list(rng.normal(scale=8.0, size=3))
        motion.append(row)
    motion = np.array(motion)
    if bad is not None:
        motion[bad[0], bad[1]] = bad[2]
    lines += ["MOTION", f"Frames: {frames}", f"Frame Time: {frame_time!r}"]
    lines += [" ".join(f"{v:.6f}" for v in row) for row in motion]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("zero_offsets", [False, True])
def test_bandai_six_channel_layout_converts_with_no_flags_as_with_scale_cm(tmp_path, capsys, zero_offsets):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "bandai.bvh").write_text(_bandai_six_channels(zero_offsets=zero_offsets))
    bvh = read_bvh(tmp_path / "in" / "bandai.bvh")
    assert all(len(c) == 6 for c in bvh.channels if c) and bvh.names[:2] == ["joint_Root", "Hips"]
    # At the file's own 30 fps (no resampling), so every output frame is a frame of the file.
    assert cli_main(["data", "bvh", str(tmp_path / "in"), "-o", str(tmp_path / "auto.npz"), "--fps", "30"]) == 0
    assert "12 frames at 30 fps, 0.01 m/unit" in capsys.readouterr().err
    assert cli_main(["data", "bvh", str(tmp_path / "in"), "-o", str(tmp_path / "cm.npz"), "--fps", "30",
                     "--scale", "cm"]) == 0
    auto, cm = load_cmu(tmp_path / "auto.npz"), load_cmu(tmp_path / "cm.npz")
    np.testing.assert_array_equal(auto.positions, cm.positions)
    # The bones are the offsets in metres: thigh 43 cm, shin 42 cm, whatever the rotations.
    thigh = np.linalg.norm(auto.positions[:, 1] - auto.positions[:, 2], axis=-1)
    np.testing.assert_allclose(thigh, 0.43, atol=1e-5)
    # The rest pose comes from the offsets alone (position channels left out), so it has legs.
    if not zero_offsets:
        rest = to_h36m17(rest_pose(bvh)[None], resolve_joint_map(bvh.names))[0]
        np.testing.assert_allclose(rest[0], [0, 90, 0])


def _one_line_error(capsys):
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("python -m hourglass_tokenizer data bvh: error: "), lines[0]
    return lines[0]


@pytest.mark.parametrize("value, column, message", [
    (np.nan, 6 * 15 + 1, "motion value nan (not finite) at frame 5, joint 'LowerLeg_L', channel Yposition"),
    (np.inf, 6 * 7 + 4, "motion value inf (not finite) at frame 5, joint 'UpperArm_L', channel Yrotation"),
])
def test_non_finite_motion_is_rejected_naming_file_frame_and_joint(tmp_path, capsys, value, column, message):
    path = tmp_path / "bad.bvh"
    path.write_text(_bandai_six_channels(bad=(5, column, value)))
    assert cli_main(["data", "bvh", str(path), "-o", str(tmp_path / "o.npz")]) == 2
    line = _one_line_error(capsys)
    assert str(path) in line and message in line
    assert not (tmp_path / "o.npz").exists()


@pytest.mark.parametrize("argv, message", [
    (["--scale", "0"], "argument --scale: expected a positive finite number of metres per unit, got 0"),
    (["--scale", "-1"], "argument --scale: expected a positive finite number of metres per unit, got -1"),
    (["--scale", "nan"], "got nan (not a number)"),
    (["--scale", "furlong"], "'auto' or one of ['cm', 'cmu', 'inch', 'm', 'mm'], got 'furlong'"),
    (["--fps", "nan"], "argument --fps: expected a number, got 'nan' (not a number)"),
    (["--fps", "0"], "argument --fps: must be finite and greater than 0, got 0"),
    (["--fps", "1e-9"], "would become 1 frame(s) at 1e-09 fps; check the file's 'Frame Time' and --fps"),
    (["--fps", "0.5"], "would become 1 frame(s) at 0.5 fps"),
    (["--split", "every:0"], "--split: split specification 'every:0' not understood"),
    (["--bogus"], "unrecognized arguments: --bogus"),
])
def test_bad_scale_and_frame_rates_are_one_line(tmp_path, capsys, argv, message):
    (tmp_path / "a.bvh").write_text(_bandai_six_channels())
    assert cli_main(["data", "bvh", str(tmp_path / "a.bvh"), "-o", str(tmp_path / "o.npz")] + argv) == 2
    assert message in _one_line_error(capsys)
    assert not (tmp_path / "o.npz").exists()


@pytest.mark.parametrize("frame_time", ["1e-300", "1e+300", "nan", "0"])
def test_implausible_frame_times_are_rejected(tmp_path, capsys, frame_time):
    path = tmp_path / "a.bvh"
    path.write_text(_bandai_six_channels().replace(f"Frame Time: {1 / 30!r}", f"Frame Time: {frame_time}"))
    assert cli_main(["data", "bvh", str(path), "-o", str(tmp_path / "o.npz")]) == 2
    line = _one_line_error(capsys)
    assert str(path) in line and ("Frame Time" in line or "positive frame time" in line)


def test_output_name_overwrite_policy_and_directories(tmp_path, capsys):
    (tmp_path / "a.bvh").write_text(_bandai_six_channels())
    src = str(tmp_path / "a.bvh")
    # "-o out" writes out.npz and says so.
    assert cli_main(["data", "bvh", src, "-o", str(tmp_path / "out")]) == 0
    assert f"wrote {tmp_path / 'out.npz'}:" in capsys.readouterr().out
    assert os.listdir(tmp_path) and sorted(os.listdir(tmp_path)) == ["a.bvh", "out.npz"]
    # An existing file is kept unless --overwrite.
    before = (tmp_path / "out.npz").read_bytes()
    assert cli_main(["data", "bvh", src, "-o", str(tmp_path / "out.npz"), "--fps", "30"]) == 2
    assert "already exists; choose another name or pass --overwrite" in _one_line_error(capsys)
    assert (tmp_path / "out.npz").read_bytes() == before
    assert cli_main(["data", "bvh", src, "-o", str(tmp_path / "out.npz"), "--fps", "30", "--overwrite"]) == 0
    assert load_cmu(tmp_path / "out.npz").fps == 30.0
    capsys.readouterr()
    # A directory is an error, not "dir.npz"; so is a folder that is a file.
    (tmp_path / "folder").mkdir()
    assert cli_main(["data", "bvh", src, "-o", str(tmp_path / "folder")]) == 2
    assert "is a directory; give the output file's name" in _one_line_error(capsys)
    assert cli_main(["data", "bvh", src, "-o", str(tmp_path / "a.bvh" / "x.npz")]) == 2
    assert "is a file, not a folder" in _one_line_error(capsys)
    assert sorted(os.listdir(tmp_path)) == ["a.bvh", "folder", "out.npz"]


def test_read_only_output_folder_is_one_line(tmp_path, read_only_folder, capsys):
    (tmp_path / "a.bvh").write_text(_bandai_six_channels())
    assert cli_main(["data", "bvh", str(tmp_path / "a.bvh"), "-o", str(read_only_folder / "o.npz")]) == 2
    assert "is not writable" in _one_line_error(capsys)


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path, monkeypatch, capsys):
    from hourglass_tokenizer.data import bvh as bvh_module

    (tmp_path / "a.bvh").write_text(_bandai_six_channels())
    target = tmp_path / "motion.npz"
    assert cli_main(["data", "bvh", str(tmp_path / "a.bvh"), "-o", str(target)]) == 0
    before = target.read_bytes()

    def full_disk(path, **arrays):
        with open(path, "wb") as fh:
            fh.write(before[:100])  # a fragment, then the disk is full
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(bvh_module.np, "savez_compressed", full_disk)
    with pytest.raises(OSError, match="No space left"):
        cli_main(["data", "bvh", str(tmp_path / "a.bvh"), "-o", str(target), "--overwrite"])
    assert target.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["a.bvh", "motion.npz"]
