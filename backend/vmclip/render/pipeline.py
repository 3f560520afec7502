"""Re-pose the photographed person frame by frame and bake the video.

`render_frames` places the motion in the first photo's world (retarget), builds one `SourceView` per
photo, and for every frame warps the sources onto the posed body (transformation flow) and composites
the result over the in-painted background plate, seen by the first photo's camera or one that follows
the person (`vmclip.render.camera`). `animate` writes the MP4
(atomically) and optionally a GIF and PNG frames.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import cv2
import numpy as np

from vmclip.errors import InputError, VmclipError
from vmclip.fileio import atomic_output, check_writable
from vmclip.geometry import Camera, project
from vmclip.motion import Motion
from vmclip.render.camera import CameraPath, attach_plate, check_camera_mode, fixed_path, follow_path
from vmclip.render.floor import Floor, photo_floor
from vmclip.render.flow import FlowWarper
from vmclip.render.hands import skin_tone
from vmclip.render.raster import Rasterizer, get_rasterizer
from vmclip.render.regions import mirror_vertex_map
from vmclip.render.retarget import PlacedMotion, place_motion, scale_travel, to_numpy
from vmclip.render.source_view import SourceView
from vmclip.render.warp import Warped

if TYPE_CHECKING:
    from vmclip.person.body import BodyModel

ProgressFn = Callable[[float, str], None]

MAX_RENDER_THREADS = 4  # frames warped at once; beyond a few, the GL thread and the encoder limit
# The video's longer side in pixels unless asked (the photos are prepared at that size too).
DEFAULT_SIZE = 512
FRAMES_AHEAD = 2  # frames in flight per thread: keeps every thread busy with a few frames in memory


def render_threads() -> int:
    """Threads that warp frames: one per core, at most MAX_RENDER_THREADS ($VMCLIP_RENDER_THREADS
    overrides, e.g. 1 beside other work)."""
    forced = os.environ.get("VMCLIP_RENDER_THREADS", "").strip()
    if forced:
        try:
            return max(1, int(forced))
        except ValueError:
            raise InputError(f"$VMCLIP_RENDER_THREADS={forced!r}: expected a whole number") from None
    return max(1, min(MAX_RENDER_THREADS, os.cpu_count() or 1))


class RenderWarning(UserWarning):
    """Something the user should know about the video (e.g. the motion leaves the frame)."""


class RenderCancelled(VmclipError):
    """The caller asked to stop (cancel event set)."""


class PhotoView(Protocol):
    """What the renderer reads of one photo of the person (a `vmclip.person.analysis.ViewFit`)."""

    image: np.ndarray  # (H, W, 3) uint8 RGB
    mask: np.ndarray  # (H, W) float 0..1: the person
    camera: Camera
    pose: np.ndarray  # (24, 3, 3) fitted local rotations, root in the world
    trans: np.ndarray  # (3,) fitted pelvis position
    background: np.ndarray  # (H, W, 3) uint8 plate without the person
    joints2d: np.ndarray | None  # (24, 3) the photo's detected joints (x, y, confidence), if any


class Person(Protocol):
    """What the renderer reads of the analysed person (a `vmclip.person.analysis.PersonAnalysis`)."""

    shape: dict
    body_kind: str

    @property
    def views(self) -> Sequence[PhotoView]: ...


@dataclass
class Scene:
    """Everything that stays fixed while the frames are rendered."""

    body: BodyModel
    shape: dict
    sources: list[SourceView]
    camera: Camera
    background: np.ndarray  # (H, W, 3) uint8 plate at output size
    width: int
    height: int
    vertex_part: np.ndarray
    mirror: np.ndarray
    source_pose: np.ndarray
    source_trans: np.ndarray
    source_vertices: np.ndarray
    rest_vertices: np.ndarray | None = None  # of the fitted body (T-pose)
    texture: np.ndarray | None = None  # the avatar's atlas (S, S, 3) uint8, when the body has UVs
    uv: tuple[np.ndarray, np.ndarray] | None = None  # the body's per-corner UVs (coords, faces)
    floor: Floor | None = None  # the first photo's floor (its soles, or a contact shadow below them)


def output_size(width: int, height: int, size: int) -> tuple[int, int, float]:
    """Frame size with the longer side `size` (even numbers for yuv420p) and the scale from the photo."""
    if size < 64 or size > 4096:
        raise InputError(f"--size {size}: expected 64..4096 pixels")
    scale = size / max(width, height)
    w = max(2, int(round(width * scale / 2)) * 2)
    h = max(2, int(round(height * scale / 2)) * 2)
    return w, h, scale


def _resize(img: np.ndarray, w: int, h: int) -> np.ndarray:
    if img.shape[1] == w and img.shape[0] == h:
        return img
    interp = cv2.INTER_AREA if img.shape[1] > w else cv2.INTER_LINEAR
    return cv2.resize(img, (w, h), interpolation=interp)


@dataclass
class SourcePhoto:
    """One photo prepared for the flow (`source`), with the photo and its matte at that size."""

    source: SourceView
    image: np.ndarray
    mask: np.ndarray


def source_photo(
    view: PhotoView,
    body: BodyModel,
    shape: object,
    size: tuple[int, int],
    rasterizer: Rasterizer | None = None,
    faces: np.ndarray | None = None,
    vertex_part: np.ndarray | None = None,
    tone: np.ndarray | None = None,
) -> SourcePhoto:
    """Photo `view` of a person analysis resized to `size` (width, height), with its fitted body
    posed as in the photo, prepared as a flow source (`SourceView`; `tone`: the person's skin tone,
    `vmclip.render.hands.skin_tone`)."""
    faces = np.asarray(body.faces, dtype=np.int64) if faces is None else faces
    vertex_part = np.asarray(body.skin_weights).argmax(1) if vertex_part is None else vertex_part
    vh, vw = np.asarray(view.image).shape[:2]
    w, h = size
    sx, sy = w / vw, h / vh
    pose = np.asarray(view.pose, dtype=np.float64)
    trans = np.asarray(view.trans, dtype=np.float64)
    verts = to_numpy(body.pose_vertices(shape, pose[None], trans[None]))[0]
    image = _resize(np.asarray(view.image)[..., :3].astype(np.uint8), w, h)
    mask = _resize(np.asarray(view.mask, dtype=np.float32), w, h)
    # The photo's detected joints (where its limbs really are) at this size, and the fitted ones: a
    # limb the photo shows over the body hides what the fit put beside its own limb. (The fitted
    # joints also find a skirt between the legs.)
    keypoints = view.joints2d
    joints = to_numpy(body.pose_joints(shape, pose[None], trans[None]))[0]
    if keypoints is not None:
        keypoints = np.asarray(keypoints, dtype=np.float64).copy()
        keypoints[:, 0] = (keypoints[:, 0] + 0.5) * sx - 0.5
        keypoints[:, 1] = (keypoints[:, 1] + 0.5) * sy - 0.5
    source = SourceView(
        rasterizer or get_rasterizer(),
        image,
        mask,
        view.camera.scaled(sx, sy),
        verts,
        faces,
        vertex_part,
        keypoints=keypoints,
        joints=joints,
        skin_tone=tone,
    )
    return SourcePhoto(source, image, mask)


# Mirror-vertex maps and rest vertices per (body, shape): a k-d tree query each.
_MIRRORS: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}


def build_scene(person: Person, size: int = DEFAULT_SIZE, body: BodyModel | None = None) -> Scene:
    """Prepare the sources (one per photo of `person`, a PersonAnalysis) at the output size."""
    views = list(person.views)
    if not views:
        raise InputError("no source photo in the person analysis")
    # The video has the first photo's size and camera; every other photo keeps its own size, framing
    # and fitted camera, resized to the same longer side (its detail is what the flow samples).
    ph, pw = np.asarray(views[0].image).shape[:2]
    width, height, _ = output_size(pw, ph, size)
    if body is None:
        from vmclip.person.body import load_body_model

        body = load_body_model(person.body_kind)
    shape = person.shape
    faces = np.asarray(body.faces, dtype=np.int64)
    vertex_part = np.asarray(body.skin_weights).argmax(1)
    key = (id(body), repr(sorted(shape.items())) if isinstance(shape, dict) else repr(shape))
    if key not in _MIRRORS:
        rest = to_numpy(body.rest_vertices(shape))
        _MIRRORS[key] = (mirror_vertex_map(rest), rest)
    mirror, rest = _MIRRORS[key]
    ras = get_rasterizer()
    tone = skin_tone(views)
    sources, posed = [], []
    for i, view in enumerate(views):
        vh, vw = np.asarray(view.image).shape[:2]
        vw_out, vh_out = (width, height) if i == 0 else output_size(vw, vh, size)[:2]
        photo = source_photo(view, body, shape, (vw_out, vh_out), ras, faces, vertex_part, tone)
        posed.append(photo.source.vertices)
        sources.append(photo.source)
        if i == 0:
            plate = views[0].background
            if plate is not None:
                plate = _resize(np.asarray(plate)[..., :3].astype(np.uint8), vw_out, vh_out)
            floor = photo_floor(photo.image, photo.mask, photo.source.camera, posed[0], plate=plate)
    texture, uv = avatar_texture(person, body)
    background = views[0].background
    if background is None:
        raise InputError("the person analysis has no background plate")
    background = _resize(np.asarray(background)[..., :3].astype(np.uint8), width, height)
    return Scene(
        body=body,
        shape=shape,
        sources=sources,
        camera=sources[0].camera,
        background=background,
        width=width,
        height=height,
        vertex_part=vertex_part,
        mirror=mirror,
        source_pose=np.asarray(views[0].pose, np.float64),
        source_trans=np.asarray(views[0].trans, np.float64),
        source_vertices=posed[0],
        rest_vertices=rest,
        texture=texture,
        uv=uv,
        floor=floor,
    )


def avatar_texture(person: Person, body: BodyModel) -> tuple[np.ndarray | None, tuple | None]:
    """The person's texture atlas (made now when the analysis has none yet, and kept on it) and the
    body's UV layout; (None, None) for a body without one."""
    from vmclip.person.texture import build_texture
    from vmclip.person.uvmap import body_uv

    uv = body_uv(body)
    if uv is None:
        return None, None
    texture = getattr(person, "texture", None)
    if texture is None:
        texture = build_texture(body, person.shape, list(person.views))
        try:
            person.texture = texture
        except AttributeError:  # a read-only stand-in: made again next time
            pass
    return texture, uv


