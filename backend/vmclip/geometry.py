"""Camera and body geometry, in one place: the pinhole camera, projection, normals, which surface a
photo sees, and the skeleton's leg length. Used by the fit, the renderer, the server's body payload
and the debug overlays.

Cameras follow OpenCV: pixel ~ K @ (R @ X_world + t), pixel centres at integer coordinates, rows
down; the world is the motion format's frame (Y up, metres). The renderer's rasteriser (OpenGL,
`vmclip.render.raster`) projects with `project` too; `zbuffer` and `silhouette` are the small
CPU rasterisers for what needs no GL context (the server's per-vertex visibility, the fit's
silhouette scores, the debug overlays).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

# The skeleton's leg length (for scaling a motion's travel to a body) lives with the skeleton's
# kinematics; it is part of this module's interface.
from vmclip.motion.kinematics import leg_length, motion_leg_length

__all__ = [
    "DEPTH_TOLERANCE",
    "NEAR",
    "SEEN_FACING",
    "Camera",
    "face_normals",
    "facing",
    "leg_length",
    "motion_leg_length",
    "project",
    "silhouette",
    "vertex_normals",
    "zbuffer",
]

# --- what a photo sees (one set for the renderer and the Blender body) ----------------------------------
# A surface counts as seen (a source of texture) from this facing on (cosine between its normal and
# the direction to the camera): at grazing angles one photo pixel would be smeared over a long strip of
# surface, and the outline's pixels mix the person with the background.
SEEN_FACING = 0.35
# A point within this distance (metres) behind the nearest surface at its pixel is on that surface:
# the depth buffer is sampled at pixel centres, a vertex lies between them.
DEPTH_TOLERANCE = 0.03
# Points nearer the camera than this (metres) are not drawn (the rasterisers' near plane).
NEAR = 0.02


@dataclass
class Camera:
    """Pinhole camera, OpenCV convention: pixel ~ K @ (R @ X_world + t); world = motion frame (Y up, m)."""

    K: np.ndarray
    R: np.ndarray
    t: np.ndarray

    @property
    def centre(self) -> np.ndarray:
        """The camera's position in the world."""
        return -np.asarray(self.R).T @ np.asarray(self.t)

    def project(self, points: np.ndarray) -> np.ndarray:
        """World points (..., 3) -> pixel coordinates (..., 2)."""
        return project(points, self.K, self.R, self.t)[0]

    def project_depth(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points (..., 3) -> pixel coordinates (..., 2) and camera depth (...)."""
        return project(points, self.K, self.R, self.t)

    def scaled(self, sx: float, sy: float) -> Camera:
        """The camera for the photo resized by (sx, sy) (pixel centres stay on pixel centres)."""
        K = np.array(self.K, dtype=np.float64).copy()
        K[0, :] *= sx
        K[1, :] *= sy
        K[0, 2] += 0.5 * sx - 0.5
        K[1, 2] += 0.5 * sy - 0.5
        return Camera(K=K, R=np.asarray(self.R, dtype=np.float64), t=np.asarray(self.t, dtype=np.float64))

    def reframed(
        self, back: float, zoom_out: float, centre: tuple[float, float], size: tuple[int, int]
    ) -> Camera:
        """A camera operator's take on this camera: moved `back` metres backwards along its optical
        axis, then showing `zoom_out` times as much of the view, centred on pixel `centre` of the moved
        camera, in a frame of `size` (width, height). Pan and zoom change K only (a shifted, larger
        sensor), so a backdrop plane facing the camera maps to the frame by one affine map."""
        w, h = size
        k = 1.0 / float(zoom_out)
        A = np.array(
            [[k, 0.0, (w - 1) / 2 - k * centre[0]], [0.0, k, (h - 1) / 2 - k * centre[1]], [0, 0, 1]]
        )
        t = np.asarray(self.t, dtype=np.float64) + np.array([0.0, 0.0, float(back)])
        return Camera(K=A @ np.asarray(self.K, dtype=np.float64), R=np.asarray(self.R, dtype=np.float64), t=t)

    def to_dict(self) -> dict[str, Any]:
        return {
            "K": np.asarray(self.K).tolist(),
            "R": np.asarray(self.R).tolist(),
            "t": np.asarray(self.t).tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Camera:
        return cls(K=np.asarray(d["K"], float), R=np.asarray(d["R"], float), t=np.asarray(d["t"], float))


def project(
    vertices: np.ndarray, K: np.ndarray, R: np.ndarray | None = None, t: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """World points (..., 3) -> pixel coordinates (..., 2) and camera depth (...). Without R and t
    the points are already in the camera's frame."""
    cam = np.asarray(vertices, dtype=np.float64)
    if R is not None:
        cam = cam @ np.asarray(R, dtype=np.float64).T + np.asarray(t, dtype=np.float64)
    z = cam[..., 2]
    uv = cam @ np.asarray(K, dtype=np.float64).T
    zs = np.where(np.abs(z) < 1e-9, 1e-9, z)
    return uv[..., :2] / zs[..., None], z


def kabsch(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rotation R (3, 3) minimising sum |R a_i - b_i|^2 over the centred point sets a, b (N, 3)."""
    a = a - a.mean(0)
    b = b - b.mean(0)
    u, _, vt = np.linalg.svd(b.T @ a)
    d = np.sign(np.linalg.det(u @ vt))
    return u @ np.diag([1.0, 1.0, d]) @ vt


# --- normals -----------------------------------------------------------------------------------------------


def face_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unit face normals (F, 3) (the winding's: the body meshes wind outwards)."""
    v = np.asarray(vertices, dtype=np.float64)
    fn = np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])
    return fn / np.maximum(np.linalg.norm(fn, axis=1, keepdims=True), 1e-12)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unit area-weighted vertex normals (V, 3), turned outwards (a mesh wound clockwise, whose signed
    volume is negative, gets its normals flipped)."""
    v = np.asarray(vertices, dtype=np.float64)
    fn = np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])
    if np.einsum("ij,ij->", v[faces[:, 0]], fn) < 0:
        fn = -fn
    n = np.stack(
        [
            sum(np.bincount(faces[:, k], weights=fn[:, c], minlength=len(v)) for k in range(3))
            for c in range(3)
        ],
        1,
    )
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def facing(vertices: np.ndarray, normals: np.ndarray, camera: Camera) -> np.ndarray:
    """Cosine between each vertex's normal and the direction from it to the camera (V,)."""
    v = np.asarray(vertices, dtype=np.float64)
    view = camera.centre[None, :] - v
    view /= np.maximum(np.linalg.norm(view, axis=1, keepdims=True), 1e-12)
    return (normals * view).sum(1)


