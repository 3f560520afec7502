"""The video's camera: the first photo's, fixed, or following the person as a camera operator would.

`follow_path` plans the whole clip at once (rendering is offline), in three smooth moves made only
where the fixed camera would lose the person:

- **step back** along the optical axis when the person comes much closer than in the photo (a walk
  towards the camera would otherwise end in a close-up of the trousers, or pass the camera);
- **zoom out** when the person (plus a margin for hair, hands and shoes) is larger than the frame;
- **pan** (shift the view) to keep the person inside the frame.

The step back and the zoom take the largest need within a second on either side, blurred over that
second, so they ease in ahead of the need and never fall short of it. The pan is the smoothest path
(least squared velocity and acceleration) that stays as near the photo's framing as the person
allows, inside the per-frame range that keeps them in view: a bounded least-squares problem over all
frames. Pan and zoom change K only (`Camera.reframed`); the background plate is treated as a backdrop
at the person's distance in the photo, so each frame's plate is one affine warp of the plate, extended
by quilting where the view reaches beyond the photo (`vmclip.person.background.extend_plate`: strips
of the photo's own content at its resolution) as far as the views reach. The extended plate is a
pyramid (`PlateLevel`), each level half the resolution of the last and quilted on further where the
views sampling it reach beyond the finer one; a frame samples the level nearest its own scale.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import cv2
import numpy as np
from scipy import sparse
from scipy.ndimage import gaussian_filter1d, maximum_filter1d
from scipy.sparse.linalg import spsolve

from vmclip.errors import InputError
from vmclip.geometry import Camera, project
from vmclip.limits import CAMERA_MODES

# The camera steps back once the person's pelvis is nearer than this share of its distance in the photo.
KEEP_DEPTH = 0.75
# Margin kept around the fitted body (share of the person's height in the frame): hair above the
# fitted head, loose clothes and shoes beyond the body. Order: left, top, right, bottom.
MARGIN = (0.05, 0.08, 0.05, 0.04)
# The body may reach this far into the margin (share of its height) before the camera moves.
SLACK = 0.02
# Step back and zoom ease in over this many frames (one second at 30 fps).
EASE_FRAMES = 30
# The pan, a critically damped follower: acceleration weighed PAN_FRAMES^4 and a pull back to the
# photo's framing so weak that it settles back over about PAN_RETURN frames once the person allows (a
# strong pull makes the pan hug its range and copy the jitter of a swinging limb's box), velocity in
# between (critical damping: no overshoot).
PAN_FRAMES, PAN_RETURN = 12.0, 30.0
REST_WEIGHT = (PAN_FRAMES / PAN_RETURN) ** 4
# Frames whose pan, zoom and step back are all within these of the photo's keep its plate untouched.
STILL_PX, STILL_ZOOM, STILL_BACK = 0.02, 1e-4, 1e-4
# The extended plate is a pyramid, each level half the resolution of the last: bilinear sampling of a
# plate shrunk more than 2x aliases (bricks shimmer as the camera steps back), and the views that reach
# farthest are the most zoomed out, so each level stays a few times the photo's size however far the
# views reach. A frame shrinking the plate by m samples level floor(log2 m) and, for m's fractional
# octave above BLEND_FROM, blends towards the next (no visible step in sharpness at the change).
BLEND_FROM = 0.5
# A level holds at most this many pixels (48 MB): frames that would need more sample a coarser level.
MAX_LEVEL_PIXELS = 16_000_000
# Each level reaches at least this share as far (about the photo's centre) as the next coarser one, so
# that a coarse level grows from a base of its own size (not from a few pixels of the photo when no
# frame samples the levels between); more only quilts the finer levels beyond where their frames look.
BASE_SHARE = 0.35
# Pixels added around each view's reach: bilinear sampling reads one pixel beyond it.
REACH_MARGIN = 2


def check_camera_mode(mode: str) -> str:
    """The camera mode, or a one-line InputError naming the choices."""
    if mode not in CAMERA_MODES:
        raise InputError(f"camera {mode!r}: expected one of {', '.join(CAMERA_MODES)}")
    return mode


@dataclass
class PlateLevel:
    """One level of the extended plate: the image and the map (3, 3) from the photo's plate pixels to
    its pixels."""

    image: np.ndarray
    to_level: np.ndarray
    painted: np.ndarray | None = None  # (the image's shape) pixels in-painted where the person stood

    @cached_property
    def from_level(self) -> np.ndarray:
        """The inverse map (3, 3), from the level's pixels to the photo's plate (inverted once: every
        moved frame samples its level through it)."""
        return np.linalg.inv(self.to_level)


@dataclass
class CameraPath:
    """Per frame: the camera, whether it differs from the photo's, and the affine map (2, 3) from the
    photo's plate to the frame; `levels` is the extended plate (`attach_plate`), `level` and `blend`
    per frame the level it samples and its weight of the next coarser one."""

    cameras: list[Camera]
    moved: np.ndarray
    maps: np.ndarray
    plate: np.ndarray
    back: np.ndarray
    zoom_out: np.ndarray
    centre: np.ndarray
    levels: list[PlateLevel] = field(default_factory=list)
    level: np.ndarray | None = None
    blend: np.ndarray | None = None

    def background(self, i: int, plate: np.ndarray) -> np.ndarray:
        """Frame `i`'s plate: the photo's `plate` itself where the camera is the photo's (a static
        background cannot flicker), else the extended plate's level(s) warped into the moved view.
        Where other frames move, the still ones take the photo's part of the extended plate: the
        same pixels, except the photo's own frame (a letterbox, a black line along an edge), which
        the extension quilts over and which would otherwise blink on and off as the camera moves."""
        if not self.moved[i]:
            if not self.levels or self.levels[0].image.shape == plate.shape:
                return plate
            h, w = plate.shape[:2]
            x0, y0 = (int(round(v)) for v in self.levels[0].to_level[:2, 2])
            return self.levels[0].image[y0 : y0 + h, x0 : x0 + w]
        h, w = plate.shape[:2]
        level = int(self.level[i]) if self.level is not None else 0
        out = self._warp(i, level, (w, h))
        blend = float(self.blend[i]) if self.blend is not None else 0.0
        if blend > 0:
            out = cv2.addWeighted(out, 1.0 - blend, self._warp(i, level + 1, (w, h)), blend, 0.0)
        return out

    def _warp(self, i: int, level: int, size: tuple[int, int]) -> np.ndarray:
        lv = self.levels[level] if self.levels else PlateLevel(self.plate, np.eye(3))
        m = np.vstack([self.maps[i], [0.0, 0.0, 1.0]]) @ lv.from_level
        return cv2.warpAffine(lv.image, m[:2], size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def fixed_path(camera: Camera, frames: int, plate: np.ndarray) -> CameraPath:
    """The photo's camera in every frame."""
    h, w = plate.shape[:2]
    centre = np.tile([(w - 1) / 2, (h - 1) / 2], (frames, 1))
    maps = np.tile(np.eye(3)[:2], (frames, 1, 1))
    return CameraPath(
        [camera] * frames, np.zeros(frames, bool), maps, plate, np.zeros(frames), np.ones(frames), centre
    )