def in_view(scene: Scene, vertices: np.ndarray, cameras: Sequence[Camera] | None = None) -> np.ndarray:
    """Fraction of the body (a vertex subsample) inside the frame, per frame (seen by each frame's
    camera in `cameras`, else by the photo's)."""
    verts = vertices[:, ::7].astype(np.float64)
    if cameras is None:
        cam = scene.camera
        uv, z = project(verts.reshape(-1, 3), cam.K, cam.R, cam.t)
        uv, z = uv.reshape(verts.shape[0], -1, 2), z.reshape(verts.shape[0], -1)
    else:
        both = [project(v, c.K, c.R, c.t) for v, c in zip(verts, cameras, strict=True)]
        uv, z = np.stack([b[0] for b in both]), np.stack([b[1] for b in both])
    inside = (
        (uv[..., 0] >= 0)
        & (uv[..., 0] < scene.width)
        & (uv[..., 1] >= 0)
        & (uv[..., 1] < scene.height)
        & (z > 0)
    )
    return inside.mean(1)


def check_in_frame(
    scene: Scene, placed: PlacedMotion, fit_travel: bool = True, cameras: Sequence[Camera] | None = None
) -> PlacedMotion:
    """Keep the person in view: when the motion's travel (walking off, say) would take them out of the
    fixed camera's frame, scale the horizontal travel down just enough (with a warning), unless
    `fit_travel` is off or the camera follows (`cameras`, one per frame); refuse what still leaves the
    frame; warn when the body only crosses the edge."""
    gone_limit, keep_limit = 0.05, 0.6
    frac = in_view(scene, placed.vertices, cameras)
    if frac.min() < keep_limit and fit_travel and cameras is None:
        # Keep at least 60% of the body in view if shrinking the travel can: the largest travel that
        # does, else the travel that keeps the most in view.
        travel = placed.trans - placed.trans[:1]
        travel[:, 1] = 0.0  # heights stay: feet on the floor, jumps as they were
        best_scale, best_frac = 1.0, frac
        for scale in (0.8, 0.6, 0.4, 0.25, 0.1, 0.0):
            shift = ((scale - 1.0) * travel)[:, None, :].astype(np.float32)
            trial = in_view(scene, placed.vertices + shift)
            if trial.min() > best_frac.min() + 0.02:
                best_scale, best_frac = scale, trial
            if trial.min() >= keep_limit:
                break
        if best_scale < 1.0:
            shift = (best_scale - 1.0) * travel
            placed = PlacedMotion(
                local_rot=placed.local_rot,
                trans=placed.trans + shift,
                vertices=placed.vertices + shift[:, None, :].astype(np.float32),
                ground_y=placed.ground_y,
                travel_scale=best_scale,
            )
            frac = best_frac
            warnings.warn(
                f"the motion would walk out of the frame: its travel was scaled to "
                f"{round(best_scale * 100)}% to keep the person in view",
                RenderWarning,
                stacklevel=3,
            )
    gone = np.flatnonzero(frac < gone_limit)
    if len(gone):
        raise InputError(
            f"the motion leaves the frame: the person is out of view in {len(gone)} of {len(frac)} frames "
            f"(first at {gone[0] / 30.0:.1f} s); use a shorter or more stationary motion"
        )
    partial = np.flatnonzero(frac < 0.98)
    if len(partial):
        warnings.warn(
            f"the motion leaves the frame in {len(partial)} of {len(frac)} frames "
            f"(from {partial[0] / 30.0:.1f} s): parts of the person are cut off",
            RenderWarning,
            stacklevel=3,
        )
    return placed


