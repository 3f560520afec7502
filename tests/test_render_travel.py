"""A walk shortened to stay in the frame takes shorter steps instead of sliding its feet."""

import numpy as np
import pytest
from vmclip.motion.contact import ALL_FEET, foot_contacts, joint_heights
from vmclip.render.retarget import scale_travel


@pytest.fixture(scope="module")
def walk():
    from vmclip.t2m import load_generator

    return load_generator().generate("a person walks forward", 4.0, seed=0)


def _planted_speed(motion, contact) -> float:
    pos = motion.joint_positions()
    still = contact[1:] & contact[:-1]
    speed = np.linalg.norm(np.diff(pos[:, ALL_FEET][..., [0, 2]], axis=0), axis=-1) * motion.fps
    return float(np.median(speed[still]))


def test_scaled_walk_keeps_planted_feet_still(walk):
    pos = walk.joint_positions()
    contact = foot_contacts(pos, walk.fps)
    assert contact.sum() > 40
    travel = np.linalg.norm(walk.trans[-1, [0, 2]] - walk.trans[0, [0, 2]])
    assert travel > 1.0  # it walks

    short = scale_travel(walk, 0.2)
    short_travel = np.linalg.norm(short.trans[-1, [0, 2]] - short.trans[0, [0, 2]])
    assert short_travel == pytest.approx(0.2 * travel, rel=1e-4)
    np.testing.assert_allclose(short.trans[:, 1], walk.trans[:, 1], atol=1e-6)  # heights kept

    naive = walk.__class__(walk.rot6d, walk.trans.copy(), walk.fps, walk.texts)
    naive.trans[:, [0, 2]] = walk.trans[:1, [0, 2]] + 0.2 * (walk.trans[:, [0, 2]] - walk.trans[:1, [0, 2]])
    assert _planted_speed(naive, contact) > 0.3  # shortening the path alone: the feet slide (moonwalk)
    assert _planted_speed(short, contact) < 0.02
    # The feet still touch the floor where they did.
    assert np.abs(joint_heights(short.joint_positions())[:, ALL_FEET][contact]).max() < 0.08