def ease_up(need: np.ndarray, frames: int = EASE_FRAMES) -> np.ndarray:
    """A smooth curve never below `need`: the largest need within `frames` either side, blurred with a
    Gaussian whose support (3 sigma) is that window; it rises from 0 over the first `frames` (the
    video opens on the photo's framing unless the first frames already need more)."""
    if not np.any(need > 0):
        return np.zeros_like(need)
    top = maximum_filter1d(need, size=2 * frames + 1, mode="nearest")
    eased = gaussian_filter1d(top, frames / 3.0, mode="nearest", truncate=3.0)
    x = np.clip(np.arange(len(need)) / frames, 0.0, 1.0)
    return np.maximum(eased * x * x * (3 - 2 * x), need)


def smooth_within(lo: np.ndarray, hi: np.ndarray, rest: float, tau: float = PAN_FRAMES) -> np.ndarray:
    """The path c (T,) within [lo, hi] that minimises sum w (c - rest)^2 + v |c'|^2 + tau^4 |c''|^2
    (w: REST_WEIGHT; v = 2 tau^2 sqrt(REST_WEIGHT), critical damping), starting at `rest` if it can.
    A primal active-set method on the banded system: frames are pinned to the bound they cross and
    released when the path would leave the bound on its own, so the path rests on the range's peaks
    like a string on pegs instead of copying the jitter of a limb's box."""
    n = len(lo)
    lo, hi = np.array(lo, dtype=np.float64), np.maximum(hi, lo).astype(np.float64)
    if np.all((lo <= rest) & (rest <= hi)):
        return np.full(n, float(rest))
    if lo[0] <= rest <= hi[0]:  # the video opens on the photo's framing wherever the person allows
        lo[0] = hi[0] = rest
    w = np.full(n, REST_WEIGHT)
    d1 = sparse.diags([-np.ones(n - 1), np.ones(n - 1)], [0, 1], shape=(n - 1, n))
    d2 = sparse.diags(
        [np.ones(n - 2), -2 * np.ones(n - 2), np.ones(n - 2)], [0, 1, 2], shape=(max(n - 2, 0), n)
    )
    v = 2.0 * tau**2 * np.sqrt(REST_WEIGHT)
    h = (sparse.diags(w) + v * (d1.T @ d1) + tau**4 * (d2.T @ d2)).tocsc()
    g = w * rest
    pinned = np.zeros(n, dtype=bool)
    value = np.zeros(n)
    c = np.full(n, float(rest))
    for _ in range(4 * n + 10):
        free = ~pinned
        c = value.copy()
        if free.any():
            rhs = g[free] - h[free][:, pinned] @ value[pinned]
            c[free] = (
                spsolve(h[free][:, free].tocsc(), rhs)
                if free.sum() > 1
                else rhs / h[free][:, free].toarray()[0]
            )
        grad = h @ c - g  # > 0: the objective would lower c there
        release = pinned & (lo < hi) & (((value == lo) & (grad < -1e-9)) | ((value == hi) & (grad > 1e-9)))
        below, above = free & (c < lo - 1e-9), free & (c > hi + 1e-9)
        if not (release.any() or below.any() or above.any()):
            break
        pinned[below], value[below] = True, lo[below]
        pinned[above], value[above] = True, hi[above]
        if not (below.any() or above.any()):
            pinned[release] = False
    return np.clip(c, lo, hi)


