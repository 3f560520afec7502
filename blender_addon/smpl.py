"""The SMPL-24 skeleton as the add-on sees it, and the numpy maths between motion and Blender frames.

The add-on runs inside Blender's Python and cannot import the backend; the skeleton constants come from
the protocol package it vendors (`vmclip_protocol.skeleton`, the one copy the backend uses too). A motion
reply may carry its own names/parents/rest offsets (a fitted person); those win over the defaults.

Frames: the motion format is Y up, facing +Z, left = +X. Blender is Z up and a character faces -Y,
left = +X. `C` maps motion coordinates to Blender ones (a +90 degree turn about X).
"""

from __future__ import annotations

import numpy as np

try:  # the copy of shared/vmclip_protocol that build_addon.py vendors into the add-on package
    from .vmclip_protocol.skeleton import JOINT_NAMES, PARENTS, REST_OFFSETS, SOLE_BELOW_FOOT_JOINT
except ImportError:  # running from a source checkout (or this file alone): the package beside the backend
    from vmclip_protocol.skeleton import JOINT_NAMES, PARENTS, REST_OFFSETS, SOLE_BELOW_FOOT_JOINT

# Motion frame (Y up, facing +Z) -> Blender frame (Z up, facing -Y).
C = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])


class Skeleton:
    """Joint names, parents and rest offsets (motion frame, metres) of the armature to build."""

    def __init__(self, names=JOINT_NAMES, parents=PARENTS, offsets=None) -> None:
        self.names = tuple(str(n) for n in names)
        self.parents = tuple(int(p) for p in parents)
        self.offsets = np.array(REST_OFFSETS if offsets is None else offsets, dtype=np.float64)
        n = len(self.names)
        if len(self.parents) != n or self.offsets.shape != (n, 3):
            raise ValueError(
                f"skeleton: {n} names, {len(self.parents)} parents, offsets {self.offsets.shape}"
            )
        if any(not (-1 <= p < i) for i, p in enumerate(self.parents)) or self.parents[0] != -1:
            raise ValueError("skeleton: parents must precede their children and the root comes first")

    def rest_positions(self) -> np.ndarray:
        """Joint positions of the rest pose, motion frame, pelvis at the origin."""
        pos = np.zeros_like(self.offsets)
        for j in range(1, len(self.names)):
            pos[j] = pos[self.parents[j]] + self.offsets[j]
        return pos

    def pelvis_height(self) -> float:
        """Pelvis height above the floor when standing in the rest pose."""
        pos = self.rest_positions()
        feet = [i for i, n in enumerate(self.names) if "foot" in n or "ankle" in n]
        feet = feet or [int(pos[:, 1].argmin())]
        return float(-pos[feet, 1].min() + SOLE_BELOW_FOOT_JOINT)

    def children(self, j: int) -> list[int]:
        return [i for i, p in enumerate(self.parents) if p == j]


# --- rotations (numpy, batched, quaternions as w, x, y, z) ----------------------------------------


def axis_angle_to_matrix(aa: np.ndarray) -> np.ndarray:
    aa = np.asarray(aa, dtype=np.float64)
    angle = np.linalg.norm(aa, axis=-1, keepdims=True)
    axis = aa / np.where(angle < 1e-12, 1.0, angle)
    x, y, z = axis[..., 0], axis[..., 1], axis[..., 2]
    c, s = np.cos(angle[..., 0]), np.sin(angle[..., 0])
    t = 1.0 - c
    m = np.stack(
        [
            t * x * x + c,
            t * x * y - s * z,
            t * x * z + s * y,
            t * x * y + s * z,
            t * y * y + c,
            t * y * z - s * x,
            t * x * z - s * y,
            t * y * z + s * x,
            t * z * z + c,
        ],
        axis=-1,
    )
    return m.reshape(*aa.shape[:-1], 3, 3)


