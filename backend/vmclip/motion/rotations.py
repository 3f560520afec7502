"""Rotation conversions: axis-angle, matrices, quaternions (w, x, y, z) and MotionCLIP's 6D.

Every function takes a torch tensor or a numpy array (leading batch dimensions allowed) and returns
the same kind. 6D is the first two rows of the matrix, flattened (pytorch3d's convention, which
MotionCLIP and ACTOR use), decoded by Gram-Schmidt.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import numpy as np
import torch

Array = TypeVar("Array", torch.Tensor, np.ndarray)


def _accepts_numpy(fn: Callable[..., torch.Tensor]) -> Callable[..., Array]:
    @functools.wraps(fn)
    def wrapper(x, *args, **kwargs):
        if isinstance(x, np.ndarray) or not isinstance(x, torch.Tensor):
            arr = np.asarray(x)
            dtype = arr.dtype if arr.dtype in (np.float32, np.float64) else np.float64
            return fn(torch.from_numpy(np.ascontiguousarray(arr, dtype=dtype)), *args, **kwargs).numpy()
        return fn(x, *args, **kwargs)

    return wrapper


@_accepts_numpy
def axis_angle_to_quaternion(aa: torch.Tensor) -> torch.Tensor:
    angle = torch.linalg.norm(aa, dim=-1, keepdim=True)
    half = angle * 0.5
    # sin(x/2)/x with its Taylor series near zero, so tiny rotations keep full precision.
    small = angle.abs() < 1e-6
    scale = torch.where(small, 0.5 - angle * angle / 48.0, torch.sin(half) / torch.where(small, 1.0, angle))
    return torch.cat([torch.cos(half), aa * scale], dim=-1)


@_accepts_numpy
def quaternion_to_axis_angle(q: torch.Tensor) -> torch.Tensor:
    q = q / torch.linalg.norm(q, dim=-1, keepdim=True)
    q = torch.where(q[..., :1] < 0, -q, q)  # shortest arc: angle in [0, pi]
    sin_half = torch.linalg.norm(q[..., 1:], dim=-1, keepdim=True)
    half = torch.atan2(sin_half, q[..., :1])
    angle = 2.0 * half
    small = sin_half < 1e-6
    scale = torch.where(small, 2.0 + angle * angle / 12.0, angle / torch.where(small, 1.0, sin_half))
    return q[..., 1:] * scale


@_accepts_numpy
def quaternion_to_matrix(q: torch.Tensor) -> torch.Tensor:
    q = q / torch.linalg.norm(q, dim=-1, keepdim=True)
    w, x, y, z = q.unbind(-1)
    m = torch.stack(
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
        dim=-1,
    )
    return m.reshape(*q.shape[:-1], 3, 3)


@_accepts_numpy
def matrix_to_quaternion(m: torch.Tensor) -> torch.Tensor:
    """Shepperd's method: pick the largest of the four candidate denominators for stability."""
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    cands = torch.stack(
        [
            1 + m00 + m11 + m22,
            1 + m00 - m11 - m22,
            1 - m00 + m11 - m22,
            1 - m00 - m11 + m22,
        ],
        dim=-1,
    )
    best = cands.argmax(dim=-1, keepdim=True)
    r = torch.sqrt(torch.clamp(cands.gather(-1, best), min=1e-12)).squeeze(-1)  # = 4*|component|/2
    s = 0.5 / r
    qw = torch.stack(
        [
            0.5 * r,
            (m[..., 2, 1] - m[..., 1, 2]) * s,
            (m[..., 0, 2] - m[..., 2, 0]) * s,
            (m[..., 1, 0] - m[..., 0, 1]) * s,
        ],
        -1,
    )
    qx = torch.stack(
        [
            (m[..., 2, 1] - m[..., 1, 2]) * s,
            0.5 * r,
            (m[..., 0, 1] + m[..., 1, 0]) * s,
            (m[..., 0, 2] + m[..., 2, 0]) * s,
        ],
        -1,
    )
    qy = torch.stack(
        [
            (m[..., 0, 2] - m[..., 2, 0]) * s,
            (m[..., 0, 1] + m[..., 1, 0]) * s,
            0.5 * r,
            (m[..., 1, 2] + m[..., 2, 1]) * s,
        ],
        -1,
    )
    qz = torch.stack(
        [
            (m[..., 1, 0] - m[..., 0, 1]) * s,
            (m[..., 0, 2] + m[..., 2, 0]) * s,
            (m[..., 1, 2] + m[..., 2, 1]) * s,
            0.5 * r,
        ],
        -1,
    )
    q = torch.stack([qw, qx, qy, qz], dim=-2)
    q = q.gather(-2, best.unsqueeze(-1).expand(*best.shape[:-1], 1, 4)).squeeze(-2)
    q = q / torch.linalg.norm(q, dim=-1, keepdim=True)
    return torch.where(q[..., :1] < 0, -q, q)