def _place(scene: Scene, motion: Motion, fit_travel: bool, camera: str) -> tuple[PlacedMotion, CameraPath]:
    """The motion placed in the photo's world and the camera that films it: a following camera keeps
    the whole travel; the fixed one may shorten it (`check_in_frame`)."""
    ground_y = None if scene.floor is None else scene.floor.ground_y
    if scene.floor is not None and scene.floor.source != "soles":
        drop = float(scene.source_vertices[:, 1].min()) - ground_y
        where = "contact shadow" if scene.floor.source == "shadow" else "floor line of the background"
        warnings.warn(
            f"the person is in mid-air in the photo: the floor is put at the {where} below the "
            f"feet, {drop:.2f} m below the soles",
            RenderWarning,
            stacklevel=3,
        )
    elif scene.floor is not None and scene.floor.warning:
        warnings.warn(scene.floor.warning, RenderWarning, stacklevel=3)
    placed = place_motion(
        scene.body,
        scene.shape,
        motion,
        scene.source_pose,
        scene.source_trans,
        scene.source_vertices,
        ground_y=ground_y,
    )
    if camera == "follow":
        size = (scene.width, scene.height)
        path = follow_path(
            scene.camera, placed.vertices, placed.trans, scene.source_vertices, scene.source_trans, size
        )
        check_in_frame(scene, placed, fit_travel, cameras=path.cameras)
        return placed, attach_plate(path, scene.background, painted=painted_pixels(scene))
    placed = check_in_frame(scene, placed, fit_travel)
    if placed.travel_scale < 1.0:  # a shortened walk: re-placed with its planted feet pinned
        placed = place_motion(
            scene.body,
            scene.shape,
            scale_travel(motion, placed.travel_scale),
            scene.source_pose,
            scene.source_trans,
            scene.source_vertices,
            ground_y=ground_y,
        )
    return placed, fixed_path(scene.camera, len(placed.vertices), scene.background)


