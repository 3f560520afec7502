"""Clean-up of generated motion: planted feet are pinned by leg inverse kinematics."""

import numpy as np
from vmclip.motion import Motion
from vmclip.motion import rotations as R
from vmclip.motion.contact import foot_contacts, lock_feet
from vmclip.motion.kinematics import forward_kinematics
from vmclip.motion.skeleton import JOINT_INDEX
from vmclip.t2m.cleanup import clean_motion

FPS = 30.0


def _spreading_stance(frames: int = 60, spread: float = 0.1) -> Motion:
    """Both feet on the floor while the legs open sideways: the feet slide apart (about 4 cm/s
    each), which moving the root cannot fix."""
    angle = np.linspace(0.0, spread, frames)
    rot = np.tile(np.eye(3), (frames, 24, 1, 1))
    for joint, sign in (("left_hip", 1.0), ("right_hip", -1.0)):
        c, s = np.cos(sign * angle), np.sin(sign * angle)
        rz = np.zeros((frames, 3, 3))
        rz[:, 0, 0], rz[:, 0, 1], rz[:, 1, 0], rz[:, 1, 1], rz[:, 2, 2] = c, -s, s, c, 1
        rot[:, JOINT_INDEX[joint]] = rz

    def rx(a: float) -> np.ndarray:
        return np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])

    for side in ("left", "right"):  # knees a little bent, as people stand (a straight leg cannot reach)
        rot[:, JOINT_INDEX[f"{side}_hip"]] = rot[:, JOINT_INDEX[f"{side}_hip"]] @ rx(-0.25)
        rot[:, JOINT_INDEX[f"{side}_knee"]] = rx(0.5)
        rot[:, JOINT_INDEX[f"{side}_ankle"]] = rx(-0.25)
    trans = np.zeros((frames, 3))
    pos = forward_kinematics(rot, trans)[0]
    trans[:, 1] -= pos[:, JOINT_INDEX["left_foot"], 1].min() - 0.03  # soles on the floor
    return Motion(R.matrix_to_rotation_6d(rot), trans, FPS, ["spread"])


def test_lock_feet_pins_sliding_feet_and_keeps_the_soles_level():
    motion = _spreading_stance()
    pos0, glob0 = forward_kinematics(motion.matrices(), motion.trans)
    ankles = [JOINT_INDEX["left_ankle"], JOINT_INDEX["right_ankle"]]
    toes = [JOINT_INDEX["left_foot"], JOINT_INDEX["right_foot"]]
    assert foot_contacts(pos0, FPS)[:, [1, 3]].all()  # the toes touch the floor throughout
    before = np.abs(pos0[:, toes][..., [0, 2]] - pos0[:1, toes][..., [0, 2]]).max()
    assert before > 0.03  # the feet really slide apart

    locked = lock_feet(motion)
    pos, glob = forward_kinematics(locked.matrices(), locked.trans)
    after = np.abs(pos[:, toes][..., [0, 2]] - pos[:1, toes][..., [0, 2]]).max()
    assert after < 0.001, f"planted feet still move {after * 100:.1f} cm"
    # The ankles keep their global orientation (the soles do not tilt), the pelvis is untouched.
    np.testing.assert_allclose(glob[:, ankles], glob0[:, ankles], atol=1e-6)
    np.testing.assert_allclose(pos[:, 0], pos0[:, 0], atol=1e-9)
    # Heights are kept; bone lengths come from the skeleton, so the legs stay attached.
    np.testing.assert_allclose(pos[:, ankles, 1], pos0[:, ankles, 1], atol=1e-3)


def test_lock_feet_leaves_swinging_feet_alone():
    motion = _spreading_stance()
    motion = Motion(motion.rot6d, motion.trans + np.array([0.0, 0.5, 0.0]), FPS, motion.texts)  # airborne
    locked = lock_feet(motion)
    np.testing.assert_allclose(locked.matrices(), motion.matrices(), atol=1e-9)


def test_clean_motion_stops_planted_feet_sliding_in_a_generated_walk():
    from vmclip.t2m import load_generator

    gen = load_generator()
    raw = gen.generate("a person walks forward", 4.0, seed=0, clean=False)
    clean = clean_motion(raw)
    pos = forward_kinematics(clean.matrices(), clean.trans)[0]
    feet = [JOINT_INDEX[n] for n in ("left_ankle", "left_foot", "right_ankle", "right_foot")]
    contact = foot_contacts(pos, FPS)
    still = contact[1:] & contact[:-1]
    speed = np.linalg.norm(np.diff(pos[:, feet][..., [0, 2]], axis=0), axis=-1) * FPS
    assert still.sum() > 20  # a walk has planted feet
    assert np.median(speed[still]) < 0.01, f"planted feet slide at {np.median(speed[still]):.3f} m/s"


def test_eased_pin_fades_keep_the_foot_s_own_motion():
    """`pin_offsets(eased=True)` (the add-on's planted feet): inside a run the pin is the same; in the
    fades the foot moves by the run's first/last move times the pin's weight, so a foot lifting off
    fast is not dragged back towards its pin (the default fade pulls it there)."""
    from vmclip_protocol.contact import pin_offsets

    n, blend = 30, 4
    heel = np.zeros((n, 2))
    heel[:, 1] = np.where(np.arange(n) < 20, 0.002 * np.arange(n), 0.04 + 0.15 * (np.arange(n) - 19))
    on = np.zeros(n, bool)
    on[8:20] = True
    plain, weight = pin_offsets(heel, heel, on, on, blend)
    eased, weight_e = pin_offsets(heel, heel, on, on, blend, eased=True)
    np.testing.assert_array_equal(weight, weight_e)
    np.testing.assert_allclose(eased[8:20], plain[8:20])
    after = np.arange(20, 20 + blend)
    np.testing.assert_allclose(eased[after], plain[19] * weight[after, None])
    before = np.arange(8 - blend, 8)
    np.testing.assert_allclose(eased[before], plain[8] * weight[before, None])
    assert np.abs(plain[after, 1]).max() > 0.1 and np.abs(eased[after, 1]).max() < 0.02
