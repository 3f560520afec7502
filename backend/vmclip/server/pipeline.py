"""The ML stages behind the server, resolved lazily.

`Pipeline` is the only place the server touches the stage packages (`vmclip.t2m`, `vmclip.person`,
`vmclip.render`). A stage that is not installed, or whose model files are missing, makes its
requests fail with the error code "unavailable" - never with a made-up result.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import logging
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from vmclip_protocol import MotionPayload

from vmclip.errors import VmclipError

if TYPE_CHECKING:
    from vmclip.motion.constraints import MotionConstraints

log = logging.getLogger("vmclip.server")

ProgressFn = Callable[..., None]

STAGES = {
    "generate_motion": ("vmclip.t2m", "load_generator", "text-to-motion"),
    "analyze": ("vmclip.person", "analyze", "person analysis"),
    "render": ("vmclip.render", "animate", "renderer"),
}


class StageUnavailable(Exception):
    """A pipeline stage cannot run here (not installed yet, or its model files are missing)."""


class JobCancelled(Exception):
    """The job's cancel event was set (by a cancel request or its deadline)."""


def pick_device(device: str | None = None) -> str:
    """`device` if given, else CUDA when torch sees a GPU, else the CPU."""
    if device:
        return device
    try:
        import torch
    except ImportError:
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def decode_image(data: bytes) -> np.ndarray:
    """PNG/JPEG bytes -> (H, W, 3) uint8 RGB, EXIF orientation applied (phones store photos rotated)."""
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(data)) as img:
        img = ImageOps.exif_transpose(img)
        return np.asarray(img.convert("RGB"))


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):  # torch tensors
        return value.tolist()
    return value


