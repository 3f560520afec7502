"""Body regions and parts for the renderer: which region (trunk, head, a limb) each SMPL-24 joint's
part belongs to, the mirror image of every vertex, and the 2-D similarity that carries each part
from one view to another."""

from __future__ import annotations

import numpy as np

from vmclip.motion.skeleton import JOINT_NAMES

# Body regions for clothes ownership: clothes hang from one region (a limb, the trunk or the head).
_REGION_OF = {
    "pelvis": 0,
    "spine1": 0,
    "spine2": 0,
    "spine3": 0,
    "left_collar": 0,
    "right_collar": 0,
    "neck": 1,
    "head": 1,
}
for _side in ("left", "right"):
    for _j in ("shoulder", "elbow", "wrist", "hand"):
        _REGION_OF[f"{_side}_{_j}"] = 2 if _side == "left" else 3
    for _j in ("hip", "knee", "ankle", "foot"):
        _REGION_OF[f"{_side}_{_j}"] = 4 if _side == "left" else 5
TRUNK, HEAD = 0, 1
NUM_REGIONS = 6
JOINT_REGION = np.array([_REGION_OF[n] for n in JOINT_NAMES], dtype=np.int64)


def part_regions(num_parts: int) -> np.ndarray:
    """Body region of every body part index (parts beyond the 24 joints count as trunk)."""
    region = np.zeros(max(num_parts, len(JOINT_REGION)), dtype=np.int64)
    region[: len(JOINT_REGION)] = JOINT_REGION
    return region


def mirror_vertex_map(rest_vertices: np.ndarray) -> np.ndarray:
    """For every vertex, the vertex nearest to its mirror image across the body's x = 0 plane."""
    from scipy.spatial import cKDTree

    rest = np.asarray(rest_vertices, dtype=np.float64)
    centre = np.median(rest[:, 0])
    mirrored = rest.copy()
    mirrored[:, 0] = 2 * centre - mirrored[:, 0]
    return cKDTree(rest).query(mirrored)[1].astype(np.int64)


def part_similarities(
    src_uv: np.ndarray,
    dst_uv: np.ndarray,
    vertex_part: np.ndarray,
    num_parts: int,
    valid: np.ndarray | None = None,
    scale_range: tuple[float, float] = (0.5, 2.0),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per body part, the 2-D similarity (rotation + uniform scale) best mapping the part's vertices'
    `src_uv` to `dst_uv`: linear part (P, 2, 2) and centroids (P, 2) of both sides."""
    g = np.asarray(vertex_part, dtype=np.int64)
    w = np.ones(len(g)) if valid is None else valid.astype(np.float64)
    cnt = np.maximum(np.bincount(g, weights=w, minlength=num_parts), 1e-9)

    def mean(a):
        return np.bincount(g, weights=a * w, minlength=num_parts) / cnt

    ms = np.stack([mean(src_uv[:, 0]), mean(src_uv[:, 1])], 1)
    md = np.stack([mean(dst_uv[:, 0]), mean(dst_uv[:, 1])], 1)
    sx, sy = src_uv[:, 0] - ms[g, 0], src_uv[:, 1] - ms[g, 1]
    dx, dy = dst_uv[:, 0] - md[g, 0], dst_uv[:, 1] - md[g, 1]
    norm = mean(sx * sx + sy * sy)
    a = mean(sx * dx + sy * dy) / np.maximum(norm, 1e-9)
    b = mean(sx * dy - sy * dx) / np.maximum(norm, 1e-9)
    scale = np.hypot(a, b)
    ok = (norm > 1.0) & np.isfinite(scale) & (scale > 1e-6)
    clamp = np.where(ok, np.clip(scale, *scale_range) / np.maximum(scale, 1e-9), 1.0)
    a, b = np.where(ok, a * clamp, 1.0), np.where(ok, b * clamp, 0.0)
    lin = np.stack([np.stack([a, -b], -1), np.stack([b, a], -1)], -2)
    return lin, ms, md
