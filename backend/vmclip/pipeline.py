"""The one composition of the stages: text and/or photos -> motion, person analysis, video.

    prompt --(t2m)--> Motion ---------------------------.
                                                         +--(render)--> MP4
    photos --(person: detect, fit, plate)--> Analysis --'

`vmclip animate`, `vmclip demo --direct`, the server's jobs and the benchmarks all run their work
through `Pipeline`, so the order of the stages, the device they run on, progress and cancel are
decided here and nowhere else. Callers keep what is theirs: argument parsing (CLI), the queue, limits
and wire formats (server), Blender (demo).

Stages are imported inside the methods (plain import statements, which static tools follow) so that
`import vmclip.pipeline` does not import torch, MediaPipe or OpenGL.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vmclip.errors import InputError, VmclipError

if TYPE_CHECKING:
    from vmclip.motion import Motion
    from vmclip.motion.constraints import MotionConstraints
    from vmclip.person.analysis import PersonAnalysis
    from vmclip.t2m.generate import Generator

ProgressFn = Callable[[float, str], None]
ImageInput = str | os.PathLike | np.ndarray | bytes

# Share of one progress bar per stage when a run does both: the analysis (detection, fit, plate) and
# the frames take about 1:3 of a 4-s render on the CPU (README figures); motion generation is brief.
ANALYSIS_SHARE = 0.25
# Analyses kept per process: a client that renders several motions of one person (the add-on does)
# pays for the fit once.
ANALYSIS_CACHE = 4


class Cancelled(VmclipError):
    """The caller's cancel event was set; the run stopped between or inside stages."""


@dataclass
class Result:
    """What a run produced: the motion, the analysis and the MP4 (each None when not asked for)."""

    motion: Motion | None = None
    person: PersonAnalysis | None = None
    video: Path | None = None