class Pipeline:
    """Text-to-motion, person analysis and rendering for the server (one instance, models kept).

    Subclasses may override the three job methods; the server only calls this interface.
    `progress(fraction, message)` raises JobCancelled once `cancel` is set, so any stage that
    reports progress also stops promptly.
    """

    def __init__(self, device: str | None = None, analysis_cache: int = 4) -> None:
        self.device = pick_device(device)
        self._modules: dict[str, Any] = {}
        self._caps: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._analyses: OrderedDict[str, Any] = OrderedDict()
        self._analysis_cache = analysis_cache

    # --- stage resolution ------------------------------------------------------------------------
    def _stage(self, job_type: str) -> Any:
        module_name, attr, label = STAGES[job_type]
        with self._lock:
            if job_type in self._modules:
                return self._modules[job_type]
            try:
                module = importlib.import_module(module_name)
                entry = getattr(module, attr, None)  # stage packages may resolve names lazily
            except Exception as exc:  # noqa: BLE001 - any failure to import means the stage cannot run
                raise StageUnavailable(
                    f"the {label} stage ({module_name}) is not available here: {type(exc).__name__}: {exc}"
                ) from None
            if not callable(entry):
                raise StageUnavailable(f"the {label} stage ({module_name}) has no {attr}() yet")
            self._modules[job_type] = module
            self._caps[job_type] = {"available": True}
        if job_type == "generate_motion":
            self._check_weights(module)
        return module

    def _check_weights(self, t2m: Any) -> None:
        # Cheap check (no loading) so that hello tells the truth before the first request.
        if not callable(getattr(t2m, "weights_path", None)):
            return
        try:
            path = Path(t2m.weights_path())
        except VmclipError as exc:
            path, reason = None, str(exc)
        if path is not None:
            if path.is_file():
                self._caps["generate_motion"] = {"available": True}
                return
            reason = f"{path}: text-to-motion weights not found (train them with `vmclip train`)"
        self._caps["generate_motion"] = {"available": False, "reason": reason}
        raise StageUnavailable(reason)

    def capabilities(self) -> dict[str, dict[str, Any]]:
        """For `hello`: which job types can run, and why not.

        Stages are resolved once (importing them can take seconds); a stage that was unavailable is
        tried again when a job needs it, which updates this answer.
        """
        for job_type in STAGES:
            if job_type not in self._caps:
                try:
                    self._stage(job_type)
                except StageUnavailable as exc:
                    self._caps[job_type] = {"available": False, "reason": str(exc)}
        return {k: dict(v) for k, v in self._caps.items()}

    def preload(self) -> None:
        """Load the text-to-motion model now, so the first request does not pay for it."""
        try:
            self._generator()
        except StageUnavailable as exc:
            log.warning("%s", exc)

    def _generator(self) -> Any:
        t2m = self._stage("generate_motion")
        try:
            generator = t2m.load_generator(device=self.device)
            self._caps["generate_motion"] = {"available": True}
            return generator
        except (VmclipError, FileNotFoundError) as exc:  # e.g. no trained checkpoint
            self._caps["generate_motion"] = {"available": False, "reason": str(exc)}
            raise StageUnavailable(f"text-to-motion model could not be loaded: {exc}") from None

    # --- jobs ------------------------------------------------------------------------------------
    def generate_motion(
        self,
        prompt: str,
        seconds: float,
        seed: int,
        fps: float,
        *,
        progress: ProgressFn,
        cancel: threading.Event,
        constraints: MotionConstraints | None = None,
    ) -> MotionPayload:
        """`constraints` (validated, one row per output frame at `fps`) are met at that rate."""
        generator = self._generator()
        progress(0.0, "generating motion")
        if constraints is None:
            motion = generator.generate(prompt, seconds=seconds, seed=seed)
        else:
            motion = generator.generate(prompt, seconds=seconds, seed=seed, constraints=constraints, fps=fps)
        if cancel.is_set():
            raise JobCancelled()
        if abs(motion.fps - fps) > 1e-6:
            motion = motion.resample(fps)
        progress(1.0, "motion ready")
        return MotionPayload(motion.axis_angle().astype(np.float32), motion.trans, motion.fps, text=prompt)

    def _analysis(self, images: Sequence[bytes], progress: ProgressFn) -> Any:
        person = self._stage("analyze")
        key = hashlib.sha256(b"".join(hashlib.sha256(i).digest() for i in images)).hexdigest()
        with self._lock:
            if key in self._analyses:
                self._analyses.move_to_end(key)
                return self._analyses[key]
        arrays = [decode_image(i) for i in images]
        progress(0.0, f"analysing {len(arrays)} photo(s)")
        analysis = person.analyze(arrays, progress=progress, device=self.device)
        with self._lock:
            self._analyses[key] = analysis
            while len(self._analyses) > self._analysis_cache:
                self._analyses.popitem(last=False)
        return analysis

    def analyze(
        self, images: Sequence[bytes], *, progress: ProgressFn, cancel: threading.Event
    ) -> tuple[dict[str, Any], list]:
        """The analysis summary (JSON body) and, when the body model loads, the fitted body as binary
        frames (see `body_payload` and shared/README.md): rest mesh, skin weights and per-photo
        texture coordinates with visibility."""
        analysis = self._analysis(images, progress)
        if cancel.is_set():
            raise JobCancelled()
        warnings = [str(w) for w in getattr(analysis, "warnings", [])]
        mesh, frames, per_view = None, [], [{} for _ in analysis.views]
        try:
            from vmclip.server.body_payload import body_payload

            progress(0.99, "projecting the photos onto the body")
            mesh, frames, per_view = body_payload(analysis, self.device)
        except (ImportError, VmclipError, ValueError, OSError, RuntimeError) as exc:  # summary still useful
            log.warning("no body mesh in the analyze reply: %s", exc)
            warnings.append(f"the fitted body could not be sent: {exc}")
        progress(1.0, "analysis ready")
        views = []
        for view, extra in zip(analysis.views, per_view, strict=True):
            camera = view.camera
            views.append(
                {
                    "image_size": [int(view.image.shape[1]), int(view.image.shape[0])],
                    "box": _jsonable(view.box),
                    "joints2d": _jsonable(np.asarray(view.joints2d, dtype=float)),
                    "camera": {"K": _jsonable(camera.K), "R": _jsonable(camera.R), "t": _jsonable(camera.t)},
                    "trans": _jsonable(view.trans),
                    "fit_error_px": float(view.fit_error_px),
                    "iou": float(view.iou),
                    **extra,
                }
            )
        body = {
            "body_kind": analysis.body_kind,
            "shape": _jsonable(analysis.shape),
            "views": views,
            "warnings": warnings,
        }
        if mesh is not None:
            body["mesh"] = mesh
        return body, frames

    def render(
        self,
        images: Sequence[bytes],
        motion: MotionPayload,
        options: dict[str, Any],
        *,
        progress: ProgressFn,
        cancel: threading.Event,
    ) -> bytes:
        render = self._stage("render")
        from vmclip.motion import Motion

        # one progress bar for the whole job: analysis (skipped when cached) then the frames
        person = self._analysis(images, lambda f=0.0, m="": progress(0.25 * float(f), m))
        if cancel.is_set():
            raise JobCancelled()
        texts = [motion.text] if motion.text else []
        vm = Motion.from_axis_angle(motion.poses, motion.trans, motion.fps, texts)
        with tempfile.TemporaryDirectory(prefix="vmclip-render-") as tmp:
            out = Path(tmp) / "render.mp4"
            render.animate(
                person,
                vm,
                out,
                size=int(options.get("size", 512)),
                progress=lambda f=0.0, m="": progress(0.25 + 0.75 * float(f), m),
                cancel=cancel,
            )
            if cancel.is_set():
                raise JobCancelled()
            return out.read_bytes()