# A plate pixel differing from the photo's by more than this (grey levels, any channel) was in-painted.
PAINTED_STEP = 2


def painted_pixels(scene: Scene) -> np.ndarray:
    """(H, W) bool: the plate's pixels in-painted where the person (and their shadow) stood: where it
    differs from the first photo (both at the output size)."""
    photo = scene.sources[0].image.astype(np.int16)
    return np.abs(scene.background.astype(np.int16) - photo).max(-1) > PAINTED_STEP


@dataclass
class Shadow:
    """Darkening factor (h, w) 0..1 over the window whose top-left pixel is (x0, y0)."""

    shade: np.ndarray
    x0: int
    y0: int


def contact_shadow(scene: Scene, verts: np.ndarray, ground_y: float) -> Shadow | None:
    """A soft darkening under the parts of the body near the ground (the plate lost the photo's own
    contact shadow together with the person)."""
    near = verts[verts[:, 1] < ground_y + 0.08][::3]
    if not len(near):
        return None
    pts = near.astype(np.float64).copy()
    height = pts[:, 1] - ground_y
    pts[:, 1] = ground_y
    uv, z = project(pts, scene.camera.K, scene.camera.R, scene.camera.t)
    ok = (z > 0) & (uv[:, 0] >= 0) & (uv[:, 0] < scene.width) & (uv[:, 1] >= 0) & (uv[:, 1] < scene.height)
    if not ok.any():
        return None
    sigma = max(2.0, scene.width / 128.0)
    pad = int(8 * sigma)
    uv = uv[ok]
    x0, y0 = np.maximum(np.floor(uv.min(0)).astype(int) - pad, 0)
    x1 = min(scene.width, int(uv[:, 0].max()) + pad + 1)
    y1 = min(scene.height, int(uv[:, 1].max()) + pad + 1)
    shade = np.zeros((y1 - y0, x1 - x0), dtype=np.float32)
    weight = np.clip(1.0 - height[ok] / 0.08, 0.0, 1.0).astype(np.float32)
    np.maximum.at(shade, (uv[:, 1].astype(int) - y0, uv[:, 0].astype(int) - x0), weight)
    shade = cv2.dilate(shade, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 3)))
    shade = cv2.GaussianBlur(shade, (0, 0), sigmaX=2.5 * sigma, sigmaY=sigma)
    return Shadow(np.clip(shade * 1.6, 0.0, 1.0) * 0.35, int(x0), int(y0))


