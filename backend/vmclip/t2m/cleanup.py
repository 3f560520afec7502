"""Clean-up of generated motion: jitter removed, body on the floor, planted feet held.

1. Jitter: a small Gaussian filter over time on the 6D rotations and the translation (then back onto
   rotation matrices), which removes frame-to-frame noise and the kinks of up-sampling.
2. Floor: the whole motion is shifted so the lowest body point (soles for the feet) rests on y = 0
   (a low percentile over time, so one bad frame cannot lift everything); frames that still sink
   below the floor are lifted smoothly.
3. Planted feet: a foot joint low and slow is in contact; while any foot is planted, the root's
   horizontal velocity is corrected by the planted feet's mean horizontal velocity, which is exactly
   the sliding a viewer would see (the legs' motion is kept, the body travels with its steps).
4. Foot lock: what the root cannot fix (two planted feet sliding apart, a foot sliding while the
   body turns) is fixed in the legs (`vmclip.motion.contact.lock_feet`).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

from vmclip.motion import Motion
from vmclip.motion import rotations as R
from vmclip.motion.contact import ALL_FEET, foot_contacts, joint_heights, pin_feet
from vmclip.motion.kinematics import forward_kinematics


def smooth(motion: Motion, sigma: float = 1.0) -> Motion:
    if motion.num_frames < 3 or sigma <= 0:
        return motion
    rot = gaussian_filter1d(motion.rot6d.astype(np.float64), sigma, axis=0, mode="nearest")
    trans = gaussian_filter1d(motion.trans.astype(np.float64), sigma, axis=0, mode="nearest")
    mats = R.rotation_6d_to_matrix(rot)  # Gram-Schmidt puts the filtered 6D back on rotations
    return Motion.from_matrices(mats, trans, motion.fps, motion.texts, motion.betas)


def _floor_lift(pos: np.ndarray) -> np.ndarray:
    """(T,) vertical root moves that put the lowest body point (soles for the feet) on y = 0: a low
    percentile over time, so one bad frame cannot lift everything; frames still sinking are lifted."""
    low = joint_heights(pos).min(axis=1)  # (T,)
    base = np.percentile(low, 2)
    sink = np.maximum(0.0, base - low)
    # Lift sinking frames; the max keeps short dips fully corrected after smoothing.
    lift = np.maximum(sink, gaussian_filter1d(sink, 2.0, mode="nearest")) if sink.any() else sink
    return lift - base


def _slide_removal(pos: np.ndarray, fps: float) -> np.ndarray:
    """(T, 2) horizontal root moves that cancel the planted feet's mean slide (x, z)."""
    contact = foot_contacts(pos, fps)  # (T, 4)
    feet = pos[:, ALL_FEET][..., [0, 2]]  # (T, 4, 2) horizontal
    vel = np.diff(feet, axis=0)  # (T-1, 4, 2): per-frame foot displacement
    planted = contact[1:] & contact[:-1]
    weight = planted.astype(np.float64)
    n = weight.sum(1, keepdims=True)
    slide = (vel * weight[..., None]).sum(1) / np.maximum(n, 1)  # (T-1, 2)
    slide[n[:, 0] == 0] = 0.0
    # Smooth the correction a little so contact changes do not make the body pop.
    slide = gaussian_filter1d(slide, 1.0, axis=0, mode="nearest")
    return np.concatenate([np.zeros((1, 2)), -np.cumsum(slide, axis=0)])


def put_on_floor(motion: Motion, offsets: np.ndarray | None = None) -> Motion:
    pos = forward_kinematics(motion.matrices(), motion.trans.astype(np.float64), offsets)[0]
    trans = motion.trans.astype(np.float64).copy()
    trans[:, 1] += _floor_lift(pos)
    return Motion(motion.rot6d, trans, motion.fps, motion.texts, motion.betas)


def hold_planted_feet(motion: Motion, offsets: np.ndarray | None = None) -> Motion:
    if motion.num_frames < 3:
        return motion
    pos = forward_kinematics(motion.matrices(), motion.trans.astype(np.float64), offsets)[0]
    trans = motion.trans.astype(np.float64).copy()
    trans[:, [0, 2]] += _slide_removal(pos, motion.fps)
    return Motion(motion.rot6d, trans, motion.fps, motion.texts, motion.betas)


def clean_motion(motion: Motion, offsets: np.ndarray | None = None, sigma: float = 1.0) -> Motion:
    """Jitter removed, lowest point on the floor, planted feet held, then pinned by leg IK.

    Forward kinematics runs once: after smoothing only the root translation changes until the foot
    lock, and moving the root moves every joint by the same amount."""
    out = smooth(motion, sigma)
    if out.num_frames < 3:
        return put_on_floor(out, offsets)
    local = out.matrices().astype(np.float64)
    trans = out.trans.astype(np.float64).copy()
    pos, glob = forward_kinematics(local, trans, offsets)

    def move_root(move: np.ndarray) -> None:
        trans[:] += move
        pos[:] += move[:, None]

    move_root(np.stack([np.zeros(len(trans)), _floor_lift(pos), np.zeros(len(trans))], 1))
    slide = _slide_removal(pos, out.fps)
    move_root(np.stack([slide[:, 0], np.zeros(len(trans)), slide[:, 1]], 1))
    move_root(np.stack([np.zeros(len(trans)), _floor_lift(pos), np.zeros(len(trans))], 1))
    local = pin_feet(local, pos, glob, foot_contacts(pos, out.fps), out.fps)
    return Motion.from_matrices(local, trans, out.fps, out.texts, out.betas)


def foot_skating(motion: Motion, offsets: np.ndarray | None = None) -> dict[str, float]:
    """Mean horizontal speed (cm/s) of foot joints while in contact, and the share of contact frames
    where a foot slides faster than 5 cm/s (lower is better)."""
    pos = forward_kinematics(motion.matrices(), motion.trans.astype(np.float64), offsets)[0]
    h = joint_heights(pos)[:, ALL_FEET]
    on_floor = (h[1:] < 0.05) & (h[:-1] < 0.05)
    speed = np.linalg.norm(np.diff(pos[:, ALL_FEET][..., [0, 2]], axis=0), axis=-1) * motion.fps
    if not on_floor.any():
        return {"contact_speed_cm_s": 0.0, "skating_ratio": 0.0}
    s = speed[on_floor]
    return {"contact_speed_cm_s": float(100 * s.mean()), "skating_ratio": float((s > 0.05).mean())}


def jitter(motion: Motion, offsets: np.ndarray | None = None) -> float:
    """Mean joint jerk magnitude (m/s^3): third time-difference of joint positions."""
    if motion.num_frames < 4:
        return 0.0
    pos = forward_kinematics(motion.matrices(), motion.trans.astype(np.float64), offsets)[0]
    jerk = np.diff(pos, n=3, axis=0) * motion.fps**3
    return float(np.linalg.norm(jerk, axis=-1).mean())
