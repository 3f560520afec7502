"""The one composition (`vmclip.pipeline`): the same motion as the stages gave before it existed (golden
file recorded from the hand-composed CLI path), the same frames as the stages give by hand, one
progress bar, cancel, bad input."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from vmclip.errors import InputError
from vmclip.pipeline import Cancelled, Pipeline

GOLDEN = Path(__file__).parent / "golden" / "pipeline_example.npz"
PROMPT, SECONDS, SEED, SIZE = "a person waves with the right hand", 1.0, 7, 128


@pytest.fixture(scope="module")
def example_photo() -> Path:
    from vmclip.render.example import example_paths

    photo = example_paths()["photo"]
    if not photo.is_file():
        pytest.skip("the example person has not been rendered (setup.sh prepares it)")
    return photo


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    return Pipeline("cpu")


@pytest.fixture(scope="module")
def run(pipeline, example_photo, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    reports: list[tuple[float, str]] = []
    result = pipeline.run(
        prompt=PROMPT,
        images=[example_photo],
        out=out / "wave.mp4",
        seconds=SECONDS,
        seed=SEED,
        size=SIZE,
        frames_dir=out / "frames",
        progress=lambda f, m="": reports.append((f, m)),
    )
    return result, out, reports


def test_same_motion_and_frames_as_the_stages_give(run, example_photo) -> None:
    """The composition adds nothing of its own: the motion is the one recorded from the hand-composed
    path before the pipeline existed (torch on the CPU is deterministic to float rounding), and the
    frames are those the stages give when called by hand here (the photo's analysis goes through
    MediaPipe and llvmpipe, whose last bits differ between CPUs, so frames are not stored)."""
    from vmclip.person.analysis import analyze
    from vmclip.render.pipeline import render_frames

    result, out, _ = run
    golden = np.load(GOLDEN)
    np.testing.assert_allclose(result.motion.axis_angle(), golden["poses"], atol=1e-5)
    np.testing.assert_allclose(result.motion.trans, golden["trans"], atol=1e-5)
    pngs = sorted((out / "frames").glob("frame_*.png"))
    assert len(pngs) == result.motion.num_frames == 30
    by_hand = list(render_frames(analyze([example_photo], device="cpu"), result.motion, size=SIZE))
    assert len(by_hand) == len(pngs)
    for i in (0, len(pngs) // 2, len(pngs) - 1):
        got = np.asarray(Image.open(pngs[i]).convert("RGB")).astype(int)
        diff = np.abs(got - by_hand[i].astype(int))
        assert diff.mean() < 0.05 and diff.max() <= 8, (pngs[i].name, diff.mean(), diff.max())
    assert result.video == out / "wave.mp4" and result.video.stat().st_size > 1000


def test_one_progress_bar_across_the_stages(run) -> None:
    _, _, reports = run
    fractions = [f for f, _ in reports]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    messages = " ".join(m for _, m in reports)
    assert "finding the person" in messages and "frame 30/30" in messages


def test_cancel_stops_the_render_and_leaves_no_file(pipeline, example_photo, run, tmp_path) -> None:
    result = run[0]
    cancel = threading.Event()

    def progress(fraction: float, message: str = "") -> None:
        if fraction > 0.5:
            cancel.set()

    out = tmp_path / "cancelled.mp4"
    with pytest.raises(Cancelled):
        pipeline.run(
            motion=result.motion,
            images=[example_photo],  # analysis kept from the first run: the frames are what is cancelled
            out=out,
            size=SIZE,
            progress=progress,
            cancel=cancel,
        )
    assert not out.exists() and not list(tmp_path.iterdir())


def test_nothing_to_do_or_no_person_is_bad_input(pipeline, tmp_path) -> None:
    with pytest.raises(InputError, match="nothing to do"):
        pipeline.run()
    with pytest.raises(InputError, match="photos of the person"):
        pipeline.run(prompt="a person walks", out=tmp_path / "x.mp4")
    with pytest.raises(InputError, match="no such image"):
        pipeline.analyze([tmp_path / "missing.png"])


def test_a_model_that_fails_stops_the_analysis_and_a_bad_photo_is_reported_first(example_photo, tmp_path):
    """The motion is made on a second thread while the photos are analysed: a broken model stops the
    run long before the analysis ends, and a photo that cannot be used is reported as such."""
    broken = tmp_path / "model.pt"
    broken.write_bytes(b"not a checkpoint")
    reports: list[str] = []
    with pytest.raises(InputError, match="not a readable PyTorch checkpoint"):
        Pipeline("cpu", checkpoint=broken).run(
            prompt=PROMPT, images=[example_photo], seconds=SECONDS, progress=lambda f, m="": reports.append(m)
        )
    # (the model may fail before the analysis reports anything at all)
    assert not any("texture" in m or "analysis ready" in m for m in reports)
    blank = tmp_path / "blank.png"
    Image.new("RGB", (256, 256), "white").save(blank)
    with pytest.raises(InputError, match="blank.png"):
        Pipeline("cpu").run(prompt=PROMPT, images=[blank], seconds=SECONDS)


def test_warm_up_loads_the_photo_stages(pipeline) -> None:
    """`vmclip serve` warms these up at start, so its first photo does not pay for them."""
    from vmclip.render import raster

    pipeline.warm_up()
    assert raster._INSTANCE is not None
    assert "anny.models.phenotype" in sys.modules  # the body's shape code (the fit's first call)
