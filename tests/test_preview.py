"""Stick-figure preview: a real H.264/yuv420p MP4 that decodes to the right frame count and size, with
the figure, the floor and the text actually drawn."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from vmclip.errors import InputError
from vmclip.motion import JOINT_INDEX, Motion
from vmclip.motion.preview import render_frames, write_preview
from vmclip.motion.skeleton import pelvis_height


def _walk(frames: int = 20) -> Motion:
    t = np.arange(frames) / 30.0
    aa = np.zeros((frames, 24, 3))
    aa[:, JOINT_INDEX["left_hip"], 0] = 0.5 * np.sin(2 * np.pi * t)
    aa[:, JOINT_INDEX["right_hip"], 0] = -0.5 * np.sin(2 * np.pi * t)
    aa[:, JOINT_INDEX["left_shoulder"], 2] = -1.2  # arms down
    aa[:, JOINT_INDEX["right_shoulder"], 2] = 1.2
    trans = np.stack([np.zeros(frames), np.full(frames, pelvis_height()), 1.3 * t], axis=1)
    return Motion.from_axis_angle(aa, trans, 30.0, ["a person walks forward"])


def test_preview_decodes(tmp_path: Path) -> None:
    motion = _walk(20)
    path = write_preview(motion, tmp_path / "p.mp4", size=(320, 240))
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        frames = [f for f in container.decode(video=0)]
    assert len(frames) == 20
    assert (frames[0].width, frames[0].height) == (320, 240)
    assert frames[0].format.name == "yuv420p"
    assert abs(float(stream.average_rate) - 30.0) < 1e-3


def test_frames_show_figure_text_and_sides() -> None:
    motion = _walk(2)
    blank = next(render_frames(motion, text="", size=256))
    with_text = next(render_frames(motion, text="hello there", size=256))
    # The text band differs only where the text is.
    diff = np.abs(with_text.astype(int) - blank.astype(int)).sum(-1) > 30
    rows = np.nonzero(diff.any(axis=1))[0]
    assert rows.size and rows.max() < 256 * 0.2
    # Left side (blue) and right side (orange) of the body both appear.
    r, g, b = (blank[..., i].astype(int) for i in range(3))
    assert ((b > 200) & (r < 120)).sum() > 30
    assert ((r > 200) & (b < 100)).sum() > 30


def test_camera_follows_a_travelling_motion() -> None:
    motion = _walk(90)
    motion.trans[:, 2] = np.linspace(0, 8, 90)  # walks 8 m
    frames = list(render_frames(motion, text="", size=200))
    for frame in (frames[0], frames[-1]):
        r, b = frame[..., 0].astype(int), frame[..., 2].astype(int)
        figure = ((b > 200) & (r < 120)) | ((r > 200) & (b < 100))
        ys, xs = np.nonzero(figure)
        assert xs.size > 10
        assert 30 < xs.mean() < 170 and 20 < ys.mean() < 180  # still near the middle


def test_bad_output(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"\.mp4"):
        write_preview(_walk(2), tmp_path / "p.avi")
    with pytest.raises(InputError, match="does not exist"):
        write_preview(_walk(2), tmp_path / "nope" / "p.mp4")
    with pytest.raises(InputError, match="size"):
        write_preview(_walk(2), tmp_path / "p.mp4", size=10)
    assert list(tmp_path.iterdir()) == []
