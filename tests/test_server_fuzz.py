"""Fuzz the running server with >= 1,000 random and malformed multipart messages (Hypothesis).

Every message must get an answer (an error reply, or a result when the mutation happened to stay
valid) in good time, none may crash a job (`internal`) or leave it unrun (`deadline_exceeded`), and
afterwards every worker must still be alive and real jobs must complete in their normal time.

Besides type and framing mutations, the strategies put Unicode edge cases (lone surrogates, NUL,
right-to-left overrides, ...) into any string of the header (values and keys, in the body and in
the frame descriptors), nest JSON thousands of levels deep anywhere, and write huge numbers.
"""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
import vmclip_protocol as vp
import zmq
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from server_support import ReplayPipeline, png_bytes, start_server, write_test_motion
from vmclip_protocol.wire import peek_id

EXAMPLES = 1000
TEMPLATE_DEADLINE_MS = 5000
# A job here takes milliseconds; a mutated deadline below this may honestly expire before it runs.
ENOUGH_MS = 1000

# Flat JSON values (deep nesting only slows generation; the decoder's type checks are what is fuzzed)
scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=12)
json_values = (
    scalars | st.lists(scalars, max_size=3) | st.dictionaries(st.text(max_size=6), scalars, max_size=3)
)

HEADER_KEYS = ["protocol", "type", "id", "body", "frames", "deadline_ms", "client", "heartbeat_ms", "extra"]

# Strings that have broken, or could break, code that handles text: lone surrogates (legal JSON
# escapes, not encodable), NUL, bidi overrides, a BOM, newlines (log forging), non-BMP characters.
EDGE_TEXT = [
    "\ud800",
    "\udfff",
    "a\ud83d",
    "\ude00b",
    "\x00",
    "a\x00b",
    "\u202e",
    "\u202dabc\u202c",
    "\u200f",
    "\ufeff",
    "\n",
    "\r\nvmclip fake log line",
    "\U0001f600",
    "\uffff",
    "",
    "x" * 200,
]
SURROGATES = ["\ud800", "\udbff", "\udc00", "\udfff"]
edge_text = (
    st.sampled_from(SURROGATES)  # (weighted up: any one of them in the wrong field killed a worker)
    | st.builds(
        lambda a, b, c: a + b + c, st.text(max_size=3), st.sampled_from(SURROGATES), st.text(max_size=3)
    )
    | st.sampled_from(EDGE_TEXT)
    | st.text(st.characters(exclude_categories=()), max_size=8)  # any code point, surrogates included
    | st.builds(lambda a, b: a + b, st.text(max_size=4), st.sampled_from(EDGE_TEXT))
)
# Huge and extreme numbers as raw JSON text (json.dumps cannot write some of them): past int64, near
# and past Python's 4,300-digit int parsing limit, overflowing and underflowing floats.
HUGE_NUMBERS = [
    "9223372036854775808",
    "-9223372036854775809",
    "1" + "0" * 400,
    "1" + "0" * 4299,
    "1" + "0" * 4301,
    "1" + "0" * 20000,
    "1e309",
    "-1e999",
    "1e-999",
    "123456789012345678901234567890.5",
]
# Nesting depths around the limit and around Python's recursion limit, and far past both.
DEPTHS = st.sampled_from([31, 32, 33, 999, 1000, 1001, 2000, 5000, 20000]) | st.integers(1, 3000)


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
        vp.encode(t, f"t{i}", body, frames, deadline_ms=TEMPLATE_DEADLINE_MS, client="fuzz")
        for i, (t, body, frames) in enumerate(requests)
    ]


TEMPLATES = _templates()


def _places(node, path=()) -> list[tuple]:
    """Paths to every value in a header (dict keys and list indices), the root's children included."""
    out = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, value in items:
        out.append((*path, key))
        out.extend(_places(value, (*path, key)))
    return out


def _string_places(header) -> list[tuple]:
    return [p for p in _places(header) if isinstance(_get(header, p), str)]


