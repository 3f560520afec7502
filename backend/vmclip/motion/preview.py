"""Stick-figure preview video of a motion (H.264, yuv420p, via `vmclip.video.write_mp4`).

What is drawn, and why:
- the floor at y = 0 (the motion format's ground) as a grid, plus the skeleton's shadow on it, so that
  floating or sinking feet are obvious instead of being hidden by a floor fitted to the feet;
- the skeleton with the body's left side in blue, the right side in orange and the centre line in light
  grey (mirroring or left/right swaps in a retarget are visible at a glance);
- a green nose line from the head towards the face, so the facing direction is readable;
- a camera that keeps a fixed world orientation (turns of the body stay visible as turns) and follows
  the pelvis along the floor with a smoothed path; its distance fits the whole clip's pose extent so the
  figure does not pump in size;
- the text (wrapped) at the top and the time at the bottom.
"""

from __future__ import annotations

import textwrap
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from vmclip.errors import InputError
from vmclip.motion.format import Motion
from vmclip.motion.skeleton import JOINT_NAMES, PARENTS

# Colours (RGB)
_BG_TOP = np.array([34, 38, 46], dtype=np.float32)
_BG_BOTTOM = np.array([58, 62, 70], dtype=np.float32)
_GRID = (92, 98, 110)
_GRID_AXIS = (130, 136, 150)
_LEFT = (70, 150, 255)
_RIGHT = (255, 140, 50)
_CENTRE = (225, 225, 225)
_TEXT = (245, 245, 245)
_NOSE = (120, 230, 120)
_SHADOW_ALPHA = 0.6

_FOV_DEG = 40.0
_YAW_DEG = 30.0  # camera sits front-right of the +Z facing direction
_PITCH_DEG = 12.0  # looking slightly down
_NEAR = 0.05
_HEAD = JOINT_NAMES.index("head")


def _side_colour(j: int) -> tuple[int, int, int]:
    name = JOINT_NAMES[j]
    if name.startswith("left_"):
        return _LEFT
    if name.startswith("right_"):
        return _RIGHT
    return _CENTRE


