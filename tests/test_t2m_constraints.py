"""Constraints with the shipped text-to-motion model: held frames and joints are met within 2 cm with
no speed spike beside them (in-betweening, regenerating a range, a held arm), a circular root path is
followed within 10 cm facing along it, and bad constraints are one-line errors (API, CLI, wire)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from vmclip.errors import InputError
from vmclip.motion import JOINT_INDEX, Motion, load_npz
from vmclip.motion.constraints import MotionConstraints
from vmclip.t2m import DEFAULT_WEIGHTS
from vmclip.t2m.constrain import boundary_frames, constraint_error_mm, speed_spike

pytestmark = pytest.mark.skipif(not DEFAULT_WEIGHTS["minilm"].is_file(), reason="shipped weights not built")

SECONDS, FRAMES = 3.0, 90
MAX_ERROR_MM = 20.0  # the 2 cm
# Fastest joint next to the held frames against the motion's own 95th percentile: above this a
# viewer sees a jerk where the held frames hand over to the generated ones.
MAX_SPIKE = 1.3


@pytest.fixture(scope="module")
def gen():
    from vmclip.t2m import load_generator

    torch.set_num_threads(2)
    return load_generator(device="cpu")


@pytest.fixture(scope="module")
def walk(gen):
    return gen.generate("a person walks forward", seconds=SECONDS, seed=1)


def _keys(motion, mask, **flags) -> MotionConstraints:
    return MotionConstraints.create(motion.axis_angle(), motion.trans, mask, **flags)


def _check(motion, c: MotionConstraints) -> None:
    assert motion.num_frames == c.num_frames
    assert constraint_error_mm(motion, c) < MAX_ERROR_MM
    assert speed_spike(motion, boundary_frames(c)) < MAX_SPIKE


# Keys a second apart on a slow prompt: the fastest joint next to them, over seeds 0-2 (one seed's
# value swings between 1.2 and 1.65 with either way of joining pieces; seeds 0-5 measured).
MEAN_SPIKE, WORST_SPIKE = 1.4, 1.7


def _check_seeds(gen, c: MotionConstraints, first) -> None:
    """`first` is seed 0's motion; seeds 1 and 2 are generated here."""
    assert first.num_frames == c.num_frames and constraint_error_mm(first, c) < MAX_ERROR_MM
    spikes = [speed_spike(first, boundary_frames(c))]
    for seed in (1, 2):
        m = gen.generate("a person waves with the right hand", seconds=SECONDS, seed=seed, constraints=c)
        assert constraint_error_mm(m, c) < MAX_ERROR_MM
        spikes.append(speed_spike(m, boundary_frames(c)))
    assert np.mean(spikes) < MEAN_SPIKE and max(spikes) < WORST_SPIKE, spikes


def test_inbetweening_meets_the_keys(gen, walk) -> None:
    mask = np.zeros(FRAMES, bool)
    mask[[0, 45, 89]] = True
    c = _keys(walk, mask)
    m = gen.generate("a person waves with the right hand", seconds=SECONDS, seed=0, constraints=c)
    _check_seeds(gen, c, m)
    assert np.abs(m.trans[[0, 45, 89]] - walk.trans[[0, 45, 89]]).max() < 1e-3
    # Between the keys the motion is the prompt's, not the keys' walk: the right hand rises.
    wrist = m.joint_positions()[:, JOINT_INDEX["right_wrist"], 1] - m.trans[:, 1]
    assert wrist[10:80].max() > 0.3


def test_regenerating_a_range_keeps_the_rest(gen, walk) -> None:
    mask = np.ones(FRAMES, bool)
    mask[30:60] = False
    c = _keys(walk, mask)
    m = gen.generate("a person waves with the right hand", seconds=SECONDS, seed=0, constraints=c)
    _check_seeds(gen, c, m)
    kept = np.r_[0:30, 60:90]
    assert np.allclose(m.joint_positions()[kept], walk.joint_positions()[kept], atol=2e-3)
    assert not np.allclose(m.rot6d[30:60], walk.rot6d[30:60], atol=0.05)  # the range is new


def test_held_joints_only(gen, walk) -> None:
    arm = [JOINT_INDEX[n] for n in ("right_shoulder", "right_elbow", "right_wrist")]
    poses = np.zeros((FRAMES, 24, 3), np.float32)
    poses[:, JOINT_INDEX["right_shoulder"]] = [0.0, 0.0, 1.4]  # the right arm raised over the head
    mask = np.zeros((FRAMES, 25), bool)
    mask[40:50, arm] = True
    c = MotionConstraints.create(poses, np.zeros((FRAMES, 3)), mask)
    m = gen.generate("a person walks forward", seconds=SECONDS, seed=0, constraints=c)
    _check(m, c)
    # The legs still walk: the pelvis travels.
    assert np.linalg.norm(m.trans[-1, [0, 2]] - m.trans[0, [0, 2]]) > 1.5


