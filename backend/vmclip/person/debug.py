"""Debug overlays: keypoints, mask and the fitted body's outline and wireframe over the photo."""

from __future__ import annotations

import cv2
import numpy as np

from vmclip.geometry import face_normals, project, silhouette
from vmclip.motion.skeleton import PARENTS


def overlay(
    image: np.ndarray,
    mask: np.ndarray,
    keypoints: np.ndarray,
    joints2d: np.ndarray,
    vertices_world: np.ndarray | None = None,
    faces: np.ndarray | None = None,
    K: np.ndarray | None = None,
    R: np.ndarray | None = None,
    t: np.ndarray | None = None,
    text: str = "",
) -> np.ndarray:
    """A 2x2 panel: photo+keypoints | mask | body wireframe | body outline vs mask outline."""
    h, w = image.shape[:2]
    scale = max(1.0, 384.0 / max(h, w))
    size = (round(w * scale), round(h * scale))
    img = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    m = cv2.resize(mask.astype(np.float32), size, interpolation=cv2.INTER_LINEAR)
    lw = max(1, round(scale))

    kp_panel = img.copy()
    for j, p in enumerate(PARENTS):
        if p >= 0 and joints2d[j, 2] > 0.3 and joints2d[p, 2] > 0.3:
            a = tuple(int(v) for v in joints2d[j, :2] * scale)
            b = tuple(int(v) for v in joints2d[p, :2] * scale)
            cv2.line(kp_panel, a, b, (255, 255, 0), lw, cv2.LINE_AA)
    for x, y, _, vis in keypoints:
        colour = (0, 255, 0) if vis > 0.5 else (255, 0, 0)
        cv2.circle(kp_panel, (int(x * scale), int(y * scale)), 2 * lw + 1, colour, -1, cv2.LINE_AA)

    mask_panel = (img * 0.35 + np.dstack([m * 255, m * 120, m * 255]) * 0.65).astype(np.uint8)

    wire = (img * 0.6).astype(np.uint8)
    outline = img.copy()
    mask_edges = cv2.Canny((m > 0.5).astype(np.uint8) * 255, 50, 150) > 0
    outline[mask_edges] = (255, 0, 255)
    if vertices_world is not None and faces is not None and K is not None:
        uv = project(vertices_world, K, R, t)[0] * scale
        edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
        edges = np.unique(np.sort(edges, 1), axis=0)[::3]  # a third of the edges keeps it readable
        pts = np.round(uv[edges] * 4).astype(np.int32)
        cv2.polylines(wire, list(pts), False, (0, 255, 255), 1, cv2.LINE_AA, shift=2)
        sil = silhouette(uv, faces, size[::-1])
        contours, _ = cv2.findContours(sil, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(outline, contours, -1, (0, 255, 0), lw, cv2.LINE_AA)
    top = np.concatenate([kp_panel, mask_panel], 1)
    bottom = np.concatenate([wire, outline], 1)
    panel = np.concatenate([top, bottom], 0)
    if text:
        cv2.putText(panel, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(panel, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return panel


def shaded_render(
    vertices_cam: np.ndarray,
    faces: np.ndarray,
    K: np.ndarray,
    background: np.ndarray,
    colour: tuple[int, int, int] = (200, 160, 130),
) -> np.ndarray:
    """Draw a mesh (camera coordinates) over `background` with flat Lambert shading, far faces first
    (painter's algorithm). For debug views and for synthetic test photos; not the product renderer."""
    img = background.copy()
    normals = face_normals(vertices_cam, faces)
    centres = vertices_cam[faces].mean(1)
    facing = (normals * centres).sum(1) < 0  # towards the camera
    light = np.array([0.3, -0.5, -1.0])
    light /= np.linalg.norm(light)
    shade = np.clip(0.25 + 0.75 * np.clip(normals @ light, 0, 1), 0, 1)
    uv = project(vertices_cam, K)[0]
    pts = np.round(uv[faces] * 16).astype(np.int32)
    base = np.asarray(colour, float)
    for f in np.argsort(-centres[:, 2]):
        if facing[f]:
            c = tuple(int(v) for v in base * shade[f])
            cv2.fillConvexPoly(img, pts[f], c, cv2.LINE_AA, 4)
    return img