def _smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing along the first axis with edge padding (camera path)."""
    if sigma <= 0 or len(x) < 2:
        return x.copy()
    radius = int(3 * sigma)
    k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    k /= k.sum()
    pad = np.pad(x, [(radius, radius)] + [(0, 0)] * (x.ndim - 1), mode="edge")
    out = np.empty_like(x)
    for i in range(x.shape[1] if x.ndim > 1 else 1):
        col = pad[:, i] if x.ndim > 1 else pad
        res = np.convolve(col, k, mode="valid")
        if x.ndim > 1:
            out[:, i] = res
        else:
            out[:] = res
    return out


class _Camera:
    """Pinhole camera with a fixed orientation; `targets` (T, 3) is the look-at point per frame."""

    def __init__(self, targets: np.ndarray, distance: float, width: int, height: int) -> None:
        yaw, pitch = np.radians(_YAW_DEG), np.radians(_PITCH_DEG)
        # Direction from the target towards the camera.
        back = np.array([np.sin(yaw) * np.cos(pitch), np.sin(pitch), np.cos(yaw) * np.cos(pitch)])
        forward = -back
        right = np.cross(forward, [0.0, 1.0, 0.0])
        right /= np.linalg.norm(right)
        up = np.cross(right, forward)
        # Rows: image x (right), image y (down), depth (forward).
        self.rot = np.stack([right, -up, forward])
        self.centres = targets + distance * back
        self.focal = 0.5 * height / np.tan(np.radians(_FOV_DEG) / 2)
        self.cx, self.cy = width / 2, height / 2

    def to_camera(self, t: int, pts: np.ndarray) -> np.ndarray:
        return (pts - self.centres[t]) @ self.rot.T

    def project(self, cam_pts: np.ndarray) -> np.ndarray:
        z = np.maximum(cam_pts[..., 2:3], _NEAR)
        return np.concatenate(
            [self.focal * cam_pts[..., :1] / z + self.cx, self.focal * cam_pts[..., 1:2] / z + self.cy],
            axis=-1,
        )


def _fit_distance(pos: np.ndarray, targets: np.ndarray, width: int, height: int) -> float:
    """Camera distance at which every joint of every frame (relative to that frame's target) fits
    inside the middle ~80 % of the image, with room for the text band on top."""
    rel = pos - targets[:, None, :]
    half_w = np.abs(rel[..., [0, 2]]).max() + 0.15  # horizontal spread (either ground axis)
    half_h = np.abs(rel[..., 1]).max() + 0.15
    tan_v = np.tan(np.radians(_FOV_DEG) / 2)
    tan_h = tan_v * width / height
    return float(max(half_h / (0.75 * tan_v), half_w / (0.85 * tan_h), 1.5)) + 0.5 * half_w


def _ascii(text: str) -> str:
    # OpenCV's Hershey fonts only draw ASCII; keep accented letters readable.
    norm = unicodedata.normalize("NFKD", text)
    return "".join(c if ord(c) < 128 else ("" if unicodedata.combining(c) else "?") for c in norm)


def _size(size: int | tuple[int, int]) -> tuple[int, int]:
    w, h = (size, size) if isinstance(size, int | np.integer) else size
    w, h = int(w), int(h)
    if not (64 <= w <= 4096 and 64 <= h <= 4096):
        raise InputError(f"preview size {w}x{h} is not within 64..4096 pixels")
    return w, h


def _background(width: int, height: int) -> np.ndarray:
    ramp = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    img = _BG_TOP * (1 - ramp) + _BG_BOTTOM * ramp
    return np.broadcast_to(img, (height, width, 3)).astype(np.uint8)


def _segment_ends(cam: _Camera, t: int, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Segments `a`-`b` ((N, 3) each, world) in frame `t`'s image: their ends (N, 4: x0, y0, x1, y1,
    in 1/16 pixel, OpenCV's `shift=4`) and which are in front of the camera at all (N,)."""
    ca, cb = cam.to_camera(t, a), cam.to_camera(t, b)
    seen = (ca[:, 2] >= _NEAR) | (cb[:, 2] >= _NEAR)
    # Clip against the near plane so floor lines behind the camera do not wrap around.
    with np.errstate(divide="ignore", invalid="ignore"):
        s = ((_NEAR - ca[:, 2]) / (cb[:, 2] - ca[:, 2]))[:, None]
    hit = ca + s * (cb - ca)
    ca = np.where((ca[:, 2] < _NEAR)[:, None] & seen[:, None], hit, ca)
    cb = np.where((cb[:, 2] < _NEAR)[:, None] & seen[:, None], hit, cb)
    lim = 1e5  # keep integer coordinates sane for nearly-parallel lines
    ends = np.concatenate([np.clip(cam.project(ca), -lim, lim), np.clip(cam.project(cb), -lim, lim)], axis=1)
    return np.round(ends * 16).astype(np.int64), seen


def _draw_segments(img, cam: _Camera, t: int, a: np.ndarray, b: np.ndarray, colours, thickness: int) -> None:
    """Lines `a`-`b` ((N, 3) world points each) in `colours` (one, or one per segment), in order."""
    import cv2

    ends, seen = _segment_ends(cam, t, np.atleast_2d(a), np.atleast_2d(b))
    many = not isinstance(colours, tuple)
    for k in np.flatnonzero(seen):
        x0, y0, x1, y1 = (int(v) for v in ends[k])
        cv2.line(img, (x0, y0), (x1, y1), colours[k] if many else colours, thickness, cv2.LINE_AA, shift=4)


def render_frames(
    motion: Motion,
    text: str | None = None,
    size: int | tuple[int, int] = 512,
    offsets: np.ndarray | None = None,
) -> Iterator[np.ndarray]:
    """RGB uint8 frames (H, W, 3) of the stick-figure preview, one per motion frame."""
    import cv2

    width, height = _size(size)
    from vmclip.motion.kinematics import forward_kinematics

    pos, grot = forward_kinematics(motion.matrices(), motion.trans.astype(np.float64), offsets)
    # The head joint is the skull's base; the drawn head circle sits a little above it.
    head_centre = pos[:, _HEAD] + grot[:, _HEAD] @ np.array([0.0, 0.09, 0.02])
    # A short nose line from the head towards the face (+Z in the head's frame) shows the facing.
    nose_tip = head_centre + grot[:, _HEAD] @ np.array([0.0, 0.0, 0.16])
    text = motion.text if text is None else text
    pelvis = pos[:, 0]
    # Follow the pelvis over the floor (smoothed over ~0.5 s); keep a steady height.
    targets = np.empty_like(pelvis)
    targets[:, [0, 2]] = _smooth(pelvis[:, [0, 2]], sigma=0.5 * motion.fps)
    targets[:, 1] = 0.5 * (np.median(pos[..., 1].max(axis=1)) + min(0.0, float(pos[..., 1].min())))
    distance = _fit_distance(pos, targets, width, height)
    cam = _Camera(targets, distance, width, height)
    background = _background(width, height)
    thick = max(2, round(height / 140))
    grid_step = 0.5
    grid_half = int(np.ceil((distance * 1.5) / grid_step))
    font_scale = height / 900
    lines = textwrap.wrap(_ascii(text), width=max(16, int(width / (19 * font_scale * 1.0)))) if text else []
    lines = lines[:3]

    for t in range(motion.num_frames):
        img = background.copy()
        _draw_grid(img, cam, t, targets[t], grid_half, grid_step)
        img = _draw_skeleton(img, cam, t, pos[t], thick)
        head_cam = cam.to_camera(t, head_centre[t][None])
        if head_cam[0, 2] > _NEAR:
            hx, hy = cam.project(head_cam)[0]
            radius = max(4, int(0.1 * cam.focal / head_cam[0, 2]))
            cv2.circle(img, (int(round(hx)), int(round(hy))), radius, _CENTRE, thick, cv2.LINE_AA)
            _draw_segments(img, cam, t, head_centre[t], nose_tip[t], _NOSE, thick)
        stamp = f"{t / motion.fps:5.2f} s  {t + 1}/{motion.num_frames}"
        _draw_text(img, lines, stamp, font_scale)
        yield img


def _draw_grid(
    img: np.ndarray, cam: _Camera, t: int, target: np.ndarray, grid_half: int, grid_step: float
) -> None:
    """Floor grid around the camera target, snapped to the grid so it appears fixed to the world."""
    gx0 = np.round(target[0] / grid_step) * grid_step
    gz0 = np.round(target[2] / grid_step) * grid_step
    ext = grid_half * grid_step
    k = np.arange(-grid_half, grid_half + 1)
    x, z = gx0 + k * grid_step, gz0 + k * grid_step
    zero, one = np.zeros_like(x), np.ones_like(x)
    # In the order they were always drawn: along z at x, then along x at z, for each k.
    a = np.stack([np.stack([x, zero, (gz0 - ext) * one], 1), np.stack([(gx0 - ext) * one, zero, z], 1)], 1)
    b = np.stack([np.stack([x, zero, (gz0 + ext) * one], 1), np.stack([(gx0 + ext) * one, zero, z], 1)], 1)
    axis = np.stack([np.abs(x) < 1e-6, np.abs(z) < 1e-6], 1).reshape(-1)
    colours = [_GRID_AXIS if on else _GRID for on in axis]
    _draw_segments(img, cam, t, a.reshape(-1, 3), b.reshape(-1, 3), colours, 1)


def _draw_skeleton(img: np.ndarray, cam: _Camera, t: int, pos: np.ndarray, thick: int) -> np.ndarray:
    """The skeleton (joint positions `pos` (24, 3)) with its shadow on the floor."""
    import cv2

    # Shadow: the skeleton flattened onto the floor, blended in.
    shadow = img.copy()
    flat = pos.copy()
    flat[:, 1] = 0.0
    joints = np.arange(1, len(PARENTS))
    _draw_segments(shadow, cam, t, flat[np.asarray(PARENTS)[joints]], flat[joints], (15, 15, 18), thick + 2)
    img = cv2.addWeighted(shadow, _SHADOW_ALPHA, img, 1 - _SHADOW_ALPHA, 0)
    # Bones far to near so that the nearer limb is drawn on top.
    depth = cam.to_camera(t, pos)[:, 2]
    bones = sorted(range(1, len(PARENTS)), key=lambda j: -(depth[j] + depth[PARENTS[j]]))
    parents = np.asarray(PARENTS)[bones]
    _draw_segments(img, cam, t, pos[parents], pos[bones], [_side_colour(j) for j in bones], thick)
    pix = cam.project(cam.to_camera(t, pos))
    for j in np.argsort(-depth):
        if depth[j] > _NEAR:
            cv2.circle(
                img,
                (int(round(pix[j, 0])), int(round(pix[j, 1]))),
                thick + 1,
                _side_colour(int(j)),
                -1,
                cv2.LINE_AA,
            )
    return img


def _draw_text(img: np.ndarray, lines: list[str], stamp: str, font_scale: float) -> None:
    """The prompt's lines at the top (outlined), the time stamp at the bottom."""
    import cv2

    y = int(12 + 28 * font_scale)
    for line in lines:
        cv2.putText(
            img,
            line,
            (12, y),
            cv2.FONT_HERSHEY_SIMPLEX,
            font_scale,
            (0, 0, 0),
            max(1, round(3 * font_scale)) + 2,
            cv2.LINE_AA,
        )
        cv2.putText(
            img,
            line,
            (12, y),
            cv2.FONT_HERSHEY_SIMPLEX,
            font_scale,
            _TEXT,
            max(1, round(2 * font_scale)),
            cv2.LINE_AA,
        )
        y += int(34 * font_scale)
    height = img.shape[0]
    cv2.putText(
        img, stamp, (12, height - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.8 * font_scale, _TEXT, 1, cv2.LINE_AA
    )


def write_preview(
    motion: Motion,
    path: str | Path,
    text: str | None = None,
    size: int | tuple[int, int] = 512,
    offsets: np.ndarray | None = None,
) -> Path:
    """Write the stick-figure preview of `motion` as an MP4 at the motion's frame rate (atomic).

    `text` defaults to the motion's first text; pass "" for none. `size` is the side of a square
    frame or (width, height)."""
    from vmclip.video import write_mp4

    path = Path(path)
    if path.suffix.lower() != ".mp4":
        raise InputError(f"{path}: preview output must end in .mp4")
    _size(size)
    return write_mp4(path, render_frames(motion, text, size, offsets), fps=motion.fps)
