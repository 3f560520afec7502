"""Our own BVH export re-opens through the general mocap reader unchanged (< 1e-4 rad)."""

import numpy as np
from vmclip.motion import Motion, load_mocap, write_bvh
from vmclip.motion.rotations import matrix_to_axis_angle


def test_load_mocap_reads_our_bvh_exactly(tmp_path):
    rng = np.random.default_rng(3)
    m = Motion.from_axis_angle(rng.normal(0, 0.5, (25, 72)), rng.normal(0, 0.4, (25, 3)), 30.0, ["spin"])
    write_bvh(m, tmp_path / "m.bvh")
    back = load_mocap(tmp_path / "m.bvh", texts=["spin"])
    assert back.num_frames == m.num_frames and back.texts == ["spin"]
    diff = matrix_to_axis_angle(np.swapaxes(back.matrices(), -1, -2) @ m.matrices())
    assert np.linalg.norm(diff, axis=-1).max() < 1e-4
    np.testing.assert_allclose(back.trans, m.trans, atol=1e-5)


def test_our_bvh_at_60_fps_is_resampled_to_30(tmp_path):
    rng = np.random.default_rng(4)
    m = Motion.from_axis_angle(rng.normal(0, 0.2, (41, 72)), np.zeros((41, 3)), 60.0)
    write_bvh(m, tmp_path / "m60.bvh")
    back = load_mocap(tmp_path / "m60.bvh")
    assert back.fps == 30.0 and back.num_frames == 21
    np.testing.assert_allclose(back.matrices()[3], m.matrices()[6], atol=1e-5)