def composite(scene: Scene, warped: Warped | None, shadow: Shadow | None = None) -> np.ndarray:
    """Person over the plate with soft edges; plate pixels outside the person's (and the shadow's)
    window are copied untouched, so the static background cannot flicker."""
    frame = scene.background.copy()
    if shadow is not None:
        h, w = shadow.shade.shape
        win = frame[shadow.y0 : shadow.y0 + h, shadow.x0 : shadow.x0 + w]
        win[:] = np.clip(win * (1.0 - shadow.shade)[..., None] + 0.5, 0, 255).astype(np.uint8)
    if warped is not None:
        h, w = warped.alpha.shape
        # Soft edge: a slight blur of the matte hides the stair-steps of the rasterised silhouette.
        alpha = cv2.GaussianBlur(warped.alpha, (0, 0), sigmaX=max(0.6, scene.width / 700.0))
        win = frame[warped.y0 : warped.y0 + h, warped.x0 : warped.x0 + w]
        # (OpenCV's blend and saturating round: a fifth of the time of the same in numpy)
        blend = cv2.blendLinear(
            np.ascontiguousarray(warped.rgb, dtype=np.float32), win.astype(np.float32), alpha, 1.0 - alpha
        )
        win[:] = cv2.convertScaleAbs(np.maximum(blend, 0.0, out=blend))
    return frame


def scene_warper(scene: Scene, avatar: bool = True) -> FlowWarper:
    """The transformation flow's warper for `scene`'s photos and body, with the avatar's atlas unless
    `avatar` is False (the photos alone, as before there was one)."""
    return FlowWarper(
        get_rasterizer(),
        scene.sources,
        scene.body.faces,
        scene.vertex_part,
        scene.mirror,
        scene.camera,
        scene.width,
        scene.height,
        rest_vertices=scene.rest_vertices,
        texture=scene.texture if avatar else None,
        uv=scene.uv if avatar else None,
    )


