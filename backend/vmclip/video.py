"""MP4 writing with PyAV (H.264, yuv420p, plays in browsers), atomically."""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vmclip.errors import InputError
from vmclip.fileio import atomic_output


def write_mp4(path: str | Path, frames: Iterable[np.ndarray], fps: float = 30.0, crf: int = 20) -> Path:
    """Encode RGB uint8 frames (H, W, 3) to H.264. Odd sizes are padded to even (yuv420p needs it)."""
    path = Path(path)
    if path.suffix.lower() != ".mp4":
        raise InputError(f"{path}: video output must end in .mp4")
    count = 0
    with atomic_output(path) as tmp:
        with av.open(str(tmp), mode="w", format="mp4") as container:
            stream = None
            for frame in frames:
                frame = np.ascontiguousarray(frame[..., :3], dtype=np.uint8)
                h, w = frame.shape[:2]
                if h % 2 or w % 2:
                    frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
                if stream is None:
                    stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
                    stream.width, stream.height = frame.shape[1], frame.shape[0]
                    stream.pix_fmt = "yuv420p"
                    stream.options = {"crf": str(crf), "preset": "veryfast"}
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    container.mux(packet)
                count += 1
            if stream is None:
                raise InputError(f"{path}: no frames to write")
            for packet in stream.encode():
                container.mux(packet)
    return path


def read_frames(path: str | Path) -> list[np.ndarray]:
    """Decode every frame of a video as RGB uint8 (for tests and checks)."""
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
