"""The service with the real text-to-motion model: 8 concurrent clients, answers identical to calling
the generator in-process. Skips where the model's weights are not installed."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import vmclip_protocol as vp
from server_support import free_port, start_server
from vmclip.server import Pipeline

PROMPTS = [
    "a person walks forward",
    "a man waves with his right hand",
    "someone jumps up and down",
    "a woman sits down",
    "a person turns around",
    "a man kicks with his left leg",
    "someone raises both arms",
    "a person runs in a circle",
]


@pytest.fixture(scope="module")
def generator():
    t2m = pytest.importorskip("vmclip.t2m")
    if not t2m.weights_path().is_file():
        pytest.skip("text-to-motion weights are not installed")
    return t2m.load_generator(device="cpu")


def test_eight_concurrent_clients_with_the_real_generator(generator) -> None:
    server = start_server(Pipeline(device="cpu"), workers=2)
    results: dict[int, vp.MotionPayload] = {}
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            with vp.Client(server.address, timeout_s=60, retries=1) as client:
                results[i] = client.generate_motion(PROMPTS[i], seconds=2.0, seed=i)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    try:
        threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        assert not errors, errors
        assert len(results) == 8
        for i, got in results.items():
            want = generator.generate(PROMPTS[i], seconds=2.0, seed=i)
            assert got.fps == want.fps and got.num_frames == want.num_frames and got.text == PROMPTS[i]
            np.testing.assert_allclose(got.trans, want.trans, atol=1e-4)
            # compare rotations as matrices (axis-angle is ambiguous near pi)
            from vmclip.motion import Motion

            back = Motion.from_axis_angle(got.poses, got.trans, got.fps).matrices()
            np.testing.assert_allclose(back, want.matrices(), atol=1e-4)
    finally:
        server.stop()


def test_vmclip_serve_process_with_the_model(generator, tmp_path) -> None:
    # The real command: loads the model at start, answers, logs one line per request, stops on SIGTERM.
    address = f"tcp://127.0.0.1:{free_port()}"
    log = tmp_path / "serve.log"
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "vmclip", "serve", "--bind", address, "--device", "cpu"],
            stderr=err,
            stdout=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + 120
        while "serving on" not in log.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            time.sleep(0.2)
        with vp.Client(address, timeout_s=60, retries=1) as client:
            assert client.hello()["capabilities"]["generate_motion"]["available"] is True
            motion = client.generate_motion("a person walks forward", seconds=2.0, seed=1, fps=24.0)
            assert motion.fps == 24.0 and motion.num_frames >= 47
            with pytest.raises(vp.RemoteError) as info:
                client.generate_motion("x" * 600)
            assert info.value.code == "too_large"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        text = log.read_text()
        assert "models loaded in" in text
        lines = [line for line in text.splitlines() if "generate_motion client=" in line]
        assert len(lines) == 2 and lines[0].endswith(" ok") and lines[1].endswith("error too_large")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
