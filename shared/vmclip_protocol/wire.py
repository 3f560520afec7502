"""Message framing for the VideoMotionCLIP wire protocol (version 1).

A message is one ZeroMQ multipart message: frame 0 is a UTF-8 JSON header, frames 1..n are binary
payloads described, in order, by the header's ``frames`` list (name, dtype, shape). Arrays travel as
raw little-endian bytes, images and videos as their encoded file bytes. Nothing is ever pickled, so a
client in any language can speak it; see ``shared/README.md`` for the one-page specification.

Pure Python + numpy: this module also runs inside Blender's bundled Python.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .skeleton import JOINT_NAMES

PROTOCOL_VERSION = 1
SUPPORTED_VERSIONS: tuple[int, ...] = (1,)
DEFAULT_ADDRESS = "tcp://127.0.0.1:5555"

REQUEST_TYPES: tuple[str, ...] = ("hello", "status", "generate_motion", "analyze", "render", "cancel")
# Requests that become queued jobs: answered by "accepted", then "progress"..., then "result" or "error".
JOB_TYPES: tuple[str, ...] = ("generate_motion", "analyze", "render")
REPLY_TYPES: tuple[str, ...] = ("accepted", "progress", "result", "error")
TERMINAL_TYPES: tuple[str, ...] = ("result", "error")

# Element types a binary frame may carry. "bytes" = opaque encoded data (PNG/JPEG/MP4), shape [length].
DTYPES: dict[str, np.dtype | None] = {
    "<f4": np.dtype("<f4"),
    "<f8": np.dtype("<f8"),
    "<i4": np.dtype("<i4"),
    "<i8": np.dtype("<i8"),
    "|u1": np.dtype("|u1"),
    "bytes": None,
}

# The SMPL-24 joint order of every motion on the wire: `skeleton.JOINT_NAMES` (re-exported here).

# Error codes a server sends in an "error" reply (body: code, message).
ERROR_CODES: dict[str, str] = {
    "bad_message": "not a protocol message (header is not a JSON object, frames do not match)",
    "bad_version": "protocol version not supported (body.supported lists the versions)",
    "unknown_type": "unknown request type",
    "bad_request": "a field is missing, of the wrong type or out of range",
    "bad_array": "a binary frame's size does not match its declared dtype and shape",
    "too_large": "a limit was exceeded (image pixels, prompt length, frame count, message size)",
    "too_many_jobs": "this client already has the maximum number of open jobs",
    "busy": "the job queue is full; retry later",
    "unavailable": "the pipeline stage needed for this request is not installed or failed to load",
    "bad_input": "the stage rejected the input (e.g. no person found in the photo)",
    "cancelled": "the job was cancelled",
    "deadline_exceeded": "the request's deadline passed before it finished",
    "not_found": "no such job",
    "internal": "the job crashed inside the server; other jobs are unaffected",
}

MAX_HEADER_BYTES = 64 * 1024  # requests: the server reads no more
MAX_REPLY_HEADER_BYTES = 64 * 1024 * 1024  # replies (an analysis summary can be large JSON)
MAX_ID_LENGTH = 128
MAX_FRAMES = 64
MAX_ELEMENTS = 1 << 31
# Deepest JSON nesting a header may have. The protocol's deepest (an analyze reply's camera matrix) is
# 6; Python's JSON decoder recurses once per level and fails near 1,000, so the cap sits far below that.
MAX_JSON_DEPTH = 32
# heartbeat_ms a request may declare: often enough to notice a departed client, rarely enough to be cheap.
MIN_HEARTBEAT_MS = 100
MAX_HEARTBEAT_MS = 600_000


class ProtocolError(Exception):
    """A message that breaks the protocol. `code` is one of ERROR_CODES."""

    def __init__(self, code: str, message: str, request_id: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id
        self.details = details


class RemoteError(Exception):
    """The server answered a request with an error reply."""

    def __init__(self, code: str, message: str, details: dict | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details = dict(details or {})


class ServerUnavailable(Exception):
    """No answer from the server within the client's timeout and retries (or its deadline)."""


class AuthenticationFailed(ServerUnavailable):
    """The CURVE handshake failed: wrong server key, or our public key is not on the server's allow-list."""


