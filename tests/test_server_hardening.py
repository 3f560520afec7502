"""One message must never take the backend down (issue 17), over real sockets against a real server.

The two crash inputs that were found (a lone UTF-16 surrogate in a string field, a header nested
~2,000 levels deep) and their variants get an error reply, after which the same server still runs
real text-to-motion jobs on both workers in normal time. Also: the worker pool is supervised, an
exception in the I/O thread costs one reply only, jobs of a client that went silent are cancelled,
and photos are decoded on the wire exactly as in the CLI.
"""

from __future__ import annotations

import io
import json
import threading
import time

import numpy as np
import pytest
import vmclip_protocol as vp
import zmq
from PIL import Image
from server_support import ReplayPipeline, png_bytes, start_server, write_test_motion
from vmclip.server import Pipeline

SURROGATE = "\\ud800"  # as it appears in the JSON text: legal JSON, not valid Unicode
TERMINAL = ("result", "error")
CRASH_DEPTH = 2000  # the reported crash: a ~4 KB header nested 2,000 levels deep


@pytest.fixture(scope="module")
def motion_file(tmp_path_factory):
    return write_test_motion(tmp_path_factory.mktemp("hardening") / "walk.npz")


def _raw(address: str, frames: list[bytes], timeout_s: float = 5.0) -> vp.Message:
    """Send one multipart message on a fresh DEALER socket; the first error/result reply."""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(address)
    try:
        sock.send_multipart(frames)
        end = time.monotonic() + timeout_s
        while True:
            assert sock.poll(max(1, int((end - time.monotonic()) * 1000))), f"no reply to {frames[0][:120]!r}"
            reply = vp.decode(sock.recv_multipart(), expect=vp.REPLY_TYPES)
            if reply.type in TERMINAL:
                return reply
    finally:
        sock.close()


def _template(msg_type: str) -> tuple[dict, list[bytes]]:
    """A valid request of each type, as a header dict (to corrupt) and its binary frames."""
    motion = vp.MotionPayload(np.zeros((4, 24, 3)), np.zeros((4, 3)), text="walk")
    mbody, mframes = motion.to_wire()
    image = ("image", png_bytes(64, 64), "image/png")
    body, frames = {
        "hello": ({"client": "me", "versions": [1]}, []),
        "status": ({"job_id": "x"}, []),
        "cancel": ({"job_id": "x"}, []),
        "generate_motion": ({"prompt": "a person walks", "seconds": 1.0, "seed": 1, "fps": 30.0}, []),
        "analyze": ({}, [image]),
        "render": ({"motion": mbody, "options": {"size": 64}}, [image, *mframes]),
    }[msg_type]
    encoded = vp.encode(msg_type, "req-1", body, frames, deadline_ms=5000, client="me")
    return json.loads(encoded[0]), encoded[1:]


PLACE = "@@PLACE@@"  # a string in the header that the test replaces with raw JSON text


def _surrogate_variants() -> list[tuple[str, str, str]]:
    """(request type, where, header JSON text) with a lone surrogate in one string field."""
    out = []
    for msg_type in vp.REQUEST_TYPES:
        header, _ = _template(msg_type)
        spots = {"id": ("id",), "client": ("client",), "type": ("type",), "extra": ("extra",)}
        spots.update({f"body.{k}": ("body", k) for k, v in header["body"].items() if isinstance(v, str)})
        if msg_type == "render":
            spots["body.motion.text"] = ("body", "motion", "text")
            spots["body.motion.joint_names[3]"] = ("body", "motion", "joint_names", 3)
        if header["frames"]:
            spots["frames[0].name"] = ("frames", 0, "name")
            spots["frames[0].media"] = ("frames", 0, "media")
            spots["frames[0].dtype"] = ("frames", 0, "dtype")
        for where, path in spots.items():
            h = json.loads(json.dumps(header))
            node = h
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = PLACE
            out.append((msg_type, where, json.dumps(h).replace(f'"{PLACE}"', f'"a{SURROGATE}b"')))
        h = json.loads(json.dumps(header))  # ... and as an object key
        h["body"][PLACE] = 1
        out.append((msg_type, "a body key", json.dumps(h).replace(f'"{PLACE}"', f'"{SURROGATE}"')))
    return out


