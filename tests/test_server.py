"""The ZeroMQ service over real sockets on 127.0.0.1 (free ports picked at run time).

The ML stages are replaced by `ReplayPipeline` (real, bounded work; see server_support.py) where a
test is about the protocol, concurrency or cancellation; the real `Pipeline` is tested for the
stages that exist (and must answer "unavailable" for those that do not).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import vmclip_protocol as vp
import zmq
from server_support import ReplayPipeline, free_port, png_bytes, start_server, write_test_motion
from vmclip.errors import InputError
from vmclip.server import Limits, Pipeline, Server, ServerConfig, is_local_address
from vmclip.video import read_frames

TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def motion_file(tmp_path_factory) -> Path:
    return write_test_motion(tmp_path_factory.mktemp("motion") / "walk.npz")


@pytest.fixture()
def replay(motion_file):
    pipeline = ReplayPipeline(motion_file)
    server = start_server(pipeline)
    yield server, pipeline
    server.stop()


def _client(server: Server, **kw) -> vp.Client:
    kw.setdefault("timeout_s", 5.0)
    kw.setdefault("retries", 1)
    return vp.Client(server.address, **kw)


def test_hello_status_and_motion_round_trip(replay) -> None:
    server, pipeline = replay
    with _client(server) as client:
        info = client.hello()
        assert info["protocol"] == vp.PROTOCOL_VERSION and info["versions"] == [1]
        assert info["device"] == "cpu" and info["joint_names"] == list(vp.JOINT_NAMES)
        assert info["capabilities"]["generate_motion"]["available"] is True
        assert info["limits"]["max_jobs_per_client"] == 4 and info["encrypted"] is False
        seen = []
        motion = client.generate_motion(
            "a person walks", seconds=2.0, seed=3, fps=24.0, on_progress=lambda f, m: seen.append((f, m))
        )
        expected = pipeline.expected_motion(2.0, 3, 24.0)
        assert motion.fps == 24.0 and motion.text == "a person walks"
        assert motion.poses.shape == (expected.num_frames, 24, 3) and motion.poses.dtype == np.float32
        np.testing.assert_allclose(motion.poses, expected.axis_angle(), atol=1e-6)
        np.testing.assert_array_equal(motion.trans, expected.trans)
        assert seen and all(0.0 <= f <= 1.0 for f, _ in seen)
        status = client.status()
        assert status["queued"] == 0 and status["running"] == 0 and status["workers"] == 2
        assert status["requests_served"] >= 2


def test_analyze_and_render_round_trip(replay, tmp_path) -> None:
    server, pipeline = replay
    with _client(server) as client:
        photos = [png_bytes(80, 120, seed=1), png_bytes(64, 64, seed=2)]
        analysis = client.analyze(photos)
        assert [v["image_size"] for v in analysis["views"]] == [[80, 120], [64, 64]]
        motion = client.generate_motion("walk", seconds=1.0, seed=0)
        fractions = []
        video = client.render(photos[:1], motion, {"size": 96}, lambda f, m: fractions.append(f))
    assert video[4:8] == b"ftyp"  # an MP4 file
    path = tmp_path / "out.mp4"
    path.write_bytes(video)
    frames = read_frames(path)
    assert len(frames) == motion.num_frames and frames[0].shape == (96, 96, 3)
    assert fractions[-1] == pytest.approx(1.0) and fractions == sorted(fractions)
    # the red joint markers drawn by the render are in the decoded video
    red = (frames[0][..., 0] > 180) & (frames[0][..., 1] < 90) & (frames[0][..., 2] < 90)
    assert red.sum() > 20


def test_cancel_and_unknown_job(replay, motion_file) -> None:
    server, _ = replay
    with _client(server) as client:
        with pytest.raises(vp.RemoteError) as info:
            client.cancel("no-such-job")
        assert info.value.code == "not_found"
        with pytest.raises(vp.RemoteError) as info:
            client.status(job_id="no-such-job")
        assert info.value.code == "not_found"


def test_cancel_mid_render_stops_within_a_second(motion_file) -> None:
    pipeline = ReplayPipeline(motion_file)
    server = start_server(pipeline)
    try:
        client = _client(server)
        long_motion = vp.MotionPayload(np.zeros((3000, 24, 3)), np.zeros((3000, 3)), 30.0)
        job_id = client.new_job_id()
        result: dict = {}
        started = threading.Event()

        def on_progress(fraction: float, message: str) -> None:
            if fraction > 0.005:
                started.set()

        def run() -> None:
            try:
                client.render([png_bytes()], long_motion, {"size": 128}, on_progress, job_id=job_id)
                result["outcome"] = "finished"
            except vp.RemoteError as exc:
                result["outcome"] = exc.code
            result["at"] = time.monotonic()

        thread = threading.Thread(target=run)
        thread.start()
        assert started.wait(20), "render never reported progress"
        t_cancel = time.monotonic()
        answer = client.cancel(job_id)  # from another thread, on its own socket
        thread.join(5)
        assert answer["state"] in ("cancelling", "cancelled")
        assert result["outcome"] == "cancelled"
        assert result["at"] - t_cancel < 1.0
        while pipeline.render_stopped_at is None and time.monotonic() - t_cancel < 1.0:
            time.sleep(0.01)  # the worker itself must stop within the second too, not only the reply
        assert pipeline.render_stopped_at is not None and pipeline.render_stopped_at - t_cancel < 1.0
        assert pipeline.render_frames_done < 3000
        time.sleep(0.2)
        assert client.status()["running"] == 0  # the worker is free again
        client.close()
    finally:
        server.stop()


def test_progress_callback_exception_cancels_the_job(motion_file) -> None:
    pipeline = ReplayPipeline(motion_file)
    server = start_server(pipeline)
    try:
        with _client(server) as client:
            long_motion = vp.MotionPayload(np.zeros((3000, 24, 3)), np.zeros((3000, 3)), 30.0)

            def stop(fraction: float, message: str) -> None:
                if fraction > 0.005:
                    raise KeyboardInterrupt

            with pytest.raises(KeyboardInterrupt):
                client.render([png_bytes()], long_motion, {"size": 64}, stop)
            deadline = time.monotonic() + 2
            while pipeline.render_stopped_at is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert pipeline.render_stopped_at is not None
            assert client.hello()["protocol"] == 1  # the same client keeps working
    finally:
        server.stop()


def test_deadline_is_enforced(motion_file) -> None:
    server = start_server(ReplayPipeline(motion_file, work_s=10.0))
    try:
        with _client(server) as client:
            t0 = time.monotonic()
            with pytest.raises(vp.RemoteError) as info:
                client.generate_motion("walk", deadline_s=0.5)
            assert info.value.code == "deadline_exceeded"
            assert time.monotonic() - t0 < 1.5
    finally:
        server.stop()


class _CrashingPipeline(ReplayPipeline):
    def generate_motion(self, prompt, seconds, seed, fps, *, progress, cancel):
        if prompt == "crash":
            return {}["a bug inside the stage"]
        return super().generate_motion(prompt, seconds, seed, fps, progress=progress, cancel=cancel)


def test_crash_inside_a_job_is_an_error_reply_and_the_server_goes_on(motion_file) -> None:
    server = start_server(_CrashingPipeline(motion_file))
    try:
        with _client(server) as client:
            with pytest.raises(vp.RemoteError) as info:
                client.generate_motion("crash")
            assert info.value.code == "internal" and "KeyError" in info.value.message
            assert client.generate_motion("walk", seconds=1.0).num_frames == 31
    finally:
        server.stop()


def _raw(server: Server, frames: list[bytes], timeout_s: float = 5.0) -> vp.Message:
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(server.address)
    try:
        sock.send_multipart(frames)
        assert sock.poll(int(timeout_s * 1000)), "no reply"
        return vp.decode(sock.recv_multipart())
    finally:
        sock.close()


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        ([b"not json"], "bad_message"),
        ([b'{"protocol": 7, "type": "hello", "id": "a", "deadline_ms": 100}'], "bad_version"),
        ([b'{"protocol": 1, "type": "teleport", "id": "a", "deadline_ms": 100}'], "unknown_type"),
        ([b'{"protocol": 1, "type": "hello", "id": "a"}'], "bad_request"),  # no deadline
        ([b'{"protocol": 1, "type": "hello", "deadline_ms": 100}'], "bad_request"),  # no id
        (
            [
                b'{"protocol": 1, "type": "render", "id": "a", "deadline_ms": 100, "frames": '
                b'[{"name": "poses", "dtype": "<f4", "shape": [2, 24, 3]}]}',
                b"\0" * 100,
            ],
            "bad_array",
        ),
        (
            [b'{"protocol": 1, "type": "generate_motion", "id": "a", "deadline_ms": 100, "body": {}}'],
            "bad_request",
        ),
        (
            [
                b'{"protocol": 1, "type": "generate_motion", "id": "a", "deadline_ms": 100, "body": '
                b'{"prompt": "x", "seconds": 1e9}}'
            ],
            "bad_request",
        ),
    ],
)
def test_malformed_requests_get_error_replies(replay, frames, code) -> None:
    server, _ = replay
    reply = _raw(server, frames)
    assert reply.type == "error" and reply.body["code"] == code and reply.body["message"]
    if code == "bad_version":
        assert reply.body["supported"] == [1]


def test_render_with_wrong_motion_arrays_is_rejected(replay) -> None:
    server, _ = replay
    body = {"motion": {"fps": 30.0}, "options": {}}
    frames = vp.encode(
        "render",
        "r1",
        body,
        [
            ("image", png_bytes()),
            ("poses", np.zeros((4, 23, 3), np.float32)),
            ("trans", np.zeros((4, 3), np.float32)),
        ],
        deadline_ms=1000,
    )
    reply = _raw(server, frames)
    assert reply.body["code"] == "bad_array" and "(T, 24, 3)" in reply.body["message"]
    frames = vp.encode(
        "render",
        "r2",
        body,
        [
            ("image", b"GIF89a not a png"),
            ("poses", np.zeros((4, 24, 3), np.float32)),
            ("trans", np.zeros((4, 3), np.float32)),
        ],
        deadline_ms=1000,
    )
    assert _raw(server, frames).body["code"] == "bad_request"


def test_render_camera_option_is_validated(replay) -> None:
    server, _ = replay
    arrays = [
        ("image", png_bytes()),
        ("poses", np.zeros((4, 24, 3), np.float32)),
        ("trans", np.zeros((4, 3), np.float32)),
    ]
    for camera in ("dolly", 3, None):
        body = {"motion": {"fps": 30.0}, "options": {"camera": camera}}
        reply = _raw(server, vp.encode("render", f"c{camera}", body, arrays, deadline_ms=1000))
        assert reply.body["code"] == "bad_request" and "options.camera" in reply.body["message"]


def test_limits(motion_file) -> None:
    limits = Limits(
        max_image_pixels=100 * 100,
        max_prompt_chars=50,
        max_images=2,
        max_jobs_per_client=1,
        max_message_bytes=256 * 1024,
    )
    server = start_server(ReplayPipeline(motion_file, work_s=3.0), limits=limits)
    try:
        with _client(server) as client:
            for call, code in [
                (lambda: client.generate_motion("x" * 51), "too_large"),
                (lambda: client.analyze([png_bytes(101, 100)]), "too_large"),
                (lambda: client.analyze([png_bytes(10, 10)] * 3), "too_large"),
            ]:
                with pytest.raises(vp.RemoteError) as info:
                    call()
                assert info.value.code == code
            # one open job per client: a second job from the same client is refused
            other = _client(server)
            job = threading.Thread(
                target=lambda: pytest.raises(vp.RemoteError, other.generate_motion, "walk")
            )
            job.start()
            time.sleep(0.3)
            second = vp.Client(server.address, timeout_s=2, retries=0)
            second.session = other.session  # same client identity (header.client), another socket
            with pytest.raises(vp.RemoteError) as info:
                second.generate_motion("walk")
            assert info.value.code == "too_many_jobs"
            other.cancel(other.current_job)
            job.join(5)
            second.close()
            other.close()
            # ZMQ_MAXMSGSIZE: an oversized message drops that connection without reaching the server...
            big = vp.Client(server.address, timeout_s=0.5, retries=0)
            with pytest.raises(vp.ServerUnavailable):
                big.analyze([png_bytes(10, 10) + b"\0" * (300 * 1024)])
            big.close()
            # ...and everyone else is still served
            assert client.hello()["limits"]["max_message_bytes"] == 256 * 1024
            # a client that said hello knows the limit and refuses before sending
            with pytest.raises(vp.RemoteError) as info:
                client.analyze([png_bytes(10, 10) + b"\0" * (300 * 1024)])
            assert info.value.code == "too_large"
    finally:
        server.stop()


def test_eight_concurrent_clients(motion_file) -> None:
    pipeline = ReplayPipeline(motion_file)
    server = start_server(pipeline, workers=2)
    errors: list[BaseException] = []
    results: dict[int, list] = {}

    def worker(i: int) -> None:
        try:
            with _client(server, timeout_s=10) as client:
                results[i] = [
                    client.generate_motion("walk", seconds=1.0 + 0.25 * (k % 3), seed=i * 10 + k)
                    for k in range(5)
                ]
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    try:
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors
        assert len(results) == 8 and pipeline.calls["generate_motion"] == 40
        for i, motions in results.items():
            for k, m in enumerate(motions):
                expected = pipeline.expected_motion(1.0 + 0.25 * (k % 3), i * 10 + k, 30.0)
                np.testing.assert_array_equal(m.trans, expected.trans)  # each client got its own answer
    finally:
        server.stop()


def test_lazy_pirate_reattaches_to_the_running_job(motion_file) -> None:
    # No heartbeats for 10 s: the client's 0.4 s silence timeout fires and it re-sends on a fresh socket;
    # the server recognises the id and answers there instead of running the job twice.
    pipeline = ReplayPipeline(motion_file, work_s=1.5)
    server = start_server(pipeline, heartbeat_s=10.0)
    try:
        with vp.Client(server.address, timeout_s=0.4, retries=10) as client:
            motion = client.generate_motion("walk", seconds=1.0)
        assert motion.num_frames == 31 and pipeline.calls["generate_motion"] == 1
    finally:
        server.stop()


def test_server_restart_while_a_client_waits(motion_file) -> None:
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}

    def launch() -> subprocess.Popen:
        proc = subprocess.Popen(
            [
                sys.executable,
                str(TESTS / "server_support.py"),
                "--bind",
                address,
                "--motion",
                str(motion_file),
                "--work-s",
                "1.0",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        line = proc.stdout.readline()
        assert line.startswith("ready"), line
        return proc

    first = launch()
    second = None
    try:
        client = vp.Client(address, timeout_s=1.0, retries=15)
        accepted = threading.Event()
        result: dict = {}

        def call() -> None:
            try:
                result["motion"] = client.generate_motion(
                    "walk", seconds=1.0, seed=5, on_progress=lambda f, m: accepted.set()
                )
            except BaseException as exc:  # noqa: BLE001
                result["error"] = exc

        thread = threading.Thread(target=call)
        thread.start()
        assert accepted.wait(10), "the first server never started the job"
        first.send_signal(signal.SIGKILL)  # dies mid-job; the client is left waiting
        first.wait(5)
        second = launch()
        thread.join(40)
        assert "error" not in result, result.get("error")
        expected = ReplayPipeline(motion_file).expected_motion(1.0, 5, 30.0)
        np.testing.assert_array_equal(result["motion"].trans, expected.trans)
        client.close()
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(5)


@pytest.mark.parametrize(
    ("address", "local"),
    [
        ("tcp://127.0.0.1:5555", True),
        ("tcp://127.0.0.2:1", True),
        ("tcp://localhost:5555", True),
        ("tcp://[::1]:5555", True),
        ("ipc:///tmp/vmclip.sock", True),
        ("inproc://x", True),
        ("tcp://0.0.0.0:5555", False),
        ("tcp://*:5555", False),
        ("tcp://192.168.1.5:5555", False),
        ("tcp://eth0:5555", False),
        ("tcp://[::]:5555", False),
    ],
)
def test_is_local_address(address: str, local: bool) -> None:
    assert is_local_address(address) is local


def test_public_bind_without_keys_is_refused() -> None:
    for bind in (f"tcp://0.0.0.0:{free_port()}", f"tcp://*:{free_port()}"):
        with pytest.raises(InputError, match="refusing to bind"):
            Server(ServerConfig(bind=bind), Pipeline(device="cpu"))
    # the CLI: one line, exit code 2, before loading any model
    out = subprocess.run(
        [sys.executable, "-m", "vmclip", "serve", "--bind", f"tcp://0.0.0.0:{free_port()}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "refusing to bind" in out.stderr


def test_curve_admits_only_allow_listed_keys(motion_file, tmp_path) -> None:
    from vmclip.cli import main

    allowed = tmp_path / "allowed"
    assert main(["keys", "--out", str(tmp_path), "--name", "server"]) == 0
    assert main(["keys", "--out", str(allowed), "--name", "artist"]) == 0
    assert main(["keys", "--out", str(tmp_path), "--name", "stranger"]) == 0
    assert main(["keys", "--out", str(tmp_path), "--name", "server"]) == 2  # no silent overwrite
    port = free_port()
    server = start_server(
        ReplayPipeline(motion_file),
        bind=f"tcp://0.0.0.0:{port}",
        server_key=tmp_path / "server.key_secret",
        authorized_keys=allowed,
    )
    address = f"tcp://127.0.0.1:{port}"
    try:
        with vp.Client(
            address,
            timeout_s=3,
            retries=0,
            server_key=tmp_path / "server.key",
            client_key=allowed / "artist.key_secret",
        ) as good:
            info = good.hello()
            assert info["encrypted"] is True
            assert good.generate_motion("walk", seconds=1.0).num_frames == 31
        for kwargs in [
            {"server_key": tmp_path / "server.key", "client_key": tmp_path / "stranger.key_secret"},
            {"server_key": tmp_path / "server.key"},  # a throw-away key pair
            # the wrong server key
            {"server_key": tmp_path / "stranger.key", "client_key": allowed / "artist.key_secret"},
            {},  # no encryption at all
        ]:
            with vp.Client(address, timeout_s=1.5, retries=0, **kwargs) as bad:
                with pytest.raises(vp.ServerUnavailable):
                    bad.hello()
        with vp.Client(
            address,
            timeout_s=3,
            retries=0,
            server_key=tmp_path / "server.key",
            client_key=tmp_path / "stranger.key_secret",
        ) as bad:
            with pytest.raises(vp.AuthenticationFailed):
                bad.hello()
    finally:
        server.stop()


def test_real_pipeline_answers_unavailable_for_missing_stages() -> None:
    # The real pipeline: stages that are not (yet) usable answer "unavailable", never a made-up result.
    pipeline = Pipeline(device="cpu")
    server = start_server(pipeline)
    try:
        with _client(server, timeout_s=60) as client:
            caps = client.hello()["capabilities"]
            assert set(caps) == {"generate_motion", "analyze", "render"}
            for stage, cap in caps.items():
                if cap["available"]:
                    continue
                assert cap["reason"]
                call = {
                    "generate_motion": lambda: client.generate_motion("a man waves", seconds=1.0),
                    "analyze": lambda: client.analyze([png_bytes()]),
                    "render": lambda: client.render(
                        [png_bytes()], vp.MotionPayload(np.zeros((2, 24, 3)), np.zeros((2, 3))), {"size": 64}
                    ),
                }[stage]
                with pytest.raises(vp.RemoteError) as info:
                    call()
                assert info.value.code == "unavailable", info.value
    finally:
        server.stop()


def test_cli_client_ping_motion_render(replay, tmp_path, capsys) -> None:
    from vmclip.cli import main
    from vmclip.motion import load_npz

    server, _ = replay
    base = ["client", "--server", server.address, "--timeout", "5"]
    assert main([*base, "ping"]) == 0
    assert "protocol 1, device cpu" in capsys.readouterr().out
    npz = tmp_path / "walk.npz"
    assert main([*base, "motion", "a person walks", "--seconds", "2", "--seed", "4", "-o", str(npz)]) == 0
    motion = load_npz(npz)
    assert motion.num_frames == 61 and motion.text == "a person walks"
    photo = tmp_path / "me.png"
    photo.write_bytes(png_bytes(100, 140))
    video = tmp_path / "me.mp4"
    assert main([*base, "render", str(photo), "--motion", str(npz), "--size", "64", "-o", str(video)]) == 0
    frames = read_frames(video)
    assert len(frames) == 61 and frames[0].shape == (64, 64, 3)
    capsys.readouterr()
    # one-line errors, exit 2: wrong suffix, missing photo, no server
    assert main([*base, "motion", "walk", "-o", str(tmp_path / "walk.txt")]) == 2
    assert main([*base, "render", str(tmp_path / "nope.png"), "--motion", str(npz), "-o", str(video)]) == 2
    dead = f"tcp://127.0.0.1:{free_port()}"
    assert main(["client", "--server", dead, "--timeout", "0.3", "--retries", "1", "ping"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("vmclip: error:") for line in err)
    assert "no answer" in err[-1]


def test_vmclip_serve_process_logs_one_line_per_request(tmp_path) -> None:
    address = f"tcp://127.0.0.1:{free_port()}"
    log = tmp_path / "serve.log"
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "vmclip", "serve", "--bind", address, "--no-preload"],
            stderr=err,
            stdout=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + 60
        while "serving on" not in log.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            time.sleep(0.1)
        with vp.Client(address, timeout_s=30, retries=1, name="blender") as client:
            assert client.hello()["device"] in ("cpu", "cuda")
            client.status()
            with pytest.raises(vp.RemoteError):
                client.cancel("nope")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        lines = [line for line in log.read_text().splitlines() if " client=blender-" in line]
        assert [line.split()[3] for line in lines] == ["hello", "status", "cancel"]
        assert lines[0].endswith(" ms ok") and lines[2].endswith("error not_found")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def test_full_queue_answers_busy(motion_file) -> None:
    server = start_server(
        ReplayPipeline(motion_file, work_s=1.0), workers=1, limits=Limits(max_queue=1, max_jobs_per_client=10)
    )
    try:
        clients = [_client(server, timeout_s=5) for _ in range(3)]
        codes: list[str] = []

        def run(c: vp.Client) -> None:
            try:
                c.generate_motion("walk", seconds=1.0)
                codes.append("ok")
            except vp.RemoteError as exc:
                codes.append(exc.code)

        threads = []
        for c in clients:  # one runs, one waits in the queue, the third finds it full
            threads.append(threading.Thread(target=run, args=(c,)))
            threads[-1].start()
            time.sleep(0.3)
        for t in threads:
            t.join(20)
        assert sorted(codes) == ["busy", "ok", "ok"]
        for c in clients:
            c.close()
    finally:
        server.stop()


def test_missing_model_weights_make_generate_motion_unavailable(tmp_path, monkeypatch) -> None:
    pytest.importorskip("vmclip.t2m")
    missing = tmp_path / "no-such-model.pt"
    monkeypatch.setenv("VMCLIP_T2M_CHECKPOINT", str(missing))
    server = start_server(Pipeline(device="cpu"))
    try:
        with _client(server, timeout_s=30) as client:
            cap = client.hello()["capabilities"]["generate_motion"]
            assert cap["available"] is False and "no-such-model.pt" in cap["reason"]
            for _ in range(2):  # the first call and later ones (stage module already imported)
                with pytest.raises(vp.RemoteError) as info:
                    client.generate_motion("a man waves", seconds=2.0)
                assert info.value.code == "unavailable" and "no-such-model.pt" in info.value.message
    finally:
        server.stop()