def _get(node, path):
    for key in path:
        node = node[key]
    return node


def _raw(draw, raws: list[str], text: str) -> str:
    """A placeholder string that becomes `text`, raw, in the JSON (see _dump)."""
    raws.append(text)
    return f"@@RAW{len(raws) - 1}@@"


def _dump(header, raws: list[str]) -> bytes:
    out = json.dumps(header)
    for i, text in enumerate(raws):
        out = out.replace(json.dumps(f"@@RAW{i}@@"), text)
    return out.encode()


def _deep(draw) -> str:
    depth = draw(DEPTHS)
    if draw(st.booleans()):
        return "[" * depth + draw(st.sampled_from(["", "1", '"x"'])) + "]" * depth
    depth = min(depth, 10000)  # objects take 5 bytes a level; the header limit is 64 KiB
    return '{"a":' * depth + "1" + "}" * depth


def _unicode_edit(draw, header: dict) -> None:
    """An edge-case string as one string value, or one key, anywhere in the header."""
    text = draw(edge_text)
    places = _string_places(header)
    if places and draw(st.booleans()):
        path = draw(st.sampled_from(places))
        _get(header, path[:-1])[path[-1]] = text
        return
    dicts = [p for p in _places(header) if isinstance(_get(header, p), dict)]
    target = _get(header, draw(st.sampled_from(dicts))) if dicts and draw(st.booleans()) else header
    target[text] = draw(json_values)


def _place_anywhere(draw, header: dict, value) -> None:
    """Put `value` in place of any value of the header, or under a new top-level key."""
    places = _places(header)
    if places and draw(st.booleans()):
        path = draw(st.sampled_from(places))
        _get(header, path[:-1])[path[-1]] = value
    else:
        header[draw(st.sampled_from(HEADER_KEYS))] = value


@st.composite
def mutated(draw) -> list[bytes]:
    frames = list(draw(st.sampled_from(TEMPLATES)))
    header = json.loads(frames[0])
    raws: list[str] = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(
            st.sampled_from(
                ["set", "delete", "body", "desc", "drop", "add", "resize", "type", "version"]
                + ["unicode", "unicode", "deep", "huge"]
            )
        )
        if kind == "unicode":
            _unicode_edit(draw, header)
        elif kind == "deep":
            _place_anywhere(draw, header, _raw(draw, raws, _deep(draw)))
        elif kind == "huge":
            _place_anywhere(draw, header, _raw(draw, raws, draw(st.sampled_from(HUGE_NUMBERS))))
        elif kind == "type":
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
    frames[0] = _dump(header, raws)
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


@st.composite
def unicode_fields(draw) -> list[bytes]:
    """A valid request with one string of its header (a value or a key; the header's own fields
    `id`, `client`, `type` as often as all the others) replaced by an edge-case string."""
    frames = list(draw(st.sampled_from(TEMPLATES)))
    header = json.loads(frames[0])
    text = draw(edge_text)
    if draw(st.booleans()):
        header[draw(st.sampled_from(["id", "client", "type"]))] = text
    else:
        _unicode_edit(draw, header)
    return [json.dumps(header).encode(), *frames[1:]]


@st.composite
def deep_fields(draw) -> list[bytes]:
    """A valid request with JSON nested deeply in place of one value (in the body, the frame
    descriptors or the header itself)."""
    frames = list(draw(st.sampled_from(TEMPLATES)))
    header = json.loads(frames[0])
    raws: list[str] = []
    _place_anywhere(draw, header, _raw(draw, raws, _deep(draw)))
    return [_dump(header, raws), *frames[1:]]


messages = st.one_of(  # mutations of valid requests weigh most: they get past the first checks
    st.lists(st.binary(max_size=200), min_size=1, max_size=5),  # pure noise
    random_json_header,
    mutated(),
    mutated(),
    mutated(),
    mutated(),
    unicode_fields(),
    unicode_fields(),
    deep_fields(),
    corrupted(),
)