def _nesting_variants(depth: int) -> list[tuple[str, str, str]]:
    """(request type, where, header JSON text) with `depth` levels of nesting in one place."""
    deep_list = "[" * depth + "]" * depth
    deep_dict = '{"a":' * depth + "1" + "}" * depth
    out = []
    for msg_type in ("hello", "generate_motion", "render"):
        header, _ = _template(msg_type)
        places = {
            "id": ("id",),
            "client": ("client",),
            "extra": ("extra",),
            "body.value": ("body", "prompt") if msg_type == "generate_motion" else ("body", "client"),
        }
        if msg_type == "render":
            places["body.motion.joint_names"] = ("body", "motion", "joint_names")
            places["frames[0].shape"] = ("frames", 0, "shape")
            places["frames[1]"] = ("frames", 1)
        for where, path in places.items():
            for kind, text in (("lists", deep_list), ("objects", deep_dict)):
                h = json.loads(json.dumps(header))
                node = h
                for key in path[:-1]:
                    node = node[key]
                node[path[-1]] = PLACE
                out.append((msg_type, f"{where} ({kind})", json.dumps(h).replace(f'"{PLACE}"', text)))
        h = json.loads(json.dumps(header))  # the whole body nested inside the list of frames
        h["frames"].append(PLACE)
        out.append((msg_type, "frames list", json.dumps(h).replace(f'"{PLACE}"', deep_list)))
    return out


@pytest.fixture(scope="module")
def real_server():
    """The real pipeline (text-to-motion model loaded once), two workers."""
    t2m = pytest.importorskip("vmclip.t2m")
    if not t2m.weights_path().is_file():
        pytest.skip("text-to-motion weights are not installed")
    pipeline = Pipeline(device="cpu")
    pipeline.preload()
    server = start_server(pipeline, workers=2)
    yield server
    server.stop()


def _timed_generate(address: str, seed: int, deadline_s: float) -> float:
    with vp.Client(address, timeout_s=30, retries=0) as client:
        t0 = time.monotonic()
        motion = client.generate_motion(
            "a person walks forward", seconds=2.0, seed=seed, deadline_s=deadline_s
        )
        assert motion.num_frames == 60  # the model makes 30 fps x seconds
        return time.monotonic() - t0


def _both_workers_run_real_jobs(server, normal_s: float) -> None:
    """Two real generate_motion jobs at once (one per worker), each within its normal time."""
    limit = 3 * normal_s + 5.0  # two at once on a shared CPU, plus slack; a dead pool waits for the deadline
    times: dict[int, float] = {}
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            times[i] = _timed_generate(server.address, i, deadline_s=limit)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(limit + 10)
    assert not errors, errors
    assert len(times) == 2 and max(times.values()) < limit, (times, normal_s)
    with vp.Client(server.address, timeout_s=5, retries=0) as client:
        status = client.status()
    assert status["workers_alive"] == 2 and status["workers_restarted"] == 0, status
    assert server.workers_alive() == 2


def test_crash_inputs_and_variants_get_errors_and_real_jobs_still_run(real_server) -> None:
    normal_s = _timed_generate(real_server.address, 0, deadline_s=120)
    variants = _surrogate_variants() + _nesting_variants(CRASH_DEPTH) + _nesting_variants(33)
    variants += [v for v in _nesting_variants(30_000)[:4] if "lists" in v[1]]  # near the 64 KiB limit
    assert len(variants) > 80
    for msg_type, where, header in variants:
        _, frames = _template(msg_type)
        reply = _raw(real_server.address, [header.encode(), *frames])
        assert reply.type == "error", (msg_type, where)
        assert reply.body["code"] == "bad_message", (msg_type, where, reply.body)
        if "surrogate" not in reply.body["message"]:
            assert "nested" in reply.body["message"], (msg_type, where, reply.body)
        elif where != "id":
            assert reply.id == "req-1", (msg_type, where)  # the error reaches the request it answers
    # the reported crash input itself: ~4 KB, 2,000 deep
    crash = '{"protocol":1,"type":"hello","id":"x","deadline_ms":100,"body":' + "[" * 2000 + "]" * 2000 + "}"
    assert 4000 < len(crash) < 4200
    assert _raw(real_server.address, [crash.encode()]).body["code"] == "bad_message"
    # depth within the limit is still fine
    ok = '{"protocol":1,"type":"hello","id":"x","deadline_ms":100,"body":{"a":' + "[" * 20 + "]" * 20 + "}}"
    assert _raw(real_server.address, [ok.encode()]).type == "result"
    _both_workers_run_real_jobs(real_server, normal_s)


