"""Composed prompts: the parser (sequence words, while/as, and, the subject), and with the shipped
model "turns around and walks away" turning then walking, "walks while waving the right hand"
walking with the legs and waving with the right arm, smooth seams; the evaluation's metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from vmclip.errors import InputError
from vmclip.motion import JOINT_INDEX, Motion
from vmclip.t2m import DEFAULT_WEIGHTS
from vmclip.t2m.compose import apply_turn, parse_prompt, rot6d_yaw, turn_degrees, upper_joints
from vmclip.t2m.metrics import capture_windows, frechet_distance, joint_speed, seam_smoothness, speed_ratios

# The seam's mean joint speed may reach the clip's 95th percentile when it leads into the faster
# piece (a walk after a wave); its fastest joint stays within the top of the clip's own range.
MAX_SEAM_MEAN, MAX_SEAM_SPIKE = 1.1, 1.6
shipped = pytest.mark.skipif(not DEFAULT_WEIGHTS["minilm"].is_file(), reason="shipped weights not built")


def _steps(prompt: str) -> list[tuple]:
    return [(s.kind, s.texts) for s in parse_prompt(prompt)]


@pytest.mark.parametrize(
    "prompt,want",
    [
        ("a person turns around and walks away", [("and", ("a person turns around", "a person walks away"))]),
        ("waves, then walks away", [("single", ("waves",)), ("single", ("walks away",))]),
        (
            "an old man sits down and then stands up",
            [("single", ("an old man sits down",)), ("single", ("an old man stands up",))],
        ),
        (
            "a person walks while waving the right hand",
            [("together", ("a person walks", "a person waving the right hand"))],
        ),
        ("she jogs as she claps", [("together", ("she jogs", "she claps"))]),
        ("walk and wave", [("and", ("walk", "wave"))]),
        (
            "a person kicks, punches and jumps",
            [
                ("single", ("a person kicks",)),
                ("single", ("a person punches",)),
                ("single", ("a person jumps",)),
            ],
        ),
        # "and" inside a phrase, "as" in a comparison or a role: one piece.
        ("a person waves the left and right hand", [("single", ("a person waves the left and right hand",))]),
        ("a person jumps up and down", [("single", ("a person jumps up and down",))]),
        ("a man races ahead as fast as he can", [("single", ("a man races ahead as fast as he can",))]),
        ("a person walks as a zombie", [("single", ("a person walks as a zombie",))]),
        ("a person walks slowly and carefully", [("single", ("a person walks slowly and carefully",))]),
        ("a zombie walk", [("single", ("a zombie walk",))]),
    ],
)
def test_parse_prompt(prompt: str, want: list[tuple]) -> None:
    assert _steps(prompt) == want


def test_too_many_actions_is_one_line_error() -> None:
    with pytest.raises(InputError, match="at most 6"):  # steps; clauses beyond 6 stay whole
        parse_prompt("a person walks, then runs, then jumps, then kicks, then bows, then waves, then sits")


def test_turns_and_named_joints() -> None:
    assert turn_degrees("a person turns around") == 180
    assert turn_degrees("a person turns left") == 90
    assert turn_degrees("turning to the right") == -90
    assert turn_degrees("turns 45 degrees to the right") == -45
    assert turn_degrees("a person walks forward") is None
    right = upper_joints("waving the right hand")
    assert JOINT_INDEX["right_wrist"] in right and JOINT_INDEX["left_wrist"] not in right
    assert JOINT_INDEX["left_wrist"] in upper_joints("claps") and JOINT_INDEX[
        "right_hip"
    ] not in upper_joints("claps")


def test_apply_turn_turns_the_body_and_its_path() -> None:
    frames = 40
    trans = np.stack([np.zeros(frames), np.full(frames, 0.9), np.linspace(0, 2, frames)], 1)  # walks +Z
    m = Motion.from_axis_angle(np.zeros((frames, 24, 3)), trans, fps=15.0)
    out = apply_turn(m, 10, 90.0)
    yaw = np.degrees(np.unwrap(rot6d_yaw(out.rot6d[:, 0])))
    assert abs(yaw[-1] - yaw[0] - 90) < 1e-3 and abs(yaw[10] - yaw[0]) < 1e-6
    np.testing.assert_allclose(out.trans[:11], trans[:11], atol=1e-6)
    last = out.trans[-1] - out.trans[-2]
    assert last[0] > 0.04 and abs(last[2]) < 1e-3  # now travelling along +X (turned left)
    step = np.linalg.norm(np.diff(out.trans, axis=0), axis=-1)
    np.testing.assert_allclose(step, np.linalg.norm(np.diff(trans, axis=0), axis=-1), atol=1e-6)


def test_metrics() -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((400, 8))
    assert frechet_distance(a, a) < 1e-6
    b = rng.standard_normal((400, 8))
    assert frechet_distance(a, b) < 0.3  # two draws of one distribution: near 0
    assert frechet_distance(a, b + 2.0) > 30  # a shifted one: about 8 x 2^2
    t = np.arange(60) / 30.0
    aa = np.zeros((60, 24, 3))
    aa[:, JOINT_INDEX["right_shoulder"], 2] = np.sin(2 * np.pi * t)
    lively = Motion.from_axis_angle(aa, np.zeros((60, 3)), fps=30.0)
    damped = Motion.from_axis_angle(0.5 * aa, np.zeros((60, 3)), fps=30.0)
    still = Motion.from_axis_angle(np.zeros((60, 24, 3)), np.zeros((60, 3)), fps=30.0)
    assert joint_speed(still) == 0.0
    r = speed_ratios({"wave": [damped]}, {"wave": [lively]})
    assert 0.45 < r["per_action"]["wave"] < 0.55 and r["below_0.75"] == ["wave"]
    # Captures cut to the generated length: a 2 s swing held to 4 s moves half the time; a 4 s
    # stretch of a longer take keeps its speed.
    cut, padded = capture_windows([lively, lively.slice(0, 30)], 40, np.random.default_rng(0))
    assert cut.num_frames == padded.num_frames == 40
    assert any(np.array_equal(cut.rot6d, lively.rot6d[s : s + 40]) for s in range(21))
    assert np.array_equal(padded.rot6d[:30], lively.rot6d[:30])
    assert np.array_equal(padded.rot6d[30:], np.repeat(lively.rot6d[29:30], 10, 0))
    held = capture_windows([lively], 120, np.random.default_rng(0))[0]
    assert held.num_frames == 120 and 0.45 < joint_speed(held) / joint_speed(lively) < 0.55
    # A jump at frame 30 is a spike; a smooth swing is not.
    jumpy = aa.copy()
    jumpy[30:, JOINT_INDEX["right_shoulder"], 2] += 1.5
    assert (
        seam_smoothness(Motion.from_axis_angle(jumpy, np.zeros((60, 3)), fps=30.0), [30])["spike_ratio"] > 3
    )
    assert seam_smoothness(lively, [30])["spike_ratio"] <= 1.0 + 1e-6


@pytest.fixture(scope="module")
def gen():
    from vmclip.t2m import load_generator

    torch.set_num_threads(2)
    return load_generator(device="cpu")


def _rel_speed(m: Motion, joints: list[int], frames: slice) -> float:
    pos = m.joint_positions()[frames]
    rel = pos[:, joints] - pos[:, :1]
    return float(np.linalg.norm(np.diff(rel, axis=0), axis=-1).mean() * m.fps)


@shipped
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_turn_around_then_walk_away(gen, seed: int) -> None:
    m = gen.generate("a person turns around and walks away", seconds=6.0, seed=seed)
    half = m.num_frames // 2
    yaw = np.degrees(np.unwrap(rot6d_yaw(m.rot6d[:, 0])))
    assert 150 < abs(yaw[half] - yaw[0]) < 210  # turns around in the first half
    assert abs(yaw[-1] - yaw[half]) < 45  # then keeps that heading
    walked = m.trans[-1, [0, 2]] - m.trans[half, [0, 2]]
    assert np.linalg.norm(walked) > 1.0  # and walks
    # ... the way it faces after the turn (away from where it faced at the start)
    start_facing = np.array([np.sin(np.radians(yaw[0])), np.cos(np.radians(yaw[0]))])
    assert walked @ start_facing < -0.5 * np.linalg.norm(walked)


@shipped
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_walk_while_waving_the_right_hand(gen, seed: int) -> None:
    m = gen.generate("a person walks while waving the right hand", seconds=4.0, seed=seed)
    legs = [JOINT_INDEX[f"{s}_{j}"] for s in ("left", "right") for j in ("knee", "ankle")]
    assert np.linalg.norm(m.trans[-1, [0, 2]] - m.trans[0, [0, 2]]) > 1.5  # walks ~4 m in 4 s
    assert _rel_speed(m, legs, slice(None)) > 0.5  # with stepping legs
    assert _rel_speed(m, [JOINT_INDEX["right_wrist"]], slice(None)) > 0.5  # and a moving right wrist
    assert np.percentile(_wrist_height(m), 75) > 0.25  # raised above the pelvis, not swinging at the side
    alone = gen.generate("a person walks", seconds=4.0, seed=seed)
    assert np.percentile(_wrist_height(alone), 75) < 0.1  # a plain walk keeps it low


def _wrist_height(m: Motion) -> np.ndarray:
    return m.joint_positions()[:, JOINT_INDEX["right_wrist"], 1] - m.trans[:, 1]


@shipped
@pytest.mark.parametrize(
    "prompt", ["a person turns around and walks away", "a person waves, then walks away", "a person runs"]
)
def test_composed_seams_have_no_speed_spike(gen, prompt: str) -> None:
    seconds = 10.0 if prompt == "a person runs" else 6.0  # a 10 s run is joined from 4 windows
    for seed in range(3):
        m, seams = gen.generate_with_seams(prompt, seconds=seconds, seed=seed)
        assert seams
        r = seam_smoothness(m, seams)
        assert r["mean_ratio"] <= MAX_SEAM_MEAN and r["spike_ratio"] < MAX_SEAM_SPIKE, (seed, r)