def test_circle_path_is_followed(gen) -> None:
    seconds, frames, radius = 6.0, 180, 1.0  # about 1 m/s, a walk
    angle = np.linspace(0, 2 * np.pi, frames)
    path = np.stack([radius * np.sin(angle), np.zeros(frames), radius * (1 - np.cos(angle))], 1)
    mask = np.zeros((frames, 25), bool)
    mask[:, 24] = True
    c = MotionConstraints.create(np.zeros((frames, 24, 3)), path, mask, trans_y=False)
    m = gen.generate("a person walks in a circle", seconds=seconds, seed=0, constraints=c)
    assert np.linalg.norm(m.trans[:, [0, 2]] - path[:, [0, 2]], axis=1).max() < 0.10
    assert 0.7 < m.trans[:, 1].mean() < 1.1  # height stays the motion's own (trans_y=False)
    forward = m.matrices()[:, 0, :, 2]
    facing = np.arctan2(forward[:, 0], forward[:, 2])
    along = np.arctan2(np.gradient(path[:, 0]), np.gradient(path[:, 2]))
    off = np.degrees(np.abs(np.angle(np.exp(1j * (facing - along)))))
    assert np.median(off) < 30, np.median(off)


def test_a_path_faster_than_a_sprint_is_refused(gen) -> None:
    mask = np.zeros((FRAMES, 25), bool)
    mask[[10, 20], 24] = True
    trans = np.zeros((FRAMES, 3))
    trans[20, 0] = 5.0  # 5 m in a third of a second: 15 m/s
    c = MotionConstraints.create(np.zeros((FRAMES, 24, 3)), trans, mask)
    with pytest.raises(InputError, match="faster than a sprint"):
        gen.generate("a person runs", seconds=SECONDS, seed=0, constraints=c)


@pytest.mark.parametrize(
    "case,match",
    [
        ("rows", "cover 60 frames but the motion has 90"),
        ("pose_shape", "poses must have shape"),
        ("nan", "NaN"),
        ("mask_cols", "mask must have shape"),
        ("not_constraints", "must be vmclip.motion.constraints.MotionConstraints"),
    ],
)
def test_bad_constraints(gen, case: str, match: str) -> None:
    poses, trans, mask = np.zeros((FRAMES, 24, 3)), np.zeros((FRAMES, 3)), np.ones(FRAMES, bool)
    with pytest.raises(InputError, match=match):
        if case == "rows":
            c = MotionConstraints.create(poses[:60], trans[:60], mask[:60])
        elif case == "pose_shape":
            c = MotionConstraints.create(poses[:, :20], trans, mask)
        elif case == "nan":
            poses[5, 3, 0] = np.nan
            c = MotionConstraints.create(poses, trans, mask)
        elif case == "mask_cols":
            c = MotionConstraints.create(poses, trans, np.ones((FRAMES, 24), bool))
        else:
            c = {"poses": poses, "trans": trans, "mask": mask}
        gen.generate("a person walks", seconds=SECONDS, seed=0, constraints=c)