# --- CPU rasterisers ---------------------------------------------------------------------------------------


def zbuffer(px: np.ndarray, depth: np.ndarray, faces: np.ndarray, width: int, height: int) -> np.ndarray:
    """Nearest camera depth per pixel (H, W), inf where no triangle covers the pixel centre.

    `px` (V, 2) pixel coordinates (pixel centres at integers), `depth` (V,) camera z. Every triangle
    is tested at the pixel centres of its bounding box at once (numpy), with perspective-correct depth."""
    tri = px[faces]  # (F, 3, 2)
    z = depth[faces]  # (F, 3)
    x0 = np.clip(np.ceil(tri[..., 0].min(1)), 0, width - 1).astype(np.int64)
    x1 = np.clip(np.floor(tri[..., 0].max(1)), 0, width - 1).astype(np.int64)
    y0 = np.clip(np.ceil(tri[..., 1].min(1)), 0, height - 1).astype(np.int64)
    y1 = np.clip(np.floor(tri[..., 1].max(1)), 0, height - 1).astype(np.int64)
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    nx, ny = x1 - x0 + 1, y1 - y0 + 1
    keep = (z > NEAR).all(1) & (np.abs(area) > 1e-9) & (nx > 0) & (ny > 0)
    keep &= (tri[..., 0].max(1) >= 0) & (tri[..., 0].min(1) <= width - 1)
    keep &= (tri[..., 1].max(1) >= 0) & (tri[..., 1].min(1) <= height - 1)
    buf = np.full(height * width, np.inf)
    f = np.nonzero(keep)[0]
    counts = (nx * ny)[f]
    if len(f) == 0:
        return buf.reshape(height, width)
    fi = np.repeat(f, counts)
    local = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    cx = x0[fi] + local % nx[fi]
    cy = y0[fi] + local // nx[fi]
    ax, ay, bx, by, qx, qy = a[fi, 0], a[fi, 1], b[fi, 0], b[fi, 1], c[fi, 0], c[fi, 1]
    inv = 1.0 / area[fi]
    wa = ((bx - cx) * (qy - cy) - (by - cy) * (qx - cx)) * inv
    wb = ((qx - cx) * (ay - cy) - (qy - cy) * (ax - cx)) * inv
    wc = 1.0 - wa - wb
    inside = (wa >= -1e-6) & (wb >= -1e-6) & (wc >= -1e-6)
    zf = z[fi]
    inv_z = wa / zf[:, 0] + wb / zf[:, 1] + wc / zf[:, 2]
    pix = (cy * width + cx)[inside]
    np.minimum.at(buf, pix, 1.0 / inv_z[inside])
    return buf.reshape(height, width)


def silhouette(px: np.ndarray, faces: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Binary silhouette (H, W) uint8 of a mesh whose vertices project to pixel coordinates `px`
    (V, 2): every triangle filled (OpenCV, 1/16-pixel precision), the covered pixels 1."""
    h, w = size
    img = np.zeros((h, w), np.uint8)
    tris = np.round(px[faces] * 16).astype(np.int32)
    tris = np.clip(tris, -(1 << 20), 1 << 20)
    for tri in tris:
        cv2.fillConvexPoly(img, tri, 1, cv2.LINE_8, 4)
    return img
