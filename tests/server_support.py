"""Helpers for the server tests: a stand-in for the ML stages that does real, bounded work, and a
way to run a server in a thread or in its own process.

`ReplayPipeline` replaces the pipeline's stages *only for protocol/concurrency tests*: its
`generate_motion` cuts a window out of a real motion file written by the test and resamples it
(the motion format's slerp), `render` draws the motion's joints over the photo and encodes a real
H.264 MP4 frame by frame with `vmclip.video.write_mp4`, checking the cancel flag at every frame.
Tests of the real stages use `vmclip.server.Pipeline`.

Run as a script it starts a server with this pipeline (the restart test kills and restarts it).
"""

from __future__ import annotations

import argparse
import io
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from vmclip.motion import Motion, load_npz
from vmclip.person.images import decode_image
from vmclip.server import JobCancelled, Pipeline, Server, ServerConfig
from vmclip_protocol import MotionPayload


def write_test_motion(path: Path, frames: int = 240, fps: float = 30.0) -> Path:
    """A walking-like motion (hips, knees and arms swing, pelvis moves forward), saved as .npz."""
    t = np.arange(frames) / fps
    poses = np.zeros((frames, 24, 3))
    swing = 0.5 * np.sin(2 * np.pi * 1.0 * t)
    poses[:, 1, 0], poses[:, 2, 0] = swing, -swing  # hips about x
    poses[:, 4, 0] = poses[:, 5, 0] = 0.4 * (1 - np.cos(2 * np.pi * 1.0 * t))  # knees
    poses[:, 16, 2], poses[:, 17, 2] = -1.2, 1.2  # arms down from the T-pose
    poses[:, 18, 1], poses[:, 19, 1] = 0.3 * swing, -0.3 * swing
    trans = np.stack([np.zeros(frames), 0.92 + 0.02 * np.cos(4 * np.pi * t), 1.2 * t], axis=1)
    return Motion.from_axis_angle(poses, trans, fps, ["a person walks forward"]).save_npz(path)


def png_bytes(width: int = 96, height: int = 128, seed: int = 0) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    img = (rng.random((height, width, 3)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


class ReplayPipeline(Pipeline):
    """Real, bounded work in place of the ML stages (see the module docstring)."""

    def __init__(self, motion_path: Path, work_s: float = 0.0) -> None:
        super().__init__(device="cpu")
        self.source = load_npz(motion_path)
        self.work_s = work_s
        self.calls: dict[str, int] = {"generate_motion": 0, "analyze": 0, "render": 0}
        self.render_stopped_at: float | None = None
        self.render_frames_done = 0
        self._count_lock = threading.Lock()

    def capabilities(self) -> dict[str, dict[str, Any]]:
        return {k: {"available": True} for k in self.calls}

    def _count(self, name: str) -> None:
        with self._count_lock:
            self.calls[name] += 1

    def expected_motion(self, seconds: float, seed: int, fps: float) -> Motion:
        src = self.source
        n = min(src.num_frames, int(round(seconds * src.fps)) + 1)
        start = int(np.random.default_rng(seed).integers(0, src.num_frames - n + 1))
        return src.slice(start, start + n).resample(fps)

    def generate_motion(
        self, prompt: str, seconds: float, seed: int, fps: float, *, progress, cancel: threading.Event
    ) -> MotionPayload:
        self._count("generate_motion")
        steps = 10
        for i in range(steps):  # hold the job open for work_s, reporting progress, honouring cancel
            progress(i / steps, "working")
            if self.work_s and cancel.wait(self.work_s / steps):
                raise JobCancelled()
        motion = self.expected_motion(seconds, seed, fps)
        return MotionPayload(motion.axis_angle().astype(np.float32), motion.trans, motion.fps, text=prompt)

    def analyze(self, images, *, progress, cancel) -> dict[str, Any]:
        self._count("analyze")
        views = []
        for i, data in enumerate(images):
            img = decode_image(data)
            progress(i / len(images), f"photo {i + 1}")
            views.append(
                {
                    "image_size": [int(img.shape[1]), int(img.shape[0])],
                    "mean_rgb": [float(v) for v in img.reshape(-1, 3).mean(0)],
                }
            )
        return {"body_kind": "none", "views": views}

    def render(self, images, motion: MotionPayload, options, *, progress, cancel) -> bytes:
        import tempfile

        from PIL import Image
        from vmclip.video import write_mp4

        self._count("render")
        size = int(options.get("size", 128))
        plate = np.asarray(Image.fromarray(decode_image(images[0])).resize((size, size)))
        joints = Motion.from_axis_angle(motion.poses, motion.trans, motion.fps).joint_positions()
        centre = joints[:, 0:1, [0, 1]].mean(axis=0)

        def frames():
            try:
                for i, pts in enumerate(joints):
                    if cancel.is_set():
                        raise JobCancelled()
                    frame = plate.copy()
                    xy = (pts[:, [0, 1]] - centre[0]) * np.array([1, -1]) * size / 2.2 + size / 2
                    for x, y in xy.astype(int):
                        frame[max(0, y - 2) : y + 2, max(0, x - 2) : x + 2] = (255, 0, 0)
                    self.render_frames_done = i + 1
                    progress((i + 1) / len(joints), f"frame {i + 1}/{len(joints)}")  # raises once cancelled
                    yield frame
            except JobCancelled:
                self.render_stopped_at = time.monotonic()
                raise

        with tempfile.TemporaryDirectory() as tmp:
            out = write_mp4(Path(tmp) / "out.mp4", frames(), fps=motion.fps)
            return out.read_bytes()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(pipeline: Pipeline, **config: Any) -> Server:
    config.setdefault("bind", "tcp://127.0.0.1:*")
    return Server(ServerConfig(**config), pipeline).start()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bind", required=True)
    parser.add_argument("--motion", type=Path, required=True)
    parser.add_argument("--work-s", type=float, default=0.0)
    args = parser.parse_args(argv)
    server = start_server(ReplayPipeline(args.motion, args.work_s), bind=args.bind)
    print(f"ready {server.address}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