def test_cli_constraints(tmp_path, capsys, walk) -> None:
    from vmclip.cli import main

    mask = np.zeros(FRAMES, bool)
    mask[[0, 89]] = True
    keys = tmp_path / "keys.npz"
    _keys(walk, mask).save_npz(keys)
    out = tmp_path / "out.npz"
    argv = ["motion", "a person jumps", "--seconds", "3", "--seed", "2", "--constraints", str(keys)]
    assert main([*argv, "-o", str(out)]) == 0
    m = load_npz(out)
    assert m.num_frames == FRAMES
    assert np.abs(m.joint_positions()[[0, 89]] - walk.joint_positions()[[0, 89]]).max() < 2e-3
    capsys.readouterr()
    bad = tmp_path / "bad.npz"
    np.savez(bad, poses=np.zeros((60, 24, 3)), trans=np.zeros((60, 3)), mask=np.ones(60, bool))
    bad_out = tmp_path / "bad_out.npz"
    assert main([*argv[:-1], str(bad), "-o", str(bad_out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "covers 60 frames but the motion has 90" in err and "\n" not in err
    assert not bad_out.exists()


_ZEROS = {"poses": np.zeros((FRAMES, 24, 3)), "trans": np.zeros((FRAMES, 3)), "mask": np.ones(FRAMES, bool)}


@pytest.mark.parametrize(
    "case,change,match",
    [
        ("poses_shape", {"poses": np.zeros((FRAMES, 23, 3))}, "poses must have shape (90, 24, 3)"),
        ("trans_shape", {"trans": np.zeros((FRAMES, 2))}, "trans must have shape (90, 3)"),
        ("nan_pose", {"poses": np.full((FRAMES, 24, 3), np.nan)}, "NaN"),
        ("inf_trans", {"trans": np.full((FRAMES, 3), np.inf)}, "NaN or infinity"),
        ("mask_length", {"mask": np.ones(FRAMES - 1, bool)}, "mask covers 89 frames but the motion has 90"),
        ("mask_columns", {"mask": np.ones((FRAMES, 7), bool)}, "mask must have shape (T,) or (T, 25)"),
        ("mask_values", {"mask": np.full(FRAMES, 2)}, "mask must be boolean"),
        ("text", {"poses": np.array(["a"] * FRAMES)}, "poses must be numeric"),
        (
            "sprint",
            {"trans": np.stack([0.5 * np.arange(FRAMES), np.zeros(FRAMES), np.zeros(FRAMES)], 1)},
            "faster than a sprint",
        ),
        ("missing", {"trans": None, "mask": None}, "lacks trans, mask"),
    ],
)
def test_cli_bad_constraint_files(tmp_path, capsys, case: str, change: dict, match: str) -> None:
    """Each bad keys.npz is one line on stderr, exit 2, nothing written (checked before the model loads)."""
    from vmclip.cli import main

    arrays = {k: v for k, v in {**_ZEROS, **change}.items() if v is not None}
    keys = tmp_path / f"{case}.npz"
    np.savez(keys, **arrays)
    out = tmp_path / "out.npz"
    argv = ["motion", "a person walks", "--seconds", "3", "--constraints", str(keys), "-o", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert match in err and "\n" not in err, err
    assert not out.exists()


def test_constraints_over_the_wire(gen, walk) -> None:
    """A real server and client: held frames met at the requested rate; bad frames get error replies."""
    import vmclip_protocol as vp
    from server_support import start_server
    from vmclip.server import Pipeline

    mask = np.zeros(FRAMES, bool)
    mask[[0, 89]] = True
    c = _keys(walk, mask)
    server = start_server(Pipeline(device="cpu"), workers=1)
    try:
        with vp.Client(server.address, timeout_s=60, retries=1) as client:
            got = client.generate_motion("a person jumps", seconds=SECONDS, seed=3, constraints=c)
            assert got.num_frames == FRAMES
            pos = Motion.from_axis_angle(got.poses, got.trans).joint_positions()
            assert np.abs(pos[[0, 89]] - walk.joint_positions()[[0, 89]]).max() < 2e-3
            # At 24 fps the rows are the 24-fps frames of the reply.
            mask24 = np.zeros(72, bool)
            mask24[[0, 71]] = True
            held24 = {"poses": c.poses[:72], "trans": c.trans[:72], "mask": mask24}
            got = client.generate_motion("a person jumps", seconds=SECONDS, fps=24.0, constraints=held24)
            assert got.num_frames == 72 and np.abs(got.trans[[0, 71]] - c.trans[[0, 71]]).max() < 1e-3
            bad = {
                "rows": ({"poses": c.poses[:60], "trans": c.trans[:60], "mask": mask[:60]}, "bad_array"),
                "nan": (
                    {"poses": np.full((FRAMES, 24, 3), np.nan), "trans": c.trans, "mask": mask},
                    "bad_request",
                ),
                "mask": ({"poses": c.poses, "trans": c.trans, "mask": np.ones((FRAMES, 7))}, "bad_array"),
                "mask_length": ({"poses": c.poses, "trans": c.trans, "mask": mask[:-1]}, "bad_array"),
                "pose_shape": ({"poses": c.poses[:, :20], "trans": c.trans, "mask": mask}, "bad_array"),
                "sprint": ({"poses": c.poses, "trans": c.trans * 40, "mask": mask}, "bad_request"),
            }
            for case, (held, code) in bad.items():
                with pytest.raises(vp.RemoteError) as info:
                    client.generate_motion("a person jumps", seconds=SECONDS, constraints=held)
                assert info.value.code == code, (case, info.value)
                assert "\n" not in info.value.message
    finally:
        server.stop()
