"""Foot contacts and foot locking on the SMPL-24 skeleton.

`foot_contacts` finds the frames where a foot rests on the floor (low and slow). `lock_feet` pins
each planted foot: each run of contact frames of one foot pins it where it stands on average during
the run (at the heel, or at the toes when mostly they touch); hip and knee are turned by two-bone
inverse kinematics (the knee stays in its own bending plane) so the ankle reaches the pinned spot, and
the ankle keeps its global orientation, so the sole does not tilt. Pins fade in and out over
LOCK_BLEND_SECONDS. Used by the text-to-motion clean-up and by the renderer when it shortens a walk.
"""

from __future__ import annotations

import numpy as np

from vmclip.motion.format import Motion
from vmclip.motion.kinematics import forward_kinematics
from vmclip.motion.skeleton import JOINT_INDEX, SOLE_BELOW_FOOT_JOINT

FOOT_JOINTS = {
    "left": [JOINT_INDEX["left_ankle"], JOINT_INDEX["left_foot"]],
    "right": [JOINT_INDEX["right_ankle"], JOINT_INDEX["right_foot"]],
}
ALL_FEET = FOOT_JOINTS["left"] + FOOT_JOINTS["right"]
CONTACT_HEIGHT = 0.06  # m above the floor (soles)
CONTACT_SPEED = 0.5  # m/s horizontal
LOCK_BLEND_SECONDS = 0.12  # fade of a foot pin before and after its contact run
LEGS = {
    side: [JOINT_INDEX[f"{side}_{name}"] for name in ("hip", "knee", "ankle", "foot")]
    for side in ("left", "right")
}


def joint_heights(pos: np.ndarray) -> np.ndarray:
    """Heights (T, 24) of the body's lowest surface near each joint: soles for foot joints."""
    h = pos[..., 1].copy()
    h[:, ALL_FEET] -= SOLE_BELOW_FOOT_JOINT
    return h


def foot_contacts(pos: np.ndarray, fps: float) -> np.ndarray:
    """(T, 4) booleans for the ankle and foot joints (left ankle, left foot, right ankle, right foot)."""
    h = joint_heights(pos)[:, ALL_FEET]
    vel = np.zeros((len(pos), len(ALL_FEET)))
    if len(pos) > 1:
        d = np.linalg.norm(np.diff(pos[:, ALL_FEET][..., [0, 2]], axis=0), axis=-1) * fps
        vel[1:] = d
        vel[0] = d[0]
    return (h < CONTACT_HEIGHT) & (vel < CONTACT_SPEED)


def _rotation_between(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """(N, 3, 3) smallest rotations turning directions u into v (N, 3) (Rodrigues)."""
    u = u / np.maximum(np.linalg.norm(u, axis=-1, keepdims=True), 1e-9)
    v = v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)
    axis = np.cross(u, v)
    sin = np.linalg.norm(axis, axis=-1)
    cos = np.clip((u * v).sum(-1), -1.0, 1.0)
    k = axis / np.maximum(sin, 1e-12)[:, None]
    kx = np.zeros((len(u), 3, 3))
    kx[:, 0, 1], kx[:, 0, 2], kx[:, 1, 2] = -k[:, 2], k[:, 1], -k[:, 0]
    kx[:, 1, 0], kx[:, 2, 0], kx[:, 2, 1] = k[:, 2], -k[:, 1], k[:, 0]
    rot = np.eye(3) + sin[:, None, None] * kx + (1 - cos)[:, None, None] * (kx @ kx)
    rot[sin < 1e-9] = np.eye(3)  # parallel (or a degenerate antiparallel pair): leave as is
    return rot


