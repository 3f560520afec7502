"""The server's side of the pipeline: wire inputs in, wire replies out, stages checked for `hello`.

The work itself is `vmclip.pipeline.Pipeline` (the one composition, shared with the CLI and the demo);
this adapter decodes the request's photos, reports which stages can run here, and turns results into
reply bodies and frames. A stage that is not installed, or whose model files are missing, makes its
requests fail with the error code "unavailable" - never with a made-up result.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from vmclip_protocol import MotionPayload

from vmclip import pipeline as core
from vmclip.errors import VmclipError

if TYPE_CHECKING:
    from vmclip.motion.constraints import MotionConstraints

log = logging.getLogger("vmclip.server")

ProgressFn = Callable[..., None]

LABELS = {"generate_motion": "text-to-motion", "analyze": "person analysis", "render": "renderer"}


class StageUnavailable(Exception):
    """A pipeline stage cannot run here (not installed yet, or its model files are missing)."""


class JobCancelled(Exception):
    """The job's cancel event was set (by a cancel request or its deadline)."""


def _probe_t2m() -> None:
    from vmclip.t2m import weights_path

    path = Path(weights_path())
    if not path.is_file():
        raise VmclipError(f"{path}: text-to-motion weights not found (train them with `vmclip train`)")


def _probe_person() -> None:
    from vmclip.person import analysis  # noqa: F401 - importing it is the check (MediaPipe, torch)


def _probe_render() -> None:
    from vmclip.render import pipeline  # noqa: F401 - importing it is the check (OpenCV, moderngl)


# Cheap checks (imports, a file's presence; no model loading) so that hello tells the truth before the
# first request.
PROBES: dict[str, Callable[[], None]] = {
    "generate_motion": _probe_t2m,
    "analyze": _probe_person,
    "render": _probe_render,
}


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

    def __init__(self, device: str | None = None, analysis_cache: int = core.ANALYSIS_CACHE) -> None:
        self.core = core.Pipeline(device, analysis_cache=analysis_cache)
        self.device = self.core.device
        self._caps: dict[str, dict[str, Any]] = {}

    # --- stage availability ----------------------------------------------------------------------
    def _stage(self, job_type: str) -> None:
        if self._caps.get(job_type, {}).get("available"):
            return
        try:
            PROBES[job_type]()
        except Exception as exc:  # noqa: BLE001 - any failure to import means the stage cannot run
            reason = str(exc) if isinstance(exc, VmclipError) else f"{type(exc).__name__}: {exc}"
            reason = f"the {LABELS[job_type]} stage is not available here: {reason}"
            self._caps[job_type] = {"available": False, "reason": reason}
            raise StageUnavailable(reason) from None
        self._caps[job_type] = {"available": True}

    def capabilities(self) -> dict[str, dict[str, Any]]:
        """For `hello`: which job types can run, and why not.

        Stages are checked once (importing them can take seconds); a stage that was unavailable is
        tried again when a job needs it, which updates this answer.
        """
        for job_type in PROBES:
            if job_type not in self._caps:
                try:
                    self._stage(job_type)
                except StageUnavailable:
                    pass
        return {k: dict(v) for k, v in self._caps.items()}

    def preload(self) -> threading.Thread:
        """Load the text-to-motion model now, so the first request does not pay for it, and the photo
        stages' models on a background thread (returned), which requests that need them wait for."""
        try:
            self._generator()
        except StageUnavailable as exc:
            log.warning("%s", exc)

        def warm() -> None:
            try:
                self._stage("analyze")
                self._stage("render")
                self.core.warm_up()
            except Exception as exc:  # noqa: BLE001 - the job that needs the stage reports it
                log.warning("photo stages not preloaded: %s", exc)

        thread = threading.Thread(target=warm, name="vmclip-warm-up", daemon=True)
        thread.start()
        return thread

    def _generator(self) -> Any:
        self._stage("generate_motion")
        try:
            return self.core.generator()
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
        self._generator()
        try:
            motion = self.core.motion(
                prompt, seconds, seed, constraints=constraints, fps=fps, progress=progress, cancel=cancel
            )
        except core.Cancelled:
            raise JobCancelled() from None
        return MotionPayload(motion.axis_angle().astype(np.float32), motion.trans, motion.fps, text=prompt)

    def _analysis(self, images: Sequence[bytes], progress: ProgressFn, cancel: threading.Event) -> Any:
        self._stage("analyze")
        try:
            # the encoded bytes, decoded inside analyze exactly as the CLI decodes a file (person.images)
            return self.core.analyze([bytes(i) for i in images], progress=progress, cancel=cancel)
        except core.Cancelled:
            raise JobCancelled() from None

    def analyze(
        self, images: Sequence[bytes], *, progress: ProgressFn, cancel: threading.Event
    ) -> tuple[dict[str, Any], list]:
        """The analysis summary (JSON body) and, when the body model loads, the fitted body as binary
        frames (see `body_payload` and shared/README.md): rest mesh, skin weights and per-photo
        texture coordinates with visibility."""
        analysis = self._analysis(images, lambda f=0.0, m="": progress(0.99 * float(f), m), cancel)
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
        return _analysis_body(analysis, per_view, warnings, mesh), frames

    def render(
        self,
        images: Sequence[bytes],
        motion: MotionPayload,
        options: dict[str, Any],
        *,
        progress: ProgressFn,
        cancel: threading.Event,
    ) -> bytes:
        from vmclip.motion import Motion

        self._stage("analyze")
        self._stage("render")
        texts = [motion.text] if motion.text else []
        vm = Motion.from_axis_angle(motion.poses, motion.trans, motion.fps, texts)
        with tempfile.TemporaryDirectory(prefix="vmclip-render-") as tmp:
            out = Path(tmp) / "render.mp4"
            try:
                self.core.run(
                    motion=vm,
                    images=[bytes(i) for i in images],  # decoded as the CLI decodes files
                    out=out,
                    size=int(options.get("size", 512)),
                    camera=str(options.get("camera", "follow")),
                    progress=progress,
                    cancel=cancel,
                )
            except core.Cancelled:
                raise JobCancelled() from None
            if cancel.is_set():
                raise JobCancelled()
            return out.read_bytes()


def _analysis_body(analysis: Any, per_view: list[dict], warnings: list[str], mesh: Any) -> dict[str, Any]:
    """The analyze reply's JSON body: shape, per-photo camera, fit quality and body projection."""
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
    return body
