"""The wire format itself (no server): encoding, decoding, validation, the motion payload, keys."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import vmclip_protocol as vp
from vmclip_protocol.wire import REQUEST_TYPES


def test_joint_names_match_the_motion_format() -> None:
    from vmclip.motion import JOINT_NAMES

    assert vp.JOINT_NAMES == tuple(JOINT_NAMES)


def test_protocol_package_needs_no_torch_or_vmclip() -> None:
    # It is vendored into Blender's Python: importing it must not pull torch or the backend.
    code = (
        "import sys, vmclip_protocol; bad = [m for m in ('torch', 'vmclip') if m in sys.modules]; "
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_round_trip_arrays_and_bytes() -> None:
    rng = np.random.default_rng(1)
    poses = rng.normal(size=(7, 24, 3)).astype(np.float32)
    ids = np.arange(5, dtype=np.int64)
    big_endian = np.arange(6, dtype=">f8").reshape(2, 3)
    frames = vp.encode(
        "render",
        "abc",
        {"x": [1, 2]},
        [
            ("poses", poses),
            ("ids", ids),
            ("be", big_endian),
            ("image", b"\x89PNG\r\n\x1a\nrest", "image/png"),
        ],
        deadline_ms=1500,
        client="me",
    )
    header = json.loads(frames[0])
    assert header["protocol"] == vp.PROTOCOL_VERSION and header["deadline_ms"] == 1500
    assert [f["dtype"] for f in header["frames"]] == ["<f4", "<i8", "<f8", "bytes"]
    assert header["frames"][3]["media"] == "image/png"
    msg = vp.decode(frames)
    assert (msg.type, msg.id, msg.body) == ("render", "abc", {"x": [1, 2]})
    assert (msg.deadline_ms, msg.client) == (1500, "me")
    np.testing.assert_array_equal(msg.frame("poses"), poses)
    np.testing.assert_array_equal(msg.frame("ids"), ids)
    np.testing.assert_array_equal(msg.frame("be"), big_endian)  # converted to little-endian, same values
    assert msg.frame("image") == b"\x89PNG\r\n\x1a\nrest"
    # Arrays on the wire are little-endian float32: check the raw bytes, not only the round trip.
    assert frames[1] == poses.astype("<f4").tobytes()


@pytest.mark.parametrize("msg_type", REQUEST_TYPES + vp.REPLY_TYPES)
def test_every_message_type_round_trips(msg_type: str) -> None:
    msg = vp.decode(vp.encode(msg_type, vp.new_id(), {"k": "v"}))
    assert msg.type == msg_type and msg.body == {"k": "v"}


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        ([], "bad_message"),
        ([b"\xff\xfe"], "bad_message"),
        ([b"[1, 2]"], "bad_message"),
        ([b'{"type": "hello"}'], "bad_message"),
        ([b'{"protocol": 2, "type": "hello"}'], "bad_version"),
        ([b'{"protocol": true, "type": "hello"}'], "bad_message"),
        ([b'{"protocol": 1, "type": "dance"}'], "unknown_type"),
        ([b'{"protocol": 1, "type": "hello", "body": 3}'], "bad_message"),
        ([b'{"protocol": 1, "type": "hello", "deadline_ms": -1}'], "bad_message"),
        ([b'{"protocol": 1, "type": "hello", "frames": []}', b"extra"], "bad_message"),
        (
            [
                b'{"protocol": 1, "type": "hello", "frames": [{"name": "a", "dtype": "<f4", "shape": [3]}]}',
                b"x" * 11,
            ],
            "bad_array",
        ),
        (
            [
                b'{"protocol": 1, "type": "hello", "frames": [{"name": "a", "dtype": "O", "shape": [1]}]}',
                b"x",
            ],
            "bad_array",
        ),
        (
            [
                b'{"protocol": 1, "type": "hello", "frames": [{"name": "a", "dtype": "<f4", "shape": [-1]}]}',
                b"",
            ],
            "bad_array",
        ),
        (
            [
                b'{"protocol": 1, "type": "hello", '
                b'"frames": [{"name": "a", "dtype": "bytes", "shape": [4]}]}',
                b"abc",
            ],
            "bad_array",
        ),
        (
            [
                b'{"protocol": 1, "type": "hello", '
                b'"frames": [{"name": "a", "dtype": "<f4", "shape": [65536, 65536]}]}',
                b"",
            ],
            "too_large",
        ),
    ],
)
def test_malformed_messages_name_their_problem(frames: list[bytes], code: str) -> None:
    with pytest.raises(vp.ProtocolError) as info:
        vp.decode(frames, expect=REQUEST_TYPES)
    assert info.value.code == code
    assert code in vp.ERROR_CODES


def test_bad_version_error_names_supported_versions() -> None:
    with pytest.raises(vp.ProtocolError) as info:
        vp.decode([b'{"protocol": 9, "type": "hello", "id": "r1"}'])
    assert info.value.details["supported"] == list(vp.SUPPORTED_VERSIONS)
    assert info.value.request_id == "r1"


def test_motion_payload_validates_and_round_trips() -> None:
    rng = np.random.default_rng(0)
    motion = vp.MotionPayload(rng.normal(size=(4, 72)), rng.normal(size=(4, 3)), fps=24, text="wave")
    assert motion.poses.shape == (4, 24, 3) and motion.poses.dtype == np.float32
    body, frames = motion.to_wire()
    back = vp.MotionPayload.from_message(vp.decode(vp.encode("result", "r", body, frames)))
    np.testing.assert_array_equal(back.poses, motion.poses)
    np.testing.assert_array_equal(back.trans, motion.trans)
    assert (back.fps, back.text, back.num_frames) == (24.0, "wave", 4)
    for poses, trans, fps in [
        (np.zeros((3, 23, 3)), np.zeros((3, 3)), 30),
        (np.zeros((3, 24, 3)), np.zeros((2, 3)), 30),
        (np.zeros((0, 24, 3)), np.zeros((0, 3)), 30),
        (np.full((1, 24, 3), np.nan), np.zeros((1, 3)), 30),
        (np.zeros((1, 24, 3)), np.zeros((1, 3)), 0),
    ]:
        with pytest.raises(ValueError):
            vp.MotionPayload(poses, trans, fps)
    # float64 arrays on the wire are rejected for motions (the contract is float32)
    bad = vp.encode(
        "result", "r", {}, [("poses", np.zeros((2, 24, 3))), ("trans", np.zeros((2, 3), np.float32))]
    )
    with pytest.raises(vp.ProtocolError) as info:
        vp.MotionPayload.from_message(vp.decode(bad))
    assert info.value.code == "bad_array"


def test_key_files(tmp_path) -> None:
    public_path, secret_path = vp.write_key_pair(tmp_path, "artist")
    public, secret = vp.load_key_pair(secret_path)
    assert len(public) == 40 and len(secret) == 40
    assert vp.load_public_key(public_path) == public
    assert vp.load_public_key(public.decode()) == public
    with pytest.raises(ValueError, match="no secret key"):
        vp.load_key_pair(public_path)
    assert oct(secret_path.stat().st_mode & 0o777) == "0o600"