def _contact_runs(contact: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) frame ranges where contact holds (runs of 2+ frames)."""
    edges = np.diff(np.concatenate([[0], contact.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [(int(a), int(b)) for a, b in zip(starts, ends, strict=True) if b - a >= 2]


def _pin_offsets(
    heel: np.ndarray, toe: np.ndarray, heel_on: np.ndarray, toe_on: np.ndarray, blend: int
) -> np.ndarray:
    """(T, 2) horizontal moves of one foot that pin it, during each run of contact frames, where it
    stands on average: at the heel (ankle joint, (T, 2)) or, when the toes touch the floor for more of
    the run, at the toes. Faded in and out over `blend` frames; the nearest run wins where fades meet."""
    n = len(heel)
    move = np.zeros((n, 2))
    weight = np.zeros(n)
    for a, b in _contact_runs(heel_on | toe_on):
        pivot = heel if heel_on[a:b].sum() >= toe_on[a:b].sum() else toe
        target = pivot[a:b].mean(0)
        lo, hi = max(0, a - blend), min(n, b + blend)
        t = np.arange(lo, hi)
        gap = np.maximum(a - t, t - (b - 1)).clip(min=0)
        x = 1 - gap / (blend + 1)
        w = x * x * (3 - 2 * x)
        take = w > weight[lo:hi]
        move[lo:hi][take] = (target - pivot[lo:hi])[take] * w[take, None]
        weight[lo:hi][take] = w[take]
    return move


def lock_feet(motion: Motion, offsets: np.ndarray | None = None, contact: np.ndarray | None = None) -> Motion:
    """Pin each planted foot where it stands (two-bone IK in hip and knee; see the module doc).
    `contact` (T, 4) overrides the contacts found in `motion` itself (`foot_contacts` order)."""
    if motion.num_frames < 3:
        return motion
    local = motion.matrices().astype(np.float64)
    trans = motion.trans.astype(np.float64)
    pos, glob = forward_kinematics(local, trans, offsets)
    if contact is None:
        contact = foot_contacts(pos, motion.fps)  # (T, 4): left ankle, left foot, right ankle, right foot
    elif contact.shape != (motion.num_frames, len(ALL_FEET)):
        raise ValueError(f"contact must be ({motion.num_frames}, {len(ALL_FEET)}), not {contact.shape}")
    out = pin_feet(local, pos, glob, contact, motion.fps)
    return Motion.from_matrices(out, trans, motion.fps, motion.texts, motion.betas)


def pin_feet(
    local: np.ndarray, pos: np.ndarray, glob: np.ndarray, contact: np.ndarray, fps: float
) -> np.ndarray:
    """`lock_feet` on arrays: local rotations (T, 24, 3, 3) with their forward kinematics (joint
    positions, global rotations) and contacts (T, 4) -> new local rotations (legs changed only)."""
    blend = max(1, int(round(LOCK_BLEND_SECONDS * fps)))
    out = local.copy()
    for s, (hip, knee, ankle, foot) in enumerate(LEGS.values()):
        move = _pin_offsets(
            pos[:, ankle, ::2], pos[:, foot, ::2], contact[:, 2 * s], contact[:, 2 * s + 1], blend
        )
        frames = np.flatnonzero(np.abs(move).sum(1) > 1e-6)
        if not len(frames):
            continue
        h, k, a = pos[frames, hip], pos[frames, knee], pos[frames, ankle]
        target = a.copy()
        target[:, [0, 2]] += move[frames]
        thigh = np.linalg.norm(k - h, axis=-1)
        shin = np.linalg.norm(a - k, axis=-1)
        reach = target - h
        dist = np.linalg.norm(reach, axis=-1)
        dist_c = np.clip(dist, np.abs(thigh - shin) + 1e-4, thigh + shin - 1e-4)
        axis = reach / np.maximum(dist, 1e-9)[:, None]
        target = h + axis * dist_c[:, None]
        # The knee keeps the side it bends to: its offset from the hip-ankle line, re-solved.
        old_axis = (a - h) / np.maximum(np.linalg.norm(a - h, axis=-1, keepdims=True), 1e-9)
        bend = (k - h) - ((k - h) * old_axis).sum(-1, keepdims=True) * old_axis
        bend = bend - (bend * axis).sum(-1, keepdims=True) * axis
        bend_len = np.linalg.norm(bend, axis=-1, keepdims=True)
        fallback = glob[frames, 0, :, 2]  # a straight leg bends forward (the pelvis's facing)
        bend = np.where(bend_len > 1e-6, bend / np.maximum(bend_len, 1e-9), fallback)
        along = (thigh**2 - shin**2 + dist_c**2) / (2 * dist_c)
        up = np.sqrt(np.maximum(thigh**2 - along**2, 0.0))
        new_knee = h + axis * along[:, None] + bend * up[:, None]
        turn_hip = _rotation_between(k - h, new_knee - h)
        hip_glob = turn_hip @ glob[frames, hip]
        shin_dir = np.einsum("nij,nj->ni", turn_hip, a - k)
        knee_glob = _rotation_between(shin_dir, target - new_knee) @ turn_hip @ glob[frames, knee]
        parent = glob[frames, 0]  # the hips hang from the pelvis
        out[frames, hip] = np.swapaxes(parent, -1, -2) @ hip_glob
        out[frames, knee] = np.swapaxes(hip_glob, -1, -2) @ knee_glob
        out[frames, ankle] = np.swapaxes(knee_glob, -1, -2) @ glob[frames, ankle]
    return out