def new_id() -> str:
    """A fresh, unguessable request/job id (32 hex digits)."""
    return uuid.uuid4().hex


@dataclass
class Message:
    """A decoded message: header fields plus binary frames by name (arrays or bytes)."""

    type: str
    id: str | None
    body: dict[str, Any] = field(default_factory=dict)
    frames: list[tuple[str, np.ndarray | bytes]] = field(default_factory=list)
    deadline_ms: float | None = None
    version: int = PROTOCOL_VERSION
    client: str | None = None
    heartbeat_ms: float | None = None  # the client sends something about this job at least this often

    def frames_named(self, name: str) -> list[np.ndarray | bytes]:
        return [data for n, data in self.frames if n == name]

    def frame(self, name: str) -> np.ndarray | bytes:
        found = self.frames_named(name)
        if len(found) != 1:
            raise ProtocolError(
                "bad_request", f"expected exactly one frame named {name!r}, got {len(found)}", self.id
            )
        return found[0]


def encode(
    msg_type: str,
    request_id: str | None,
    body: dict[str, Any] | None = None,
    frames: list[tuple] | None = None,
    *,
    deadline_ms: float | None = None,
    media: dict[str, str] | None = None,
    client: str | None = None,
    version: int = PROTOCOL_VERSION,
    heartbeat_ms: float | None = None,
) -> list[bytes]:
    """Build the multipart frames of one message.

    `frames` is an ordered list of (name, payload) or (name, payload, mime): numpy arrays are sent as
    little-endian raw bytes with their dtype and shape; `bytes` are sent as-is (dtype "bytes"). The
    MIME type ("image/png"), from the tuple or from `media` by name, is a hint for receivers.
    """
    descs: list[dict[str, Any]] = []
    payloads: list[bytes] = []
    for name, data, *mime in frames or []:
        if isinstance(data, bytes | bytearray | memoryview):
            raw = bytes(data)
            desc: dict[str, Any] = {"name": name, "dtype": "bytes", "shape": [len(raw)]}
        else:
            arr = np.asarray(data)
            dt = arr.dtype.newbyteorder("<") if arr.dtype.byteorder not in ("|",) else arr.dtype
            key = dt.str
            if key not in DTYPES:
                raise ValueError(
                    f"frame {name!r}: dtype {arr.dtype} cannot be sent (allowed: {sorted(DTYPES)})"
                )
            raw = np.ascontiguousarray(arr, dtype=dt).tobytes()
            desc = {"name": name, "dtype": key, "shape": [int(s) for s in arr.shape]}
        if mime or (media and name in media):
            desc["media"] = mime[0] if mime else media[name]
        descs.append(desc)
        payloads.append(raw)
    header: dict[str, Any] = {
        "protocol": version,
        "type": msg_type,
        "id": request_id,
        "body": body or {},
        "frames": descs,
    }
    if deadline_ms is not None:
        header["deadline_ms"] = int(max(0, deadline_ms))
    if client is not None:
        header["client"] = client
    if heartbeat_ms is not None:
        header["heartbeat_ms"] = int(heartbeat_ms)
    head = json.dumps(header, separators=(",", ":"), allow_nan=False).encode("utf-8")
    return [head, *payloads]