def _boxes(camera: Camera, vertices: np.ndarray, back: np.ndarray) -> np.ndarray:
    """The body's box (T, 4: left, top, right, bottom) in the camera stepped back by `back` (T,)."""
    pts = np.asarray(vertices[:, ::7], dtype=np.float64)
    boxes = np.empty((len(pts), 4))
    for i, p in enumerate(pts):
        uv, z = project(p, camera.K, camera.R, np.asarray(camera.t, float) + [0.0, 0.0, back[i]])
        uv = uv[z > 0] if np.any(z > 0) else uv
        boxes[i, :2], boxes[i, 2:] = uv.min(0), uv.max(0)
    return boxes


def follow_path(
    camera: Camera,
    vertices: np.ndarray,
    trans: np.ndarray,
    source_vertices: np.ndarray,
    source_trans: np.ndarray,
    size: tuple[int, int],
) -> CameraPath:
    """Plan the camera for the posed body `vertices` (T, V, 3) with pelvis `trans` (T, 3), starting
    from the photo's `camera` (at output size `size`, width x height) where the fitted body stood
    (`source_vertices`, `source_trans`). The plate of the returned path is not yet extended."""
    w, h = size
    frames = len(vertices)
    depth0 = float(project(np.asarray(source_trans, float), camera.K, camera.R, camera.t)[1])
    depth = project(np.asarray(trans, float), camera.K, camera.R, camera.t)[1]
    back = ease_up(np.maximum(KEEP_DEPTH * depth0 - depth, 0.0))
    boxes = _boxes(camera, vertices, back)
    # Margins in pixels: a share of the person's height at each frame's distance.
    tall = float(np.ptp(np.asarray(source_vertices)[:, 1])) * float(camera.K[1, 1])
    margin = np.asarray(MARGIN)[None, :] * (tall / np.maximum(depth + back, 1e-3))[:, None]
    # What the photo itself leaves out of its frame (a three-quarter shot's legs) may stay out.
    src = _boxes(camera, np.asarray(source_vertices)[None], np.zeros(1))[0]
    m0 = np.asarray(MARGIN) * tall / max(depth0, 1e-3)
    over = np.maximum([-0.5 - (src[0] - m0[0]), -0.5 - (src[1] - m0[1]), src[2] + m0[2] - (w - 0.5),
                       src[3] + m0[3] - (h - 0.5)], 0.0)  # fmt: skip
    over += SLACK * tall / max(depth0, 1e-3)  # a body that only grazes the margin moves nothing
    need_w = boxes[:, 2] - boxes[:, 0] + margin[:, 0] + margin[:, 2] - over[0] - over[2]
    need_h = boxes[:, 3] - boxes[:, 1] + margin[:, 1] + margin[:, 3] - over[1] - over[3]
    zoom = 1.0 + ease_up(np.maximum(np.maximum(need_w / w, need_h / h) - 1.0, 0.0))
    centre = np.empty((frames, 2))
    for axis, (span, a, b) in enumerate(((w, 0, 2), (h, 1, 3))):
        lo = boxes[:, b] + margin[:, b] - over[b] - zoom * span / 2
        hi = boxes[:, a] - margin[:, a] + over[a] + zoom * span / 2
        centre[:, axis] = smooth_within(lo, hi, (span - 1) / 2)
    rest = np.array([(w - 1) / 2, (h - 1) / 2])
    moved = (back > STILL_BACK) | (zoom - 1.0 > STILL_ZOOM) | (np.abs(centre - rest).max(1) > STILL_PX)
    centre[~moved], zoom[~moved], back[~moved] = rest, 1.0, 0.0
    cameras = [
        camera.reframed(back[i], zoom[i], tuple(centre[i]), size) if moved[i] else camera
        for i in range(frames)
    ]
    # The plate as a backdrop at the person's distance: stepping back shrinks it about the principal point.
    maps = np.empty((frames, 2, 3))
    pp = np.asarray(camera.K, float)[:2, 2]
    for i, cam in enumerate(cameras):
        k = depth0 / (depth0 + back[i])
        shrink = np.array([[k, 0.0, (1 - k) * pp[0]], [0.0, k, (1 - k) * pp[1]], [0.0, 0.0, 1.0]])
        maps[i] = (np.asarray(cam.K) @ np.linalg.inv(np.asarray(camera.K, float)) @ shrink)[:2]
    return CameraPath(cameras, moved, maps, np.zeros((h, w, 3), np.uint8), back, zoom, centre)


