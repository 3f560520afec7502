"""The service with the real person-analysis and render stages on a real photo: analyze, render an
MP4, and cancel a real render mid-way (the worker is free again within a second)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import vmclip_protocol as vp
from server_support import start_server, write_test_motion
from vmclip.motion import load_npz
from vmclip.server import Pipeline
from vmclip.video import read_frames

PHOTO = "iper_p009_set_a_apose.jpg"


@pytest.fixture(scope="module")
def served(photos_dir, tmp_path_factory):
    pipeline = Pipeline(device="cpu")
    caps = pipeline.capabilities()
    if not (caps["analyze"]["available"] and caps["render"]["available"]):
        pytest.skip(f"person/render stages unavailable: {caps}")
    photo = photos_dir / PHOTO
    if not photo.is_file():
        pytest.skip(f"{PHOTO} is absent")
    server = start_server(pipeline)
    m = load_npz(write_test_motion(tmp_path_factory.mktemp("m") / "walk.npz", frames=300))
    in_place = np.repeat(m.trans[:1], m.num_frames, axis=0)  # walking on the spot stays in the picture
    motion = vp.MotionPayload(m.axis_angle().astype(np.float32), in_place, m.fps)
    yield server, photo.read_bytes(), motion
    server.stop()


@pytest.mark.shared_data
def test_real_analyze_then_render(served, tmp_path) -> None:
    server, photo, motion = served
    with vp.Client(server.address, timeout_s=60, retries=0) as client:
        analysis = client.analyze([photo], deadline_s=600)
        assert analysis["body_kind"] in ("anny", "smpl", "smplx") and len(analysis["views"]) == 1
        view = analysis["views"][0]
        assert len(view["joints2d"]) == 24 and np.asarray(view["camera"]["K"]).shape == (3, 3)
        short = vp.MotionPayload(motion.poses[:20], motion.trans[:20], motion.fps)
        t0 = time.monotonic()
        video = client.render([photo], short, {"size": 128}, deadline_s=600)
        assert time.monotonic() - t0 < 60  # the analysis of this photo is cached, not redone
    path = tmp_path / "out.mp4"
    path.write_bytes(video)
    frames = read_frames(path)
    assert len(frames) == 20 and frames[0].shape == (128, 128, 3)
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean() > 1.0  # the person moved


@pytest.mark.shared_data
def test_cancel_a_real_render(served) -> None:
    server, photo, motion = served
    client = vp.Client(server.address, timeout_s=60, retries=0)
    job_id = client.new_job_id()
    going = threading.Event()
    outcome: dict = {}

    def run() -> None:
        try:
            client.render(
                [photo],
                motion,
                {"size": 128},
                lambda f, m: going.set() if f > 0.3 else None,
                job_id=job_id,
                deadline_s=600,
            )
            outcome["code"] = "finished"
        except vp.RemoteError as exc:
            outcome["code"] = exc.code
            outcome["message"] = exc.message
            outcome["at"] = time.monotonic()

    thread = threading.Thread(target=run)
    thread.start()
    while thread.is_alive() and not going.wait(0.5):
        pass
    assert going.is_set(), f"the render never got going: {outcome}"
    t_cancel = time.monotonic()
    client.cancel(job_id)
    thread.join(10)
    assert outcome["code"] == "cancelled" and outcome["at"] - t_cancel < 1.0, outcome
    with vp.Client(server.address, timeout_s=10, retries=0) as other:
        while other.status()["running"] and time.monotonic() - t_cancel < 1.0:
            time.sleep(0.02)
        assert other.status()["running"] == 0, "the renderer did not stop within a second"
    client.close()