def render_frames(
    person: Person,
    motion: Motion,
    *,
    size: int = DEFAULT_SIZE,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    lwg_checkpoint: str | Path | None = None,
    body: BodyModel | None = None,
    shadow: bool = True,
    fit_travel: bool = True,
    camera: str = "follow",
) -> Iterator[np.ndarray]:
    """RGB uint8 frames (H, W, 3) of the person performing `motion` over the background plate.
    `camera`: "follow" (pan, zoom out and step back where the person would leave the frame; the
    motion's travel is kept) or "fixed" (the first photo's camera); with "fixed", `fit_travel` scales
    down a travel that would leave the frame (with a warning) instead of refusing."""
    check_camera_mode(camera)
    if motion.num_frames == 0:
        raise InputError("zero-length motion (no frames)")
    if abs(motion.fps - 30.0) > 1e-3:
        motion = motion.resample(30.0)
    scene = build_scene(person, size=size, body=body)
    placed, path = _place(scene, motion, fit_travel, camera)
    warper = scene_warper(scene)
    refiner = None
    if lwg_checkpoint is not None:
        from vmclip.render.lwg import load_refiner

        refiner = load_refiner(lwg_checkpoint, device=getattr(scene.body, "device", None))  # the body's

    def frame(i: int) -> np.ndarray:
        verts = placed.vertices[i]
        view = replace(scene, camera=path.cameras[i], background=path.background(i, scene.background))
        warped = warper.warp(verts, camera=view.camera)
        if refiner is not None and warped is not None:
            warped = refiner.refine(view, warped, verts)
        shade = contact_shadow(view, verts, placed.ground_y) if shadow else None
        return composite(view, warped, shade)

    n = len(placed.vertices)
    threads = render_threads()
    pending: deque[Future[np.ndarray]] = deque()
    # Frames are independent, so they are rendered on several threads (NumPy and OpenCV release the
    # GIL; the rasteriser runs its GL calls in its own thread) and yielded in order.
    with ThreadPoolExecutor(threads, thread_name_prefix="vmclip-frame") as pool:
        try:
            done = 0
            for i in range(n + FRAMES_AHEAD * threads):
                if cancel is not None and cancel.is_set():
                    raise RenderCancelled("rendering cancelled")
                if i < n:
                    pending.append(pool.submit(frame, i))
                if len(pending) >= FRAMES_AHEAD * threads or (i >= n and pending):
                    yield pending.popleft().result()
                    done += 1
                    if progress is not None:
                        progress(done / n, f"frame {done}/{n}")
        finally:  # cancelled, failed or abandoned by the caller: drop the frames not started
            for future in pending:
                future.cancel()


def write_gif(path: str | Path, frames: list[np.ndarray], fps: float = 30.0, max_side: int = 384) -> Path:
    """An animated GIF (every other frame, downscaled: GIFs of full videos get large)."""
    from PIL import Image

    path = Path(path)
    if path.suffix.lower() != ".gif":
        raise InputError(f"{path}: GIF output must end in .gif")
    step = 2 if fps > 20 else 1
    images = []
    for f in frames[::step]:
        h, w = f.shape[:2]
        s = min(1.0, max_side / max(h, w))
        img = Image.fromarray(f).resize((max(1, round(w * s)), max(1, round(h * s))), Image.LANCZOS)
        images.append(img.convert("P", palette=Image.ADAPTIVE, colors=255))
    with atomic_output(path) as tmp:
        images[0].save(
            tmp,
            format="GIF",
            save_all=True,
            append_images=images[1:],
            duration=int(round(1000 * step / fps)),
            loop=0,
        )
    return path


def write_frames(folder: str | Path, frames: list[np.ndarray]) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        with atomic_output(folder / f"frame_{i:04d}.png") as tmp:
            if not cv2.imwrite(str(tmp), cv2.cvtColor(f, cv2.COLOR_RGB2BGR)):
                raise InputError(f"{folder}: cannot write PNG frames")
    return folder


def animate(
    person: Person,
    motion: Motion,
    out_path: str | Path,
    *,
    size: int = DEFAULT_SIZE,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    lwg_checkpoint: str | Path | None = None,
    gif: str | Path | None = None,
    frames_dir: str | Path | None = None,
    body: BodyModel | None = None,
    fit_travel: bool = True,
    camera: str = "follow",
) -> Path:
    """Render `person` performing `motion` into an H.264 MP4 at `out_path` (written atomically)."""
    from vmclip.video import write_mp4

    out_path = Path(out_path)
    if out_path.suffix.lower() != ".mp4":
        raise InputError(f"{out_path}: video output must end in .mp4")
    check_writable(out_path)
    if gif is not None:
        check_writable(gif)
    if motion.num_frames == 0:
        raise InputError("zero-length motion (no frames)")
    check_camera_mode(camera)
    keep = gif is not None or frames_dir is not None
    kept: list[np.ndarray] = []

    def frames() -> Iterator[np.ndarray]:
        for f in render_frames(
            person,
            motion,
            size=size,
            progress=progress,
            cancel=cancel,
            lwg_checkpoint=lwg_checkpoint,
            body=body,
            fit_travel=fit_travel,
            camera=camera,
        ):
            if keep:
                kept.append(f)
            yield f

    write_mp4(out_path, frames(), fps=30.0)
    if gif is not None:
        write_gif(gif, kept)
    if frames_dir is not None:
        write_frames(frames_dir, kept)
    return out_path
