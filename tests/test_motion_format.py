import numpy as np
import pytest
from vmclip.errors import InputError
from vmclip.motion import JOINT_INDEX, Motion, load_npz, mirror_text


def _random_motion(n=40, fps=30.0, seed=0):
    rng = np.random.default_rng(seed)
    return Motion.from_axis_angle(
        rng.normal(0, 0.3, (n, 72)), rng.normal(0, 0.5, (n, 3)), fps, ["a person waves with the left hand"]
    )


def test_npz_round_trip_is_amass_style(tmp_path):
    m = _random_motion()
    path = m.save_npz(tmp_path / "m.npz")
    with np.load(path) as raw:
        assert raw["poses"].shape == (40, 72) and raw["trans"].shape == (40, 3)
        assert float(raw["mocap_framerate"]) == 30.0
    back = load_npz(path)
    np.testing.assert_allclose(back.matrices(), m.matrices(), atol=1e-5)
    np.testing.assert_allclose(back.trans, m.trans, atol=1e-6)
    assert back.texts == m.texts


def test_mirroring_swaps_sides_and_words():
    m = _random_motion()
    mir = m.mirrored()
    pos, pos_m = m.joint_positions(), mir.joint_positions()
    li, ri = JOINT_INDEX["left_wrist"], JOINT_INDEX["right_wrist"]
    np.testing.assert_allclose(pos_m[:, ri] * [-1, 1, 1], pos[:, li], atol=1e-5)
    assert mir.texts == ["a person waves with the right hand"]
    np.testing.assert_allclose(mir.mirrored().matrices(), m.matrices(), atol=1e-5)
    assert mirror_text("Turn Left, then right") == "Turn Right, then left"


def test_resample_halves_frame_count_and_keeps_endpoints():
    m = _random_motion(n=61, fps=60.0)
    r = m.resample(30.0)
    assert r.num_frames == 31 and r.fps == 30.0
    np.testing.assert_allclose(r.matrices()[[0, -1]], m.matrices()[[0, -1]], atol=1e-5)
    np.testing.assert_allclose(r.matrices()[5], m.matrices()[10], atol=1e-5)


@pytest.mark.parametrize(
    "bad",
    [
        {"poses": np.zeros((0, 72)), "trans": np.zeros((0, 3))},
        {"poses": np.full((3, 72), np.nan), "trans": np.zeros((3, 3))},
        {"pose": np.zeros((3, 72)), "trans": np.zeros((3, 3))},
        {"poses": np.zeros((3, 10)), "trans": np.zeros((3, 3))},
        {"poses": np.zeros((3, 72)), "trans": np.zeros((4, 3))},
    ],
)
def test_bad_npz_is_one_clear_error(tmp_path, bad):
    path = tmp_path / "bad.npz"
    np.savez(path, **bad)
    with pytest.raises(InputError, match="bad.npz"):
        load_npz(path)


def test_not_an_npz(tmp_path):
    path = tmp_path / "junk.npz"
    path.write_bytes(b"not a zip")
    with pytest.raises(InputError, match="junk.npz"):
        load_npz(path)