def matrix_to_quaternion(m: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) to unit quaternions (..., 4), w >= 0 (Shepperd's method)."""
    m = np.asarray(m, dtype=np.float64)
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    cands = np.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1)
    best = cands.argmax(-1)
    r = np.sqrt(np.maximum(np.take_along_axis(cands, best[..., None], -1)[..., 0], 1e-12))
    s = 0.5 / r
    d21, d02, d10 = m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]
    s01, s02, s12 = m[..., 0, 1] + m[..., 1, 0], m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1]
    options = np.stack(
        [
            np.stack([0.5 * r, d21 * s, d02 * s, d10 * s], -1),
            np.stack([d21 * s, 0.5 * r, s01 * s, s02 * s], -1),
            np.stack([d02 * s, s01 * s, 0.5 * r, s12 * s], -1),
            np.stack([d10 * s, s02 * s, s12 * s, 0.5 * r], -1),
        ],
        -2,
    )
    q = np.take_along_axis(options, best[..., None, None].repeat(4, -1), -2)[..., 0, :]
    q /= np.linalg.norm(q, axis=-1, keepdims=True)
    return np.where(q[..., :1] < 0, -q, q)


def quaternion_to_matrix(q: np.ndarray) -> np.ndarray:
    q = np.asarray(q, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    m = np.stack(
        [
            1 - 2 * (y * y + z * z),
            2 * (x * y - z * w),
            2 * (x * z + y * w),
            2 * (x * y + z * w),
            1 - 2 * (x * x + z * z),
            2 * (y * z - x * w),
            2 * (x * z - y * w),
            2 * (y * z + x * w),
            1 - 2 * (x * x + y * y),
        ],
        -1,
    )
    return m.reshape(*q.shape[:-1], 3, 3)


def matrix_to_axis_angle(m: np.ndarray) -> np.ndarray:
    q = matrix_to_quaternion(m)
    sin_half = np.linalg.norm(q[..., 1:], axis=-1, keepdims=True)
    angle = 2.0 * np.arctan2(sin_half, q[..., :1])
    small = sin_half < 1e-9
    scale = np.where(small, 2.0, angle / np.where(small, 1.0, sin_half))
    return q[..., 1:] * scale


def continuous_quaternions(q: np.ndarray) -> np.ndarray:
    """Flip signs along time (axis 0) so neighbouring keys take the short way round."""
    q = np.array(q, dtype=np.float64)
    for t in range(1, len(q)):
        flip = (q[t] * q[t - 1]).sum(-1) < 0
        q[t][flip] *= -1
    return q


def orthonormalize(m: np.ndarray) -> np.ndarray:
    """Nearest rotations to (..., 3, 3) matrices that may carry bone scale."""
    u, _, vt = np.linalg.svd(m)
    r = u @ vt
    det = np.linalg.det(r)
    u[..., :, 2] *= np.sign(det)[..., None]
    return u @ vt


# --- motion <-> pose bones --------------------------------------------------------------------------


def motion_to_bone_quaternions(local_rot: np.ndarray, bone_rest: np.ndarray) -> np.ndarray:
    """SMPL local rotations (T, J, 3, 3), motion frame, to pose-bone quaternions (T, J, 4).

    A bone's rest matrix B (armature space, 3x3) differs from the motion frame; its pose rotation is
    the motion's local rotation seen in the bone's own axes: B^T C R C^T B. Because every joint's frame
    in the rest T-pose is the world frame, the same formula holds for every bone, parent or not."""
    cb = C.T @ bone_rest  # (J, 3, 3): bone axes in motion coordinates
    mats = np.swapaxes(cb, -1, -2)[None] @ local_rot @ cb[None]
    return continuous_quaternions(matrix_to_quaternion(mats))


def root_location(trans: np.ndarray, root_rest: np.ndarray, root_head: np.ndarray) -> np.ndarray:
    """Pelvis positions (T, 3), motion frame, to the root pose-bone location in its own axes."""
    return ((C @ np.asarray(trans, dtype=np.float64).T).T - root_head) @ root_rest


def pose_to_motion(posed: np.ndarray, bone_rest: np.ndarray, parents, world_rot: np.ndarray) -> np.ndarray:
    """Posed bone matrices (T, J, 3, 3) in armature space to SMPL local rotations (T, J, 3, 3).

    `world_rot` (T, 3, 3) is the armature object's rotation, so moving the object moves the person."""
    glob_blender = world_rot[:, None] @ orthonormalize(posed) @ np.swapaxes(bone_rest, -1, -2)[None]
    glob = C.T[None, None] @ glob_blender @ C[None, None]
    local = np.empty_like(glob)
    for j, p in enumerate(parents):
        local[:, j] = glob[:, j] if p < 0 else np.swapaxes(glob[:, p], -1, -2) @ glob[:, j]
    return local