def _as_bytes(frame: Any) -> bytes | memoryview:
    if isinstance(frame, bytes | bytearray | memoryview):
        return frame
    buf = getattr(frame, "buffer", None)  # zmq.Frame received with copy=False
    if buf is not None:
        return buf
    raise ProtocolError("bad_message", f"frame of type {type(frame).__name__} is not bytes")


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def finite_number(value: Any) -> float | None:
    """`value` as a finite float, or None for anything else: booleans, text, NaN, infinities, and
    integers too large for a float (JSON allows 4,300 digits; float() would raise OverflowError)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKET = re.compile(r"[\[\]{}]")
# A JSON escape of a UTF-16 surrogate: legal JSON, but a lone one is not text (it cannot be UTF-8 encoded).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def json_depth(text: str) -> int:
    """The deepest nesting of arrays/objects in JSON text, counted without parsing (no recursion)."""
    depth = deepest = 0
    for m in _BRACKET.finditer(_STRING.sub('""', text)):
        if m.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _bad_text(value: Any) -> str | None:
    """The first string (key or value) in a parsed header that is not valid Unicode, else None.
    (Recursive, but only over headers that json_depth has already bounded.)"""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value
    elif isinstance(value, dict):
        for k, v in value.items():
            bad = _bad_text(k) or _bad_text(v)
            if bad is not None:
                return bad
    elif isinstance(value, list):
        for v in value:
            bad = _bad_text(v)
            if bad is not None:
                return bad
    return None


def parse_header(head: bytes | memoryview) -> Any:
    """Frame 0 as JSON: UTF-8, at most MAX_JSON_DEPTH levels deep, every string valid Unicode.

    Raises ProtocolError("bad_message"). Nesting is bounded *before* the decoder runs (it would hit
    Python's recursion limit), and lone surrogates (a legal JSON escape such as \\ud800) are refused
    here so that no later use of a string (encoding an id, logging a name) can fail."""
    try:
        text = bytes(head).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError("bad_message", f"header frame is not UTF-8 ({exc})") from None
    if (depth := json_depth(text)) > MAX_JSON_DEPTH:
        raise ProtocolError("bad_message", f"header JSON is nested {depth} deep, limit {MAX_JSON_DEPTH}")
    try:
        header = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError("bad_message", f"header frame is not JSON ({str(exc)[:200]})") from None
    if _SURROGATE_ESCAPE.search(text) and (bad := _bad_text(header)) is not None:
        rid = header.get("id") if isinstance(header, dict) else None
        readable = isinstance(rid, str) and 0 < len(rid) <= MAX_ID_LENGTH and _bad_text(rid) is None
        raise ProtocolError(
            "bad_message",
            f"header holds a string that is not valid Unicode (lone surrogate): {ascii(bad)[:60]}",
            rid if readable else None,  # so that the error reaches the request it answers
        )
    return header


def peek_id(header_frame: Any) -> str | None:
    """Best-effort request id of a message that failed to decode, so the error can name it."""
    try:
        header = parse_header(_as_bytes(header_frame)[:MAX_HEADER_BYTES])
        rid = header.get("id") if isinstance(header, dict) else None
        return rid if isinstance(rid, str) and 0 < len(rid) <= MAX_ID_LENGTH else None
    except ProtocolError as exc:  # e.g. bad text elsewhere in a header whose id is fine
        return exc.request_id
    except Exception:  # noqa: BLE001 - only a hint for an error reply: never let it raise
        return None


def decode(
    frames: list[Any], *, expect: tuple[str, ...] | None = None, max_header: int = MAX_HEADER_BYTES
) -> Message:
    """Parse and validate one multipart message; raises ProtocolError with an error code."""
    if not frames:
        raise ProtocolError("bad_message", "empty message")
    head = _as_bytes(frames[0])
    if len(head) > max_header:
        raise ProtocolError("too_large", f"header is {len(head)} bytes, limit {max_header}")
    header = parse_header(head)
    if not isinstance(header, dict):
        raise ProtocolError("bad_message", f"header is a JSON {type(header).__name__}, expected an object")
    rid = header.get("id")
    if rid is not None and not (isinstance(rid, str) and 0 < len(rid) <= MAX_ID_LENGTH):
        raise ProtocolError("bad_message", f"id must be a string of 1..{MAX_ID_LENGTH} characters")
    version = header.get("protocol")
    if not _int(version):
        raise ProtocolError(
            "bad_message",
            "header.protocol (the protocol version, an integer) is missing",
            rid,
            supported=list(SUPPORTED_VERSIONS),
        )
    if version not in SUPPORTED_VERSIONS:
        raise ProtocolError(
            "bad_version",
            f"protocol version {version} is not supported",
            rid,
            supported=list(SUPPORTED_VERSIONS),
        )
    msg_type = header.get("type")
    if not isinstance(msg_type, str):
        raise ProtocolError("bad_message", "header.type must be a string", rid)
    if expect is not None and msg_type not in expect:
        raise ProtocolError(
            "unknown_type", f"unknown message type {msg_type[:40]!r} (known: {', '.join(expect)})", rid
        )
    body = header.get("body", {})
    if not isinstance(body, dict):
        raise ProtocolError("bad_message", "header.body must be a JSON object", rid)
    deadline = header.get("deadline_ms")
    deadline_f = finite_number(deadline)
    if deadline is not None and not (deadline_f is not None and deadline_f >= 0):
        raise ProtocolError("bad_message", "header.deadline_ms must be a non-negative number", rid)
    client = header.get("client")
    if client is not None and not (isinstance(client, str) and len(client) <= MAX_ID_LENGTH):
        raise ProtocolError(
            "bad_message", f"header.client must be a string of at most {MAX_ID_LENGTH} characters", rid
        )
    heartbeat = header.get("heartbeat_ms")
    heartbeat_f = finite_number(heartbeat)
    if heartbeat is not None and not (
        heartbeat_f is not None and MIN_HEARTBEAT_MS <= heartbeat_f <= MAX_HEARTBEAT_MS
    ):
        raise ProtocolError(
            "bad_message",
            f"header.heartbeat_ms must be a number in {MIN_HEARTBEAT_MS}..{MAX_HEARTBEAT_MS}",
            rid,
        )
    descs = header.get("frames", [])
    if not isinstance(descs, list):
        raise ProtocolError("bad_message", "header.frames must be a list", rid)
    if len(descs) != len(frames) - 1:
        raise ProtocolError(
            "bad_message", f"header describes {len(descs)} binary frames, message has {len(frames) - 1}", rid
        )
    if len(descs) > MAX_FRAMES:
        raise ProtocolError("too_large", f"{len(descs)} binary frames, limit {MAX_FRAMES}", rid)
    out: list[tuple[str, np.ndarray | bytes]] = []
    for i, (desc, frame) in enumerate(zip(descs, frames[1:], strict=True)):
        out.append(_decode_frame(i, desc, _as_bytes(frame), rid))
    return Message(msg_type, rid, body, out, deadline_f, version, client, heartbeat_f)


def _decode_frame(
    i: int, desc: Any, raw: bytes | memoryview, rid: str | None
) -> tuple[str, np.ndarray | bytes]:
    if not isinstance(desc, dict):
        raise ProtocolError("bad_message", f"frames[{i}] must be an object with name, dtype, shape", rid)
    name, dtype, shape = desc.get("name"), desc.get("dtype"), desc.get("shape")
    if not isinstance(name, str) or not name or len(name) > 64:
        raise ProtocolError("bad_message", f"frames[{i}].name must be a non-empty string", rid)
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise ProtocolError(
            "bad_array", f"frames[{i}] ({name}): dtype {str(dtype)[:20]!r} not one of {sorted(DTYPES)}", rid
        )
    if not (isinstance(shape, list) and len(shape) <= 8 and all(_int(s) and s >= 0 for s in shape)):
        raise ProtocolError(
            "bad_array", f"frames[{i}] ({name}): shape must be a list of non-negative integers", rid
        )
    count = math.prod(shape)
    if count > MAX_ELEMENTS:
        raise ProtocolError("too_large", f"frames[{i}] ({name}): {count} elements", rid)
    np_dtype = DTYPES[dtype]
    if np_dtype is None:
        if len(shape) != 1 or shape[0] != len(raw):
            raise ProtocolError(
                "bad_array", f"frames[{i}] ({name}): declared {shape} bytes, got {len(raw)}", rid
            )
        return name, bytes(raw)
    expected = count * np_dtype.itemsize
    if expected != len(raw):
        raise ProtocolError(
            "bad_array", f"frames[{i}] ({name}): {dtype} {shape} needs {expected} bytes, got {len(raw)}", rid
        )
    arr = np.frombuffer(raw, dtype=np_dtype).reshape(shape)
    return name, arr


def error_frames(code: str, message: str, request_id: str | None, **details: Any) -> list[bytes]:
    """An "error" reply."""
    return encode("error", request_id, {"code": code, "message": message, **details})


@dataclass
class MotionPayload:
    """A motion as it travels on the wire: SMPL-24 local axis-angle rotations and the pelvis path.

    poses: (T, 24, 3) float32, axis-angle in radians, local to each joint's parent (root: global);
    trans: (T, 3) float32 metres, Y up, the body faces +Z; fps: frames per second.
    """

    poses: np.ndarray
    trans: np.ndarray
    fps: float = 30.0
    joint_names: tuple[str, ...] = JOINT_NAMES
    text: str = ""

    def __post_init__(self) -> None:
        self.poses = np.ascontiguousarray(self.poses, dtype=np.float32)
        self.trans = np.ascontiguousarray(self.trans, dtype=np.float32)
        self.joint_names = tuple(self.joint_names)
        if self.poses.ndim == 2 and self.poses.shape[1] == 3 * len(JOINT_NAMES):
            self.poses = self.poses.reshape(len(self.poses), len(JOINT_NAMES), 3)
        if self.poses.ndim != 3 or self.poses.shape[1:] != (len(JOINT_NAMES), 3):
            raise ValueError(f"poses has shape {self.poses.shape}, expected (T, 24, 3)")
        if self.trans.shape != (self.poses.shape[0], 3):
            raise ValueError(f"trans has shape {self.trans.shape}, expected ({self.poses.shape[0]}, 3)")
        if self.poses.shape[0] == 0:
            raise ValueError("motion has no frames")
        if self.joint_names != JOINT_NAMES:
            raise ValueError("joint_names must be the SMPL-24 order of vmclip_protocol.JOINT_NAMES")
        if not (np.isfinite(self.poses).all() and np.isfinite(self.trans).all()):
            raise ValueError("motion contains NaN or infinite values")
        fps = self.fps
        if isinstance(fps, np.generic | np.ndarray) and np.size(fps) == 1:  # numpy scalars
            fps = np.asarray(fps).item()
        fps = finite_number(fps)
        if fps is None or not 1 <= fps <= 1000:
            raise ValueError(f"fps {self.fps!r} is not a number in 1..1000")
        self.fps = fps

    @property
    def num_frames(self) -> int:
        return int(self.poses.shape[0])

    @property
    def seconds(self) -> float:
        return self.num_frames / self.fps

    def to_wire(self) -> tuple[dict[str, Any], list[tuple[str, np.ndarray | bytes]]]:
        """Body fields and binary frames ("poses", "trans") for a message carrying this motion."""
        body = {
            "fps": self.fps,
            "joint_names": list(self.joint_names),
            "text": self.text,
            "num_frames": self.num_frames,
        }
        return body, [("poses", self.poses), ("trans", self.trans)]

    @classmethod
    def from_message(cls, msg: Message, body: dict[str, Any] | None = None) -> MotionPayload:
        """Read the motion from a message; `body` is the dict holding fps/joint_names (default msg.body)."""
        body = msg.body if body is None else body
        poses, trans = msg.frame("poses"), msg.frame("trans")
        if not isinstance(poses, np.ndarray) or not isinstance(trans, np.ndarray):
            raise ProtocolError("bad_array", "poses and trans must be float32 arrays", msg.id)
        if poses.dtype != np.dtype("<f4") or trans.dtype != np.dtype("<f4"):
            raise ProtocolError(
                "bad_array", f"poses/trans must be <f4, got {poses.dtype.str}/{trans.dtype.str}", msg.id
            )
        fps = body.get("fps", 30.0)
        names = body.get("joint_names", list(JOINT_NAMES))
        text = body.get("text", "")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ProtocolError("bad_request", "joint_names must be a list of strings", msg.id)
        if not isinstance(text, str):
            raise ProtocolError("bad_request", "text must be a string", msg.id)
        try:
            return cls(poses.copy(), trans.copy(), fps, tuple(names), text)
        except (ValueError, TypeError) as exc:
            raise ProtocolError("bad_array", f"motion: {exc}", msg.id) from None


# Binary frames of an analyze result that carry the fitted body (see shared/README.md).
BODY_FRAMES: tuple[str, ...] = ("body_vertices", "body_faces", "body_joints", "skin_joints", "skin_weights")


@dataclass
class BodyMesh:
    """The fitted body of an analyze result, ready to skin onto an SMPL-24 armature.

    vertices (V, 3) float32: rest T-pose of the person's shape (clothing included), motion frame
    (Y up, metres, facing +Z), pelvis at the origin; faces (F, 3) int32; joints (24, 3) float32: the
    rest joints of that shape (same frame); skin_joints (V, 4) uint8 joint indices and skin_weights
    (V, 4) float32 (rows sum to 1); per photo, in request order: uv (V, 2) float32 texture coordinates
    in that photo (0..1, v up, as Blender and OpenGL expect), visible (V,) bool (the photo sees the
    vertex) and facing (V,) float32 in 0..1 (how squarely it sees it: the cosine between the vertex
    normal and the direction to the camera, 0 where unseen; 1/255 steps on the wire). trans_scale:
    the person's leg length over the motion skeleton's; floor_offset: pelvis height above the soles
    in the rest pose (metres). The avatar (when the server's body has a UV layout): texture (bytes)
    the atlas as a PNG file, corner_uv (F, 3, 2) float32 each triangle corner's coordinates in it
    (0..1, v up; corners, not vertices: a UV seam gives one vertex two coordinates). skirt_vertices:
    how many of the last vertices are a skirt's shell around the hips and legs (0: none), skinned to
    the pelvis and the thighs; the atlas then holds its texture below the body's.
    """

    vertices: np.ndarray
    faces: np.ndarray
    joints: np.ndarray
    skin_joints: np.ndarray
    skin_weights: np.ndarray
    uv: list[np.ndarray] = field(default_factory=list)
    visible: list[np.ndarray] = field(default_factory=list)
    facing: list[np.ndarray] | None = None
    trans_scale: float = 1.0
    floor_offset: float = 0.0
    texture: bytes | None = None
    corner_uv: np.ndarray | None = None
    skirt_vertices: int = 0

    def __post_init__(self) -> None:
        self.vertices = np.ascontiguousarray(self.vertices, dtype=np.float32)
        self.faces = np.ascontiguousarray(self.faces, dtype=np.int32)
        self.joints = np.ascontiguousarray(self.joints, dtype=np.float32)
        self.skin_joints = np.ascontiguousarray(self.skin_joints, dtype=np.uint8)
        self.skin_weights = np.ascontiguousarray(self.skin_weights, dtype=np.float32)
        self.uv = [np.ascontiguousarray(u, dtype=np.float32) for u in self.uv]
        self.visible = [np.ascontiguousarray(v).astype(bool) for v in self.visible]
        if self.facing is None:  # (a server that sends no facing: every seen vertex counts as square-on)
            self.facing = [v.astype(np.float32) for v in self.visible]
        self.facing = [np.clip(np.ascontiguousarray(f, dtype=np.float32), 0.0, 1.0) for f in self.facing]
        n = len(self.vertices)
        if self.vertices.ndim != 2 or self.vertices.shape[1] != 3 or n == 0:
            raise ValueError(f"body vertices have shape {self.vertices.shape}, expected (V, 3)")
        if self.faces.ndim != 2 or self.faces.shape[1] != 3 or len(self.faces) == 0:
            raise ValueError(f"body faces have shape {self.faces.shape}, expected (F, 3)")
        if self.faces.min() < 0 or self.faces.max() >= n:
            raise ValueError(f"body faces index vertices outside 0..{n - 1}")
        if self.joints.shape != (len(JOINT_NAMES), 3):
            raise ValueError(f"body joints have shape {self.joints.shape}, expected (24, 3)")
        if (
            self.skin_joints.ndim != 2
            or self.skin_joints.shape[0] != n
            or self.skin_weights.shape != self.skin_joints.shape
        ):
            raise ValueError(
                f"skin joints {self.skin_joints.shape} / weights {self.skin_weights.shape} "
                f"do not match {n} vertices"
            )
        if self.skin_joints.max() >= len(JOINT_NAMES):
            raise ValueError("skin joint indices must be below 24")
        if not len(self.uv) == len(self.visible) == len(self.facing):
            raise ValueError(
                f"{len(self.uv)} uv, {len(self.visible)} visible and {len(self.facing)} facing "
                "frames: one of each per photo expected"
            )
        for u, v, f in zip(self.uv, self.visible, self.facing, strict=True):
            if u.shape != (n, 2) or v.shape != (n,) or f.shape != (n,):
                raise ValueError(
                    f"per-photo uv {u.shape} / visible {v.shape} / facing {f.shape} do not match {n} vertices"
                )
        arrays = (self.vertices, self.joints, self.skin_weights, *self.uv)
        if not all(np.isfinite(a).all() for a in arrays):
            raise ValueError("body mesh contains NaN or infinite values")
        self.trans_scale, self.floor_offset = float(self.trans_scale), float(self.floor_offset)
        if isinstance(self.skirt_vertices, bool) or not isinstance(self.skirt_vertices, int | np.integer):
            raise ValueError(f"skirt_vertices {self.skirt_vertices!r}: expected a whole number")
        self.skirt_vertices = int(self.skirt_vertices)
        if not 0 <= self.skirt_vertices < n:
            raise ValueError(f"skirt_vertices {self.skirt_vertices}: expected 0..{n - 1}")
        if (self.texture is None) != (self.corner_uv is None):
            raise ValueError("the avatar's texture and corner_uv come together")
        if self.corner_uv is not None:
            self.corner_uv = np.ascontiguousarray(self.corner_uv, dtype=np.float32)
            if self.corner_uv.shape != (len(self.faces), 3, 2):
                raise ValueError(
                    f"corner_uv has shape {self.corner_uv.shape}, expected ({len(self.faces)}, 3, 2)"
                )
            if not np.isfinite(self.corner_uv).all():
                raise ValueError("corner_uv contains NaN or infinite values")
            if not bytes(self.texture[:8]) == b"\x89PNG\r\n\x1a\n":
                raise ValueError("the avatar's texture is not a PNG file")

    def to_wire(self) -> tuple[dict[str, Any], list[tuple[str, np.ndarray]]]:
        """The reply's "mesh" summary and its binary frames."""
        body = {
            "vertices": len(self.vertices),
            "faces": len(self.faces),
            "skin_influences": int(self.skin_joints.shape[1]),
            "trans_scale": self.trans_scale,
            "floor_offset": self.floor_offset,
            "skirt_vertices": self.skirt_vertices,
        }
        frames = [
            ("body_vertices", self.vertices),
            ("body_faces", self.faces),
            ("body_joints", self.joints),
            ("skin_joints", self.skin_joints),
            ("skin_weights", self.skin_weights),
        ]
        frames += [("view_uv", u) for u in self.uv]
        frames += [("view_visible", v.astype(np.uint8)) for v in self.visible]
        frames += [("view_facing", np.round(f * 255).astype(np.uint8)) for f in self.facing]
        if self.texture is not None:
            frames += [("texture", bytes(self.texture), "image/png"), ("body_corner_uv", self.corner_uv)]
        return body, frames

    @classmethod
    def from_message(cls, msg: Message) -> BodyMesh | None:
        """The body of an analyze result, or None when the server sent none (an older server, or
        one whose body model could not load)."""
        if not msg.frames_named("body_vertices"):
            return None
        arrays = {name: msg.frame(name) for name in BODY_FRAMES}
        uv, visible = msg.frames_named("view_uv"), msg.frames_named("view_visible")
        facing = msg.frames_named("view_facing")
        texture = msg.frames_named("texture")
        corner_uv = msg.frames_named("body_corner_uv")
        if texture and not isinstance(texture[0], bytes | bytearray):
            raise ProtocolError("bad_array", "texture must be an encoded PNG file (bytes)", msg.id)
        named = [
            *(("body_corner_uv", c) for c in corner_uv),
            *arrays.items(),
            *(("view_uv", u) for u in uv),
            *(("view_visible", v) for v in visible),
            *(("view_facing", f) for f in facing),
        ]
        for name, arr in named:
            if not isinstance(arr, np.ndarray):
                raise ProtocolError("bad_array", f"{name} must be an array, not encoded bytes", msg.id)
        summary = msg.body.get("mesh", {})
        if not isinstance(summary, dict):
            raise ProtocolError("bad_request", "mesh must be an object", msg.id)
        try:
            return cls(
                *(arrays[name].copy() for name in BODY_FRAMES),
                [u.copy() for u in uv],
                [v.copy() for v in visible],
                [f.astype(np.float32) / 255.0 for f in facing] if facing else None,
                summary.get("trans_scale", 1.0),
                summary.get("floor_offset", 0.0),
                bytes(texture[0]) if texture else None,
                corner_uv[0].copy() if corner_uv else None,
                summary.get("skirt_vertices", 0),
            )
        except (ValueError, TypeError) as exc:
            raise ProtocolError("bad_array", f"body mesh: {exc}", msg.id) from None