WORKERS = 2


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    pipeline = ReplayPipeline(write_test_motion(tmp_path_factory.mktemp("fuzz") / "walk.npz"))
    srv = start_server(pipeline, workers=WORKERS)
    yield srv
    srv.stop()


def _job_seconds(address: str, seed: int) -> float:
    with vp.Client(address, timeout_s=5, retries=0) as client:
        t0 = time.monotonic()
        assert client.generate_motion("walk", seconds=1.0, seed=seed, deadline_s=10).num_frames == 31
        return time.monotonic() - t0


def _check_pool(server, normal_s: float) -> None:
    """Every worker alive and never replaced, and one job per worker, at once, each in normal time."""
    assert server.workers_alive() == WORKERS and server.workers_restarted == 0
    with vp.Client(server.address, timeout_s=5, retries=0) as client:
        status = client.status()
    assert status["workers_alive"] == WORKERS and status["workers_restarted"] == 0, status
    times: list[float] = []
    threads = [
        threading.Thread(target=lambda s=s: times.append(_job_seconds(server.address, s)))
        for s in range(WORKERS)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    assert len(times) == WORKERS and max(times) < 10 * normal_s + 1.0, (times, normal_s)


def _deadline_ms(header: bytes) -> float:
    """The deadline a fuzzed header asked for (the template's when the header is not readable)."""
    try:
        value = json.loads(header).get("deadline_ms", TEMPLATE_DEADLINE_MS)
    except (ValueError, AttributeError):
        return TEMPLATE_DEADLINE_MS
    return (
        float(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool)
        else TEMPLATE_DEADLINE_MS
    )


def test_fuzzed_messages_get_answers_and_the_server_survives(server) -> None:
    normal_s = _job_seconds(server.address, 0)
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(server.address)
    stats = {"sent": 0, "error": 0, "result": 0}
    codes: dict[str, int] = {}
    reached = {"surrogate": 0, "nested": 0}  # the two classes of input that once crashed the server

    def answer_for(frames: list[bytes]) -> vp.Message:
        want = peek_id(frames[0])
        end = time.monotonic() + 4.0  # a job takes milliseconds here; its deadline is 5 s
        while True:
            assert sock.poll(max(1, int((end - time.monotonic()) * 1000))), (
                f"no answer to {frames[0][:200]!r}"
            )
            reply = vp.decode(sock.recv_multipart(), expect=vp.REPLY_TYPES)
            if reply.type in ("error", "result") and reply.id == want:
                return reply

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: after a crash every later call fails too
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(messages)
    def send_one(frames: list[bytes]) -> None:
        sock.send_multipart(frames)
        stats["sent"] += 1
        reply = answer_for(frames)
        stats[reply.type] += 1
        if reply.type == "error":
            code = reply.body["code"]
            assert code in vp.ERROR_CODES and reply.body["message"]
            # a crashed job is a server bug, whatever the input; so is one left unrun in the time
            # it was given, unless the mutation cut that time below what a job needs
            assert code != "internal", (frames[0][:300], reply.body)
            if code == "deadline_exceeded":
                assert _deadline_ms(frames[0]) < ENOUGH_MS, (frames[0][:300], reply.body)
            codes[code] = codes.get(code, 0) + 1
            for kind in ("surrogate", "nested"):
                reached[kind] += kind in reply.body["message"]

    try:
        send_one()
    finally:
        sock.close()
    assert stats["sent"] >= EXAMPLES
    assert stats["error"] > stats["sent"] // 2  # most of them are broken, and said so
    # the mutations reach every layer: framing, version, type, fields, arrays
    assert {"bad_message", "bad_version", "unknown_type", "bad_request", "bad_array"} <= set(codes)
    assert reached["surrogate"] >= 10 and reached["nested"] >= 10, reached
    # still serving, on a fresh connection, with the whole pool: not merely answering hello
    with vp.Client(server.address, timeout_s=5, retries=0) as client:
        assert client.hello()["protocol"] == vp.PROTOCOL_VERSION
    _check_pool(server, normal_s)