@_accepts_numpy
def axis_angle_to_matrix(aa: torch.Tensor) -> torch.Tensor:
    return quaternion_to_matrix(axis_angle_to_quaternion(aa))


@_accepts_numpy
def matrix_to_axis_angle(m: torch.Tensor) -> torch.Tensor:
    return quaternion_to_axis_angle(matrix_to_quaternion(m))


@_accepts_numpy
def matrix_to_rotation_6d(m: torch.Tensor) -> torch.Tensor:
    return m[..., :2, :].reshape(*m.shape[:-2], 6)


@_accepts_numpy
def rotation_6d_to_matrix(d6: torch.Tensor) -> torch.Tensor:
    a1, a2 = d6[..., :3], d6[..., 3:]
    b1 = torch.nn.functional.normalize(a1, dim=-1)
    b2 = torch.nn.functional.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.linalg.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-2)


@_accepts_numpy
def axis_angle_to_rotation_6d(aa: torch.Tensor) -> torch.Tensor:
    return matrix_to_rotation_6d(axis_angle_to_matrix(aa))


@_accepts_numpy
def rotation_6d_to_axis_angle(d6: torch.Tensor) -> torch.Tensor:
    return matrix_to_axis_angle(rotation_6d_to_matrix(d6))


def _axis_matrix(axis: str, angle: torch.Tensor) -> torch.Tensor:
    c, s = torch.cos(angle), torch.sin(angle)
    one, zero = torch.ones_like(angle), torch.zeros_like(angle)
    rows = {
        "X": (one, zero, zero, zero, c, -s, zero, s, c),
        "Y": (c, zero, s, zero, one, zero, -s, zero, c),
        "Z": (c, -s, zero, s, c, zero, zero, zero, one),
    }[axis]
    return torch.stack(rows, dim=-1).reshape(*angle.shape, 3, 3)


@_accepts_numpy
def euler_to_matrix(angles: torch.Tensor, order: str) -> torch.Tensor:
    """Intrinsic rotations in the given axis order (BVH's channel order), angles in radians:
    R = R_order[0](a0) @ R_order[1](a1) @ R_order[2](a2)."""
    order = order.upper()
    m = _axis_matrix(order[0], angles[..., 0])
    for k in (1, 2):
        m = m @ _axis_matrix(order[k], angles[..., k])
    return m


@_accepts_numpy
def matrix_to_euler(m: torch.Tensor, order: str) -> torch.Tensor:
    """Inverse of `euler_to_matrix` for Tait-Bryan orders (all six of XYZ permutations)."""
    order = order.upper()
    i, j, k = ("XYZ".index(a) for a in order)
    # Sign of the permutation decides the signs in the closed form.
    sign = 1.0 if (i, j, k) in ((0, 1, 2), (1, 2, 0), (2, 0, 1)) else -1.0
    a1 = torch.asin(torch.clamp(sign * m[..., i, k], -1.0, 1.0))
    a0 = torch.atan2(-sign * m[..., j, k], m[..., k, k])
    a2 = torch.atan2(-sign * m[..., i, j], m[..., i, i])
    # Gimbal lock: a1 = +-90 deg; put all of the remaining rotation on a0.
    locked = m[..., i, k].abs() > 1 - 1e-9
    if locked.any():
        a2 = torch.where(locked, torch.zeros_like(a2), a2)
        a0_locked = torch.atan2(sign * m[..., k, j], m[..., j, j])
        a0 = torch.where(locked, a0_locked, a0)
    return torch.stack([a0, a1, a2], dim=-1)


@_accepts_numpy
def quaternion_multiply(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    if isinstance(b, np.ndarray):
        b = torch.from_numpy(b).to(a.dtype)
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        dim=-1,
    )
