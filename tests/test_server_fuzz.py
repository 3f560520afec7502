"""Fuzz the running server with >= 1,000 random and malformed multipart messages (Hypothesis).

Every message must get an answer (an error reply, or a result when the mutation happened to stay
valid) and the server must still answer valid requests afterwards.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import vmclip_protocol as vp
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server_support import ReplayPipeline, png_bytes, start_server, write_test_motion
from vmclip_protocol.wire import peek_id

EXAMPLES = 1000

# Flat JSON values (deep nesting only slows generation; the decoder's type checks are what is fuzzed)
scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=12)
json_values = (
    scalars | st.lists(scalars, max_size=3) | st.dictionaries(st.text(max_size=6), scalars, max_size=3)
)

HEADER_KEYS = ["protocol", "type", "id", "body", "frames", "deadline_ms", "client", "extra"]


def _templates() -> list[list[bytes]]:
    motion = vp.MotionPayload(np.zeros((3, 24, 3)), np.zeros((3, 3)))
    mbody, mframes = motion.to_wire()
    image = ("image", png_bytes(16, 16), "image/png")
    requests = [
        ("hello", {"client": "fuzz", "versions": [1]}, []),
        ("status", {}, []),
        ("cancel", {"job_id": "nope"}, []),
        ("generate_motion", {"prompt": "walk", "seconds": 1.0, "seed": 1, "fps": 30.0}, []),
        ("analyze", {}, [image]),
        ("render", {"motion": mbody, "options": {"size": 64}}, [image, *mframes]),
    ]
    return [
        vp.encode(t, f"t{i}", body, frames, deadline_ms=5000) for i, (t, body, frames) in enumerate(requests)
    ]


TEMPLATES = _templates()


@st.composite
def mutated(draw) -> list[bytes]:
    frames = list(draw(st.sampled_from(TEMPLATES)))
    header = json.loads(frames[0])
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(
            st.sampled_from(["set", "delete", "body", "desc", "drop", "add", "resize", "type", "version"])
        )
        if kind == "type":
            header["type"] = draw(st.text(max_size=12) | st.sampled_from(vp.REQUEST_TYPES + vp.REPLY_TYPES))
        elif kind == "version":
            header["protocol"] = draw(st.integers(-3, 4))
        elif kind == "set":
            header[draw(st.sampled_from(HEADER_KEYS))] = draw(json_values)
        elif kind == "delete" and header:
            header.pop(draw(st.sampled_from(sorted(header))), None)
        elif kind == "body" and isinstance(header.get("body"), dict):
            header["body"][
                draw(
                    st.sampled_from(
                        ["prompt", "seconds", "seed", "fps", "job_id", "motion", "options", "versions"]
                    )
                )
            ] = draw(json_values)
        elif kind == "desc" and isinstance(header.get("frames"), list) and header["frames"]:
            i = draw(st.integers(0, len(header["frames"]) - 1))
            if isinstance(header["frames"][i], dict):
                header["frames"][i][draw(st.sampled_from(["name", "dtype", "shape", "media"]))] = draw(
                    json_values
                    | st.sampled_from(["<f4", "<f8", "bytes", "|u1", ">f4", "image"])
                    | st.lists(st.integers(-3, 100), max_size=4)
                )
        elif kind == "drop" and len(frames) > 1:
            frames.pop(draw(st.integers(1, len(frames) - 1)))
        elif kind == "add":
            frames.append(draw(st.binary(max_size=64)))
        elif kind == "resize" and len(frames) > 1:
            i = draw(st.integers(1, len(frames) - 1))
            cut = draw(st.integers(0, len(frames[i]) + 8))
            frames[i] = frames[i][:cut] + b"\x00" * max(0, cut - len(frames[i]))
    frames[0] = json.dumps(header).encode()
    return frames


@st.composite
def corrupted(draw) -> list[bytes]:
    frames = list(draw(st.sampled_from(TEMPLATES)))
    head = bytearray(frames[0])
    for _ in range(draw(st.integers(1, 4))):
        head[draw(st.integers(0, len(head) - 1))] = draw(st.integers(0, 255))
    frames[0] = bytes(head)
    return frames


random_json_header = st.builds(
    lambda header, extra: [json.dumps(header).encode(), *extra],
    st.dictionaries(st.sampled_from(HEADER_KEYS), json_values, max_size=6)
    | json_values.map(lambda v: {"protocol": 1, "type": "hello", "id": "j", "deadline_ms": 100, "body": v}),
    st.lists(st.binary(max_size=32), max_size=3),
)

messages = st.one_of(  # mutations of valid requests weigh most: they get past the first checks
    st.lists(st.binary(max_size=200), min_size=1, max_size=5),  # pure noise
    random_json_header,
    mutated(),
    mutated(),
    mutated(),
    mutated(),
    corrupted(),
)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    pipeline = ReplayPipeline(write_test_motion(tmp_path_factory.mktemp("fuzz") / "walk.npz"))
    srv = start_server(pipeline)
    yield srv
    srv.stop()


def test_fuzzed_messages_get_answers_and_the_server_survives(server) -> None:
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(server.address)
    stats = {"sent": 0, "error": 0, "result": 0}
    codes: dict[str, int] = {}

    def answer_for(frames: list[bytes]) -> vp.Message:
        want = peek_id(frames[0])
        while True:
            assert sock.poll(5000), f"no answer to {frames[0][:200]!r}"
            reply = vp.decode(sock.recv_multipart(), expect=vp.REPLY_TYPES)
            if reply.type in ("error", "result") and reply.id == want:
                return reply

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(messages)
    def send_one(frames: list[bytes]) -> None:
        sock.send_multipart(frames)
        stats["sent"] += 1
        reply = answer_for(frames)
        stats[reply.type] += 1
        if reply.type == "error":
            assert reply.body["code"] in vp.ERROR_CODES and reply.body["message"]
            codes[reply.body["code"]] = codes.get(reply.body["code"], 0) + 1

    try:
        send_one()
    finally:
        sock.close()
    assert stats["sent"] >= EXAMPLES
    assert stats["error"] > stats["sent"] // 2  # most of them are broken, and said so
    # the mutations reach every layer: framing, version, type, fields, arrays
    assert {"bad_message", "bad_version", "unknown_type", "bad_request", "bad_array"} <= set(codes)
    # still serving, on a fresh connection
    with vp.Client(server.address, timeout_s=5, retries=0) as client:
        assert client.hello()["protocol"] == vp.PROTOCOL_VERSION
        assert client.generate_motion("walk", seconds=1.0).num_frames == 31
