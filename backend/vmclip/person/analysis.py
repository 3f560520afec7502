"""`analyze`: photos of one person -> PersonAnalysis (keypoints, mask, fitted body, camera, plate).

Saved as a JSON file with the images beside it as PNG files (`<stem>.view<i>.image.png`, `.mask.png`,
`.background.png`), every file written atomically, so the renderer and server can reload it.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vmclip.errors import InputError
from vmclip.fileio import atomic_output, check_writable
from vmclip.geometry import Camera

FORMAT_VERSION = 1
__all__ = ["Camera", "PersonAnalysis", "ViewFit", "analyze"]
ProgressFn = Callable[[float, str], None]


@dataclass
class ViewFit:
    """One photo: what was seen (keypoints, mask) and what was fitted (pose, camera)."""

    image: np.ndarray  # (H,W,3) uint8 RGB
    mask: np.ndarray  # (H,W) float32 0..1
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 (pixels)
    keypoints: np.ndarray  # (33,4) MediaPipe: x_px, y_px, z, visibility
    joints2d: np.ndarray  # (24,3) SMPL-24: x_px, y_px, confidence
    camera: Camera
    pose: np.ndarray  # (24,3,3) local rotations; root = global orientation in the world frame
    trans: np.ndarray  # (3,) pelvis world position (feet on y = 0)
    background: np.ndarray  # (H,W,3) uint8 in-painted plate
    fit_error_px: float  # mean keypoint reprojection error over visible landmarks
    iou: float  # rendered body silhouette vs person mask
    fit_error_pct: float = float("nan")  # the same error as a percentage of the person's height in pixels
    iou_body: float = float("nan")  # the same IoU for the body without its clothing offsets
    world_landmarks: np.ndarray | None = None  # (33,4) MediaPipe's metric landmarks (camera-aligned)
    source: str | None = None  # the photo's path, when it came from a file


@dataclass
class PersonAnalysis:
    shape: dict[str, Any]
    body_kind: str
    views: list[ViewFit]
    warnings: list[str] = field(default_factory=list)
    # The avatar's texture atlas (S, S, 3) uint8 over the body's UV layout (`vmclip.person.texture`);
    # None until made (`avatar_texture`), and for bodies without a UV layout.
    texture: np.ndarray | None = None

    # --- persistence -----------------------------------------------------------------------------
    def save_json(self, path: str | os.PathLike) -> Path:
        """Write `path` (JSON) plus one PNG per image/mask/plate beside it; all atomically."""
        from PIL import Image

        path = check_writable(path)
        stem = path.name[:-5] if path.name.endswith(".json") else path.name
        views = []
        for i, v in enumerate(self.views):
            names = {kind: f"{stem}.view{i}.{kind}.png" for kind in ("image", "mask", "background")}
            arrays = {
                "image": v.image,
                "background": v.background,
                "mask": np.clip(np.round(v.mask * 255), 0, 255).astype(np.uint8),
            }
            for kind, name in names.items():
                with atomic_output(path.parent / name) as tmp:
                    Image.fromarray(arrays[kind]).save(tmp, format="PNG")
            views.append(
                {
                    **names,
                    "source": v.source,
                    "box": [float(b) for b in v.box],
                    "keypoints": np.round(v.keypoints, 4).tolist(),
                    "joints2d": np.round(v.joints2d, 4).tolist(),
                    "camera": v.camera.to_dict(),
                    "pose": v.pose.tolist(),
                    "trans": v.trans.tolist(),
                    "fit_error_px": _num(v.fit_error_px),
                    "fit_error_pct": _num(v.fit_error_pct),
                    "iou": _num(v.iou),
                    "iou_body": _num(v.iou_body),
                    "world_landmarks": None
                    if v.world_landmarks is None
                    else np.round(v.world_landmarks, 5).tolist(),
                }
            )
        texture_name = None
        if self.texture is not None:
            texture_name = f"{stem}.texture.png"
            with atomic_output(path.parent / texture_name) as tmp:
                Image.fromarray(self.texture).save(tmp, format="PNG")
        doc = {
            "format": "vmclip-person",
            "version": FORMAT_VERSION,
            "body_kind": self.body_kind,
            "shape": self.shape,
            "warnings": list(self.warnings),
            "views": views,
            "texture": texture_name,
        }
        with atomic_output(path) as tmp:
            tmp.write_text(json.dumps(doc, indent=1))
        return path

    @classmethod
    def load_json(cls, path: str | os.PathLike) -> PersonAnalysis:
        from PIL import Image

        path = Path(path)
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise InputError(f"{path}: no such file") from exc
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"{path}: not a person analysis JSON file ({exc})") from exc
        if not isinstance(doc, dict) or doc.get("format") != "vmclip-person":
            raise InputError(f"{path}: not a person analysis file (written by `vmclip analyze`)")
        if doc.get("version", 0) > FORMAT_VERSION:
            raise InputError(f"{path}: written by a newer vmclip (format {doc['version']})")

        def png(name: str) -> np.ndarray:
            try:
                with Image.open(path.parent / name) as im:
                    return np.asarray(im)
            except (OSError, ValueError) as exc:
                raise InputError(f"{path.parent / name}: missing or unreadable ({exc})") from exc

        views = []
        for v in doc["views"]:
            image = png(v["image"])
            if image.ndim == 2:
                image = np.repeat(image[..., None], 3, 2)
            views.append(
                ViewFit(
                    image=image[..., :3].copy(),
                    mask=png(v["mask"]).astype(np.float32) / 255.0,
                    box=tuple(v["box"]),
                    keypoints=np.asarray(v["keypoints"], float),
                    joints2d=np.asarray(v["joints2d"], float),
                    camera=Camera.from_dict(v["camera"]),
                    pose=np.asarray(v["pose"], float),
                    trans=np.asarray(v["trans"], float),
                    background=png(v["background"])[..., :3].copy(),
                    fit_error_px=_float(v.get("fit_error_px")),
                    iou=_float(v.get("iou")),
                    iou_body=_float(v.get("iou_body")),
                    fit_error_pct=_float(v.get("fit_error_pct")),
                    world_landmarks=None
                    if v.get("world_landmarks") is None
                    else np.asarray(v["world_landmarks"]),
                    source=v.get("source"),
                )
            )
        texture = None
        if doc.get("texture"):
            texture = png(doc["texture"])
            texture = np.repeat(texture[..., None], 3, 2) if texture.ndim == 2 else texture[..., :3].copy()
        return cls(
            shape=doc["shape"],
            body_kind=doc["body_kind"],
            views=views,
            warnings=doc.get("warnings", []),
            texture=texture,
        )

    # --- convenience -----------------------------------------------------------------------------
    def avatar_texture(self) -> np.ndarray | None:
        """The texture atlas, made once (an analysis from an older file has none yet) and kept."""
        if self.texture is None:
            from vmclip.person.body import load_body_model
            from vmclip.person.texture import build_texture

            self.texture = build_texture(load_body_model(self.body_kind), self.shape, self.views)
        return self.texture

    def posed_vertices(self, view: int = 0) -> np.ndarray:
        """The fitted body's vertices (V,3) in view `view`'s world frame."""
        from vmclip.person.body import load_body_model

        v = self.views[view]
        return load_body_model(self.body_kind).pose_vertices(self.shape, v.pose[None], v.trans[None])[0]


def _num(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), 5)


def _float(x: Any) -> float:
    return float("nan") if x is None else float(x)


def _plate(image: np.ndarray, det: Any, background: bool, seed: int) -> np.ndarray:
    """The photo's background plate (the person in-painted out), or the photo itself without one."""
    if not background:
        return image.copy()
    from vmclip.person.background import background_plate

    return background_plate(image, det.mask, det.box, seed=seed)


