"""The shipped masked-token model (`--model masked`): fits the package budget, moves like the captures
(a walk travels, a right-hand wave moves the right wrist), seeds and sides behave, held frames are met
exactly through it, sequences join without a jerk."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from vmclip.motion import JOINT_INDEX
from vmclip.motion.constraints import MotionConstraints
from vmclip.t2m import MASKED_WEIGHTS
from vmclip.t2m.constrain import constraint_error_mm

pytestmark = pytest.mark.skipif(
    not MASKED_WEIGHTS.is_file(),
    reason="masked-token weights not shipped; these run once trained weights are in assets/t2m/masked.pt",
)


@pytest.fixture(scope="module")
def gen():
    from vmclip.t2m import load_generator

    torch.set_num_threads(2)
    return load_generator(device="cpu", model="masked")


def _wrist_speed(motion, side: str) -> float:
    """Mean speed (m/s) of a wrist relative to the pelvis."""
    pos = motion.joint_positions()
    rel = pos[:, JOINT_INDEX[f"{side}_wrist"]] - pos[:, 0]
    return float(np.linalg.norm(np.diff(rel, axis=0), axis=-1).mean() * motion.fps)


def test_weights_fit_the_package_budget():
    assert MASKED_WEIGHTS.stat().st_size <= 30 * 1000 * 1000


def test_a_walk_travels_and_a_wave_moves_the_named_hand(gen):
    for seed in range(3):
        walk = gen.generate("a person walks forward", seconds=4.0, seed=seed)
        assert np.linalg.norm(walk.trans[-1, [0, 2]] - walk.trans[0, [0, 2]]) > 1.5, seed
    speeds = [gen.generate("a person waves with the right hand", seconds=4.0, seed=s) for s in range(3)]
    right = np.mean([_wrist_speed(m, "right") for m in speeds])
    left = np.mean([_wrist_speed(m, "left") for m in speeds])
    assert right > 0.3 and right > 1.5 * left, (right, left)


def test_seeds_give_the_same_and_other_motions(gen):
    a = gen.generate("a person walks", seconds=4.0, seed=0).joint_positions()
    np.testing.assert_array_equal(a, gen.generate("a person walks", seconds=4.0, seed=0).joint_positions())
    b = gen.generate("a person walks", seconds=4.0, seed=1).joint_positions()
    assert np.abs(a - b).mean() > 0.03


def test_keys_are_met_exactly(gen):
    ref = gen.generate("a person walks forward", seconds=3.0, seed=1)
    mask = np.zeros(90, bool)
    mask[::30] = True
    keys = MotionConstraints.create(ref.axis_angle(), ref.trans, mask)
    m = gen.generate("a person waves with the right hand", seconds=3.0, seed=0, constraints=keys)
    assert m.num_frames == 90 and constraint_error_mm(m, keys) < 20.0


def test_sequence_seams_are_smooth(gen):
    from vmclip.t2m.metrics import seam_smoothness

    for seed in range(3):
        m, seams = gen.generate_with_seams(
            "a person walks forward, then waves with the right hand", 6.0, seed
        )
        assert len(seams) >= 1
        r = seam_smoothness(m, seams)
        # Looser than the MotionCLIP-style model's 1.6: this model's seams were measured at up to
        # 2.3 x the clip's 95th percentile (the evaluation's four composed prompts, seeds 0-2).
        assert r["mean_ratio"] <= 1.1 and r["spike_ratio"] < 2.5, (seed, r)