def view_boxes(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(T, 4: left, top, right, bottom) what each frame's view, mapped by `maps` (T, 2, 3) from the
    plate, covers of the plate's pixel plane (pixel edges)."""
    w, h = size
    corners = np.array(
        [[-0.5, -0.5, 1.0], [w - 0.5, -0.5, 1.0], [-0.5, h - 0.5, 1.0], [w - 0.5, h - 0.5, 1.0]]
    )
    full = np.concatenate([maps, np.tile([[[0.0, 0.0, 1.0]]], (len(maps), 1, 1))], axis=1)
    p = np.einsum("tij,cj->tci", np.linalg.inv(full), corners)[..., :2]
    return np.concatenate([p.min(1), p.max(1)], axis=1)


def plate_levels(path: CameraPath, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Per frame, the level of the extended plate it samples and its weight of the next coarser one,
    from how much its map shrinks the plate (0 and 0 where the camera is the photo's)."""
    shrink = 1.0 / np.sqrt(np.abs(np.linalg.det(path.maps[:, :, :2])))
    octave = np.log2(np.maximum(shrink, 1.0))
    level = np.floor(octave).astype(np.int64)
    blend = np.clip((octave - level - BLEND_FROM) / (1.0 - BLEND_FROM), 0.0, 1.0)
    level[~path.moved], blend[~path.moved] = 0, 0.0
    return level, blend


def attach_plate(
    path: CameraPath, plate: np.ndarray, seed: int = 0, painted: np.ndarray | None = None
) -> CameraPath:
    """The path with its extended plate: level 0 the photo's plate quilted on (`extend_plate`), each
    next level the last halved and quilted on further (so a level holds what the finer one does, and a
    frame changing level sees the same background), each as far as the views sampling it reach and
    at least BASE_SHARE as far as the next level's (so a coarse level grows from a base of its own size,
    not from a few pixels of photo). `painted` (the plate's shape, bool): its in-painted pixels, which
    the border is not cut from (`extend_plate`)."""
    h, w = plate.shape[:2]
    path.plate, path.levels = plate, [PlateLevel(plate, np.eye(3))]
    path.level, path.blend = np.zeros(len(path.moved), np.int64), np.zeros(len(path.moved))
    if not path.moved.any():
        return path
    level, blend = plate_levels(path, (w, h))
    views = view_boxes(path.maps, (w, h))
    while True:
        boxes = _level_boxes(views, path.moved, level, blend, (w, h))
        sizes = [np.prod(b[2:] - b[:2]) / 4.0**d for d, b in enumerate(boxes)]
        if max(sizes) <= MAX_LEVEL_PIXELS:
            break
        level[path.moved] += 1  # too large: every moved frame samples a level coarser
    path.levels = []
    for depth, box in enumerate(boxes):
        path.levels.append(_build_level(path.levels, plate, box, depth, seed, painted))
    path.level, path.blend = level, blend
    path.plate = path.levels[0].image
    return path


def _level_boxes(
    views: np.ndarray, moved: np.ndarray, level: np.ndarray, blend: np.ndarray, size: tuple[int, int]
) -> list[np.ndarray]:
    """Per level, the part of the plate's plane it covers (left, top, right, bottom, plate pixels):
    the photo, the views that sample it, BASE_SHARE (about the photo's centre) of the next level's, and
    the last level's."""
    w, h = size
    photo = np.array([-0.5, -0.5, w - 0.5, h - 0.5])
    centre = np.array([(w - 1) / 2, (h - 1) / 2] * 2)
    deepest = int((level + (blend > 0))[moved].max())
    boxes = []
    for depth in range(deepest + 1):
        use = moved & ((level == depth) | ((level == depth - 1) & (blend > 0)))
        box = photo.copy()
        if use.any():
            box[:2] = np.minimum(box[:2], views[use, :2].min(0))
            box[2:] = np.maximum(box[2:], views[use, 2:].max(0))
        boxes.append(box)
    for depth in range(deepest - 1, -1, -1):
        half = centre + BASE_SHARE * (boxes[depth + 1] - centre)
        boxes[depth] = np.concatenate(
            [np.minimum(boxes[depth][:2], half[:2]), np.maximum(boxes[depth][2:], half[2:])]
        )
    for depth in range(1, deepest + 1):
        last = boxes[depth - 1]
        boxes[depth] = np.concatenate(
            [np.minimum(boxes[depth][:2], last[:2]), np.maximum(boxes[depth][2:], last[2:])]
        )
    return boxes


def _build_level(
    levels: list[PlateLevel],
    plate: np.ndarray,
    box: np.ndarray,
    depth: int,
    seed: int,
    painted: np.ndarray | None = None,
) -> PlateLevel:
    """Level `depth` of the extended plate, covering `box` (plate pixels: left, top, right, bottom):
    the photo's plate (level 0) or the last level halved, quilted on where `box` reaches beyond it."""
    from vmclip.person.background import extend_plate
    from vmclip.person.quilt import extend

    if depth == 0:
        image, to_level = plate, np.eye(3)
    else:
        last = levels[-1]
        rows, cols = (n - n % 2 for n in last.image.shape[:2])  # whole 2x2 blocks
        image = cv2.resize(last.image[:rows, :cols], (cols // 2, rows // 2), interpolation=cv2.INTER_AREA)
        # (a halved pixel is in-painted where any of its four was)
        painted = (
            None
            if last.painted is None
            else last.painted[:rows, :cols].reshape(rows // 2, 2, cols // 2, 2).any((1, 3))
        )
        halve = np.array([[0.5, 0.0, -0.25], [0.0, 0.5, -0.25], [0.0, 0.0, 1.0]])
        to_level = halve @ last.to_level
    corners = np.array([[box[0], box[1], 1.0], [box[2], box[3], 1.0]]) @ to_level.T
    h, w = image.shape[:2]
    reach = [-0.5 - corners[0, 0], -0.5 - corners[0, 1], corners[1, 0] - (w - 0.5), corners[1, 1] - (h - 0.5)]
    left, top, right, bottom = (int(np.ceil(r)) + REACH_MARGIN if r > 0 else 0 for r in reach)
    if depth == 0:
        image = extend_plate(plate, (left, top, right, bottom), seed=seed, painted=painted)
    elif left or top or right or bottom:
        image = extend(image, (left, top, right, bottom), np.random.default_rng((seed, depth)), painted)
    if painted is not None:  # (the grown border is quilted from the photo: no in-painting)
        painted = np.pad(np.asarray(painted, bool), ((top, bottom), (left, right)))
    shift = np.array([[1.0, 0.0, left], [0.0, 1.0, top], [0.0, 0.0, 1.0]])
    return PlateLevel(image, shift @ to_level, painted)