def analyze(
    images: Sequence[str | os.PathLike | np.ndarray | bytes],
    *,
    fit: bool = True,
    progress: ProgressFn | None = None,
    body_kind: str = "anny",
    background: bool = True,
    seed: int = 0,
    device: str | None = None,
    texture: bool = True,
) -> PersonAnalysis:
    """Analyse photos of ONE person: keypoints, mask, a body shape shared by all photos, per-photo pose
    and camera, background plates.

    `texture=False` skips the avatar's texture atlas (made later on demand by `avatar_texture`).
    `fit=False` keeps the closed-form start (pose from MediaPipe's 3D landmarks) without optimising.
    `progress(fraction, message)` is called as the work advances. Raises InputError for unusable
    input (unreadable file, no person, ...), with the photo named."""
    from vmclip.person.body import load_body_model
    from vmclip.person.detect import detect
    from vmclip.person.fit import ITERATIONS, fit_views
    from vmclip.person.images import load_image

    if isinstance(images, (str, os.PathLike, np.ndarray, bytes, bytearray)):
        images = [images]
    images = list(images)
    if not images:
        raise InputError("no images given")
    report = progress or (lambda fraction, message: None)
    n = len(images)
    loaded, names, sources, detections, warnings = [], [], [], [], []
    # A plate needs only its photo and mask, so the plates are in-painted on a second thread while
    # the body is fitted (PatchMatch and OpenCV release the GIL; the fit keeps about one core busy).
    with ThreadPoolExecutor(1, thread_name_prefix="vmclip-plate") as painter:
        plates: list[Future[np.ndarray]] = []
        try:
            for i, src in enumerate(images):
                from_file = isinstance(src, (str, os.PathLike))
                name = str(src) if from_file else f"image {i + 1}"
                report(0.4 * i / n, f"finding the person in {name}")
                image = load_image(src, name=name)
                det = detect(image, name)
                loaded.append(image)
                names.append(name)
                sources.append(str(Path(src).resolve()) if from_file else None)
                detections.append(det)
                warnings.extend(det.warnings)
                plates.append(painter.submit(_plate, image, det, background, seed))
            report(0.4, "fitting the body" + (" and in-painting the background" if background else ""))
            body = load_body_model(body_kind, device=device)
            results = fit_views(body, loaded, detections, iterations=ITERATIONS if fit else (0, 0, 0))
            warnings.extend(
                f"{name}: an object held in a hand ({100 * res.held_share:.0f} % of the person) is left "
                "out of the person" + (" and painted out of the background" if background else "")
                for name, res in zip(names, results, strict=True)
                if res.held_share > 0
            )
            if background:
                report(0.9, "in-painting the background")
            views = [
                ViewFit(
                    image=image,
                    mask=res.mask,
                    box=det.box,
                    keypoints=det.keypoints,
                    joints2d=det.joints2d,
                    camera=Camera(K=res.K, R=res.R, t=res.t),
                    pose=res.pose,
                    trans=res.trans,
                    background=plate.result(),
                    fit_error_px=res.fit_error_px,
                    iou=res.iou,
                    iou_body=res.iou_body,
                    fit_error_pct=res.fit_error_pct,
                    world_landmarks=det.world,
                    source=sources[i],
                )
                for i, (image, det, res, plate) in enumerate(
                    zip(loaded, detections, results, plates, strict=True)
                )
            ]
        finally:  # a bad photo or a cancel: the plates not started yet are not needed
            for plate in plates:
                plate.cancel()
    person = PersonAnalysis(shape=results[0].shape, body_kind=body_kind, views=views, warnings=warnings)
    if texture:
        report(0.97, "painting the avatar's texture")
        person.avatar_texture()
    report(1.0, "done")
    return person
