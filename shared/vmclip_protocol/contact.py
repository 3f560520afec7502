"""Foot contacts and the planted-foot leg solve on the SMPL-24 skeleton (numpy only).

The one copy of the contact rules: the backend's clean-up and renderer (`vmclip.motion.contact`) and
the Blender add-on (which vendors this package and pins planted feet on an artist's rig) import it.
A foot is in contact where it is low and slow; each run of contact frames pins it where it stands on
average (at the heel, or at the toes when mostly they touch), faded in and out over
LOCK_BLEND_SECONDS; hip and knee are turned by two-bone inverse kinematics (the knee keeps its own
bending plane) so the ankle reaches the pinned spot.

Conventions: Y up (positions in SMPL's axes), metres.
"""

from __future__ import annotations

import numpy as np

from .skeleton import JOINT_INDEX, SOLE_BELOW_FOOT_JOINT

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


def blend_frames(fps: float) -> int:
    return max(1, int(round(LOCK_BLEND_SECONDS * fps)))


def rotation_between(u: np.ndarray, v: np.ndarray) -> np.ndarray:
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


def contact_runs(contact: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) frame ranges where contact holds (runs of 2+ frames)."""
    edges = np.diff(np.concatenate([[0], contact.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [(int(a), int(b)) for a, b in zip(starts, ends, strict=True) if b - a >= 2]


def pin_offsets(
    heel: np.ndarray,
    toe: np.ndarray,
    heel_on: np.ndarray,
    toe_on: np.ndarray,
    blend: int,
    *,
    eased: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """(moves (T, 2), weights (T,)): horizontal moves of one foot that pin it, during each run of
    contact frames, where it stands on average: at the heel (ankle joint, (T, 2)) or, when the toes
    touch the floor for more of the run, at the toes; and how much of the pin holds at each frame (1
    inside a run). Faded in and out over `blend` frames; the nearest run wins where fades meet.
    `eased`: a fade moves the foot by the run's first (last) frame's move, eased in (out), so the foot
    keeps its own motion before landing and after lifting off; without it the fade pulls the foot
    towards the pin, which at a fast lift-off drags it back and flings it forward within a few frames."""
    n = len(heel)
    move = np.zeros((n, 2))
    weight = np.zeros(n)
    for a, b in contact_runs(heel_on | toe_on):
        pivot = heel if heel_on[a:b].sum() >= toe_on[a:b].sum() else toe
        target = pivot[a:b].mean(0)
        lo, hi = max(0, a - blend), min(n, b + blend)
        t = np.arange(lo, hi)
        gap = np.maximum(a - t, t - (b - 1)).clip(min=0)
        x = 1 - gap / (blend + 1)
        w = x * x * (3 - 2 * x)
        take = w > weight[lo:hi]
        offset = target - pivot[lo:hi]
        if eased:  # (inside the run gap is 0: the pin itself)
            offset = np.where((t < a)[:, None], target - pivot[a], offset)
            offset = np.where((t >= b)[:, None], target - pivot[b - 1], offset)
        move[lo:hi][take] = offset[take] * w[take, None]
        weight[lo:hi][take] = w[take]
    return move, weight


def two_bone(
    h: np.ndarray, k: np.ndarray, a: np.ndarray, target: np.ndarray, fallback: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Turns (N, 3, 3) of the thigh and of the shin (global, the shin's includes the thigh's) that
    bring the ankle `a` of the leg hip `h` - knee `k` to `target` (clamped to the leg's reach); the
    knee keeps the side it bends to, a straight leg bends towards `fallback` (N, 3)."""
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
    bend = np.where(bend_len > 1e-6, bend / np.maximum(bend_len, 1e-9), fallback)
    along = (thigh**2 - shin**2 + dist_c**2) / (2 * dist_c)
    up = np.sqrt(np.maximum(thigh**2 - along**2, 0.0))
    new_knee = h + axis * along[:, None] + bend * up[:, None]
    turn_hip = rotation_between(k - h, new_knee - h)
    shin_dir = np.einsum("nij,nj->ni", turn_hip, a - k)
    turn_knee = rotation_between(shin_dir, target - new_knee) @ turn_hip
    return turn_hip, turn_knee