@dataclass
class _Span:
    """A stage's progress callback: its fraction 0..1 mapped onto [lo, hi] of the caller's bar, and the
    cancel event checked on every report (so every stage that reports progress also stops promptly)."""

    progress: ProgressFn | None
    cancel: threading.Event | None
    lo: float = 0.0
    hi: float = 1.0
    watch: Callable[[], None] | None = None  # also called on every report: raises a side job's error

    def __call__(self, fraction: float = 0.0, message: str = "") -> None:
        self.check()
        if self.progress is not None:
            self.progress(self.lo + (self.hi - self.lo) * float(fraction), message)

    def check(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled("cancelled")
        if self.watch is not None:
            self.watch()

    def part(self, lo: float, hi: float) -> _Span:
        width = self.hi - self.lo
        return _Span(self.progress, self.cancel, self.lo + width * lo, self.lo + width * hi, self.watch)


def _raise_if_failed(job: Future) -> None:
    if job.done() and job.exception() is not None:
        raise job.exception()


def _image_key(image: ImageInput) -> bytes:
    """Content key of one input photo (pixels or file bytes), for the analysis cache."""
    if isinstance(image, np.ndarray):
        return hashlib.sha256(repr((image.shape, image.dtype.str)).encode() + image.tobytes()).digest()
    if isinstance(image, bytes | bytearray):
        return hashlib.sha256(image).digest()
    path = Path(image)
    try:
        return hashlib.sha256(path.read_bytes()).digest()
    except OSError:
        raise InputError(f"{path}: no such image") from None


class Pipeline:
    """Text and/or photos -> motion, analysis, video on one device, models loaded once and kept.

    Thread-safe: the server's workers share one instance (the models are read-only at inference; the
    analysis cache has its own lock). `device` is anything `vmclip.devices.choose_device` accepts.
    """

    def __init__(
        self,
        device: object = None,
        *,
        encoder: str = "minilm",
        checkpoint: str | os.PathLike | None = None,
        body_kind: str = "anny",
        analysis_cache: int = ANALYSIS_CACHE,
    ) -> None:
        from vmclip.devices import choose_device

        self.device = str(choose_device(device))
        self.encoder = encoder
        self.checkpoint = checkpoint
        self.body_kind = body_kind
        self._lock = threading.Lock()
        self._analyses: OrderedDict[bytes, PersonAnalysis] = OrderedDict()
        self._analysis_cache = analysis_cache

    # --- the stages --------------------------------------------------------------------------------
    def generator(self) -> Generator:
        """The text-to-motion model (loaded on first use, cached per process): call it early so that a
        missing model fails in a second, before the photos are analysed."""
        from vmclip.t2m import load_generator

        return load_generator(device=self.device, encoder=self.encoder, checkpoint=self.checkpoint)

    def check_motion_model(self) -> None:
        """Raise the missing-weights error now (a file check, no load) if the model cannot load."""
        from vmclip.t2m import require_weights_file, weights_path

        require_weights_file(weights_path(self.encoder, self.checkpoint))

    def warm_up(self) -> None:
        """Load what the photo stages need on first use (the body model with its shape code, the
        rasteriser): seconds of imports that a server pays at start instead of on its first photo.
        MediaPipe stays lazy: its native log is filtered by redirecting the process's stderr, which
        would also hold the server's own log lines for the seconds the graph takes to open."""
        from vmclip.person.body import load_body_model
        from vmclip.render.raster import get_rasterizer

        load_body_model(self.body_kind, device=self.device).rest_vertices()
        get_rasterizer()

    def motion(
        self,
        prompt: str,
        seconds: float = 4.0,
        seed: int = 0,
        *,
        constraints: MotionConstraints | None = None,
        fps: float | None = None,
        progress: ProgressFn | None = None,
        cancel: threading.Event | None = None,
    ) -> Motion:
        """Text -> SMPL-24 motion (30 fps, or resampled to `fps`), seeded."""
        span = _Span(progress, cancel)
        generator = self.generator()
        span(0.0, "generating motion")
        if constraints is None:
            motion = generator.generate(prompt, seconds=seconds, seed=seed)
        else:  # constraints hold one row per output frame, so they are met at the output rate
            from vmclip.motion import FPS

            motion = generator.generate(
                prompt, seconds=seconds, seed=seed, constraints=constraints, fps=fps or FPS
            )
        span.check()
        if fps is not None and abs(motion.fps - fps) > 1e-6:
            motion = motion.resample(fps)
        span(1.0, "motion ready")
        return motion

    def analyze(
        self,
        images: Sequence[ImageInput],
        *,
        progress: ProgressFn | None = None,
        cancel: threading.Event | None = None,
    ) -> PersonAnalysis:
        """Photos of one person -> pose, mask, fitted body, camera and background plate per photo. The
        last few analyses are kept (by the photos' content), so a second render of them skips this."""
        from vmclip.person.analysis import analyze

        images = list(images)
        if not images:
            raise InputError("no images given")
        span = _Span(progress, cancel)
        key = hashlib.sha256(b"".join(_image_key(i) for i in images)).digest()
        with self._lock:
            if key in self._analyses:
                self._analyses.move_to_end(key)
                span(1.0, "analysis ready (kept from an earlier request)")
                return self._analyses[key]
        span(0.0, f"analysing {len(images)} photo(s)")
        person = analyze(images, progress=span, body_kind=self.body_kind, device=self.device)
        with self._lock:
            self._analyses[key] = person
            while len(self._analyses) > self._analysis_cache:
                self._analyses.popitem(last=False)
        span(1.0, "analysis ready")
        return person

    def video(
        self,
        person: PersonAnalysis,
        motion: Motion,
        out: str | os.PathLike,
        *,
        size: int = 512,
        progress: ProgressFn | None = None,
        cancel: threading.Event | None = None,
        lwg_checkpoint: str | os.PathLike | None = None,
        gif: str | os.PathLike | None = None,
        frames_dir: str | os.PathLike | None = None,
        fit_travel: bool = True,
        camera: str = "follow",
    ) -> Path:
        """The person re-posed frame by frame over the background plate -> H.264 MP4 at `out`.
        `camera`: "follow" (pans, zooms out, steps back to keep the person in frame) or "fixed"."""
        from vmclip.person.body import load_body_model
        from vmclip.render.pipeline import RenderCancelled, animate

        span = _Span(progress, cancel)
        span.check()
        body = load_body_model(person.body_kind or self.body_kind, device=self.device)
        try:
            return animate(
                person,
                motion,
                out,
                size=size,
                progress=span,
                cancel=cancel,
                lwg_checkpoint=lwg_checkpoint,
                gif=gif,
                frames_dir=frames_dir,
                body=body,
                fit_travel=fit_travel,
                camera=camera,
            )
        except RenderCancelled:
            raise Cancelled("cancelled") from None

    # --- the whole run -----------------------------------------------------------------------------
    def run(
        self,
        *,
        prompt: str | None = None,
        motion: Motion | None = None,
        images: Sequence[ImageInput] = (),
        person: PersonAnalysis | None = None,
        out: str | os.PathLike | None = None,
        seconds: float = 4.0,
        seed: int = 0,
        constraints: MotionConstraints | None = None,
        size: int = 512,
        progress: ProgressFn | None = None,
        cancel: threading.Event | None = None,
        **video_options: Any,
    ) -> Result:
        """Whatever the inputs allow: a prompt (or a given `motion`), photos (or a saved `person`)
        and, with `out`, the video of that person performing that motion.

        With both a prompt and photos, the motion is made on a second thread while the photos are
        analysed (on 2 cores the two overlap): a missing model or a bad prompt stops the analysis at
        its next progress report, and a photo problem found first is the error reported.
        `video_options`: `lwg_checkpoint`, `gif`, `frames_dir`, `fit_travel`, `camera` (see `video`)."""
        if prompt is None and motion is None and not images and person is None:
            raise InputError("nothing to do: give a prompt or a motion, and/or photos")
        if out is not None and ((prompt is None and motion is None) or (not images and person is None)):
            raise InputError("a video needs a motion (or a prompt) and photos of the person")
        span = _Span(progress, cancel)
        analysis_part = span.part(0.0, ANALYSIS_SHARE if out is not None else 1.0)
        if motion is None and prompt is not None and person is None and images:
            self.check_motion_model()  # a missing model is reported before any photo problem
            with ThreadPoolExecutor(1, thread_name_prefix="vmclip-motion") as side:
                job = side.submit(self.motion, prompt, seconds, seed, constraints=constraints, cancel=cancel)
                analysis_part.watch = lambda: _raise_if_failed(job)
                try:
                    person = self.analyze(images, progress=analysis_part, cancel=cancel)
                except BaseException:
                    job.cancel()
                    raise
                motion = job.result()
        if person is None and images:
            person = self.analyze(images, progress=analysis_part, cancel=cancel)
        if motion is None and prompt is not None:
            motion = self.motion(prompt, seconds, seed, constraints=constraints, cancel=cancel)
        video = None
        if out is not None:
            video = self.video(
                person,
                motion,
                out,
                size=size,
                progress=span.part(ANALYSIS_SHARE, 1.0),
                cancel=cancel,
                **video_options,
            )
        return Result(motion=motion, person=person, video=video)