class _DyingPipeline(ReplayPipeline):
    """A stage that ends its thread (a BaseException, which no job guard catches) on one prompt."""

    class Died(BaseException):
        pass

    def generate_motion(self, prompt, seconds, seed, fps, *, progress, cancel):
        if prompt == "die":
            raise self.Died()
        return super().generate_motion(prompt, seconds, seed, fps, progress=progress, cancel=cancel)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the deaths
def test_a_worker_that_dies_is_replaced_and_its_job_answered(motion_file) -> None:
    server = start_server(_DyingPipeline(motion_file), workers=2)
    try:
        with vp.Client(server.address, timeout_s=5, retries=0) as client:
            for _ in range(3):  # more deaths than workers: the pool is refilled each time
                with pytest.raises(vp.RemoteError) as info:
                    client.generate_motion("die", seconds=1.0)
                assert info.value.code == "internal" and "died" in info.value.message
            deadline = time.monotonic() + 2
            while client.status()["workers_alive"] < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            status = client.status()
            assert status["workers_alive"] == 2 and status["workers_restarted"] == 3
            motions = [client.generate_motion("walk", seconds=1.0, seed=s) for s in range(4)]
            assert all(m.num_frames == 31 for m in motions)
    finally:
        server.stop()


class _FlakyPipeline(ReplayPipeline):
    """`capabilities` (called by the I/O thread for every hello) raises once."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fail_next = False

    def capabilities(self):
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("a bug in the I/O thread's handling of one request")
        return super().capabilities()


def test_an_exception_in_the_io_thread_costs_one_reply_only(motion_file) -> None:
    pipeline = _FlakyPipeline(motion_file)
    server = start_server(pipeline)
    try:
        pipeline.fail_next = True
        reply = _raw(server.address, vp.encode("hello", "h1", {}, deadline_ms=1000))
        assert reply.type == "error" and reply.body["code"] == "internal" and reply.id == "h1"
        with vp.Client(server.address, timeout_s=5, retries=0) as client:
            assert client.hello()["protocol"] == 1
            assert client.generate_motion("walk", seconds=1.0).num_frames == 31
    finally:
        server.stop()


def test_jobs_of_a_client_that_went_silent_are_cancelled(motion_file) -> None:
    pipeline = ReplayPipeline(motion_file, work_s=20.0)
    server = start_server(pipeline)
    try:
        # a client that declared a 0.2 s heartbeat, then vanished (its socket closed, nothing more sent)
        sock = zmq.Context.instance().socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(server.address)
        sock.send_multipart(
            vp.encode(
                "generate_motion",
                "gone-1",
                {"prompt": "walk"},
                deadline_ms=60_000,
                client="gone",
                heartbeat_ms=200,
            )
        )
        assert sock.poll(5000) and vp.decode(sock.recv_multipart()).type == "accepted"
        sock.close()
        t0 = time.monotonic()
        with vp.Client(server.address, timeout_s=5, retries=0) as other:
            while other.status()["running"] and time.monotonic() - t0 < 5:
                time.sleep(0.05)
            assert other.status()["running"] == 0  # the worker is free again
        assert time.monotonic() - t0 < 3.0  # 3 missed heartbeats (0.6 s) plus the stage noticing
        # a client that keeps sending its heartbeats is never cancelled, however long the job
        pipeline.work_s = 1.5
        with vp.Client(server.address, timeout_s=5, retries=0, heartbeat_s=0.2) as alive:
            assert alive.generate_motion("walk", seconds=1.0).num_frames == 31
        # and one that declared no heartbeat keeps the old behaviour: its job runs to the end
        sock = zmq.Context.instance().socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(server.address)
        sock.send_multipart(vp.encode("generate_motion", "quiet-1", {"prompt": "walk"}, deadline_ms=60_000))
        end = time.monotonic() + 10
        kinds = []
        while time.monotonic() < end and (not kinds or kinds[-1] not in TERMINAL):
            assert sock.poll(5000)
            kinds.append(vp.decode(sock.recv_multipart()).type)
        sock.close()
        assert kinds[-1] == "result"
    finally:
        server.stop()


# --- photos: the wire decodes as the CLI does ---------------------------------------------------------


def _encoded(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def _photo_variants(rgb: np.ndarray) -> dict[str, bytes]:
    """The same picture as 16-bit greyscale, greyscale, palette (with a transparent colour), CMYK JPEG,
    1-bit, grey + alpha, and fully transparent RGBA."""
    grey = np.asarray(Image.fromarray(rgb).convert("L"))
    rgba = np.dstack([rgb, np.zeros(rgb.shape[:2], np.uint8)])
    palette = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    palette.info["transparency"] = 0
    return {
        "grey16.png": _encoded(Image.fromarray(grey.astype(np.uint16) * 257), "PNG"),
        "grey.png": _encoded(Image.fromarray(grey), "PNG"),
        "palette.png": _encoded(palette, "PNG"),
        "cmyk.jpg": _encoded(Image.fromarray(rgb).convert("CMYK"), "JPEG"),
        "bilevel.png": _encoded(Image.fromarray(grey).convert("1"), "PNG"),
        "grey_alpha.png": _encoded(Image.fromarray(np.dstack([grey, grey // 2 + 64])), "PNG"),
        "transparent.png": _encoded(Image.fromarray(rgba), "PNG"),
    }


def test_photo_variants_decode_alike_on_the_wire_and_in_the_cli(tmp_path, motion_file) -> None:
    from vmclip.person.images import load_image

    rgb = np.asarray(Image.open(io.BytesIO(png_bytes(96, 128, seed=5))))
    rgb = np.ascontiguousarray(
        np.clip(rgb.astype(int) // 2 + np.arange(96)[None, :, None], 0, 255).astype(np.uint8)
    )
    server = start_server(ReplayPipeline(motion_file))
    try:
        with vp.Client(server.address, timeout_s=5, retries=0) as client:
            for name, data in _photo_variants(rgb).items():
                path = tmp_path / name
                path.write_bytes(data)
                cli = load_image(path)  # what `vmclip analyze/animate` works on
                wire = load_image(data)  # what the real server's analyze works on (bytes off the wire)
                np.testing.assert_array_equal(wire, cli, err_msg=name)
                # the server's decoding, seen from a client
                view = client.analyze([data])["views"][0]
                assert view["image_size"] == [96, 128]
                np.testing.assert_allclose(
                    view["mean_rgb"], cli.reshape(-1, 3).mean(0), atol=1e-6, err_msg=name
                )
                if name == "grey16.png":  # not washed out to white: the picture's own grey levels
                    grey = np.asarray(Image.fromarray(rgb).convert("L"), float)
                    assert abs(cli[..., 0].mean() - grey.mean()) < 1.0
                if name == "transparent.png":  # fully transparent: nothing there
                    assert cli.max() == 0
    finally:
        server.stop()


@pytest.fixture(scope="module")
def example_photo():
    try:
        from vmclip.render.example import example_paths

        path = example_paths()["photo"]
    except ImportError as exc:
        pytest.skip(f"renderer not installed: {exc}")
    if not path.is_file():
        pytest.skip("the example person has not been rendered (setup.sh prepares it)")
    return np.asarray(Image.open(path).convert("RGB"))


def test_real_server_finds_the_person_in_a_16_bit_grey_photo_and_none_in_a_transparent_one(
    example_photo, tmp_path, capsys
) -> None:
    from vmclip.cli import main

    pipeline = Pipeline(device="cpu")
    if not pipeline.capabilities()["analyze"]["available"]:
        pytest.skip("person analysis unavailable")
    variants = _photo_variants(example_photo)
    server = start_server(pipeline)
    try:
        with vp.Client(server.address, timeout_s=60, retries=0) as client:
            # 16-bit grey first, then the transparent one: analyze looks for the person in every photo
            # before it fits anything, so the error names the first photo without one. It must be the
            # second (the same photo washed out to white had no person in it).
            with pytest.raises(vp.RemoteError) as both:
                client.analyze([variants["grey16.png"], variants["transparent.png"]], deadline_s=120)
            # fully transparent alone: no person, on the wire as in the CLI
            with pytest.raises(vp.RemoteError) as info:
                client.analyze([variants["transparent.png"]], deadline_s=120)
    finally:
        server.stop()
    assert both.value.code == "bad_input" and both.value.message.startswith("image 2: "), both.value
    assert info.value.code == "bad_input"
    photo = tmp_path / "transparent.png"
    photo.write_bytes(variants["transparent.png"])
    capsys.readouterr()
    assert main(["analyze", str(photo), "-o", str(tmp_path / "person.json")]) == 2
    cli_error = capsys.readouterr().err.strip()
    wire_reason = info.value.message.split(": ", 1)[1]
    assert cli_error.count("\n") == 0 and wire_reason in cli_error, (cli_error, info.value.message)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_photos_are_bad_input_on_the_wire(fmt, caplog) -> None:
    pipeline = Pipeline(device="cpu")
    caps = pipeline.capabilities()
    if not (caps["analyze"]["available"] and caps["render"]["available"]):
        pytest.skip("person analysis or renderer unavailable")
    rng = np.random.default_rng(3)
    data = _encoded(Image.fromarray((rng.random((160, 120, 3)) * 255).astype(np.uint8)), fmt)
    truncated = data[: len(data) // 2]
    server = start_server(pipeline)
    try:
        with vp.Client(server.address, timeout_s=60, retries=0) as client:
            motion = vp.MotionPayload(np.zeros((4, 24, 3)), np.zeros((4, 3)))
            for call in (
                lambda: client.analyze([truncated], deadline_s=60),
                lambda: client.render([truncated], motion, {"size": 64}, deadline_s=60),
            ):
                with pytest.raises(vp.RemoteError) as info:
                    call()
                assert info.value.code == "bad_input" and "image 1" in info.value.message, info.value
    finally:
        server.stop()
    assert not [r for r in caplog.records if r.levelname == "ERROR" or r.exc_info]  # no traceback logged


def test_generate_motion_frames_are_checked_by_name(motion_file) -> None:
    server = start_server(ReplayPipeline(motion_file))
    try:
        frames = vp.encode(
            "generate_motion",
            "g1",
            {"prompt": "walk"},
            [("poses", np.zeros((2, 24, 3), np.float32))],
            deadline_ms=2000,
        )
        reply = _raw(server.address, frames)
        assert reply.body["code"] == "bad_request" and "poses" in reply.body["message"]
    finally:
        server.stop()


def test_client_options_are_accepted_after_the_action(motion_file, capsys) -> None:
    from vmclip.cli import main

    server = start_server(ReplayPipeline(motion_file))
    try:
        assert main(["client", "ping", "--server", server.address, "--timeout", "5"]) == 0
        assert f"at {server.address}: protocol 1" in capsys.readouterr().out
        assert main(["client", "--timeout", "5", "status", "--server", server.address, "--retries", "0"]) == 0
        assert '"workers_alive": 2' in capsys.readouterr().out
    finally:
        server.stop()


# --- the wire's own checks (the client decodes replies with them too) -------------------------------


def test_header_limits_on_the_wire_module() -> None:
    from vmclip_protocol.wire import MAX_JSON_DEPTH, finite_number, json_depth, peek_id

    assert json_depth('{"a": "[[[{{{", "b": [[1], {"c": []}]}') == 4  # brackets inside strings do not count
    assert json_depth('["\\"[[[", [[]]]') == 3  # nor after an escaped quote
    deep = '{"protocol":1,"type":"hello","id":"d","deadline_ms":9,"body":{"x":' + "[" * 40 + "]" * 40 + "}}"
    with pytest.raises(vp.ProtocolError, match=f"nested 42 deep, limit {MAX_JSON_DEPTH}") as info:
        vp.decode([deep.encode()])
    assert info.value.code == "bad_message" and peek_id(deep.encode()) is None
    bad = '{"protocol":1,"type":"hello","id":"i1","deadline_ms":9,"body":{"k":"\\udc00"}}'
    with pytest.raises(vp.ProtocolError, match="lone surrogate") as info:
        vp.decode([bad.encode()])
    assert info.value.request_id == "i1" and peek_id(bad.encode()) == "i1"  # the error can be routed
    pair = '{"protocol":1,"type":"hello","id":"\\ud83d\\ude00","deadline_ms":9}'  # a valid pair is text
    assert vp.decode([pair.encode()]).id == "\U0001f600"
    for value, want in [
        (3, 3.0),
        (1e300, 1e300),
        (10**400, None),
        (float("nan"), None),
        (True, None),
        ("1", None),
    ]:
        assert finite_number(value) == want
    huge = '{"protocol":1,"type":"hello","id":"h","deadline_ms":1' + "0" * 400 + "}"
    with pytest.raises(vp.ProtocolError, match="deadline_ms"):
        vp.decode([huge.encode()])
