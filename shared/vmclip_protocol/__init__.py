"""VideoMotionCLIP wire protocol: message framing, the motion payload and a reliable Python client.

Pure Python + pyzmq + numpy (no torch, no vmclip), so the Blender add-on vendors it unchanged.
The specification for clients in other languages is `shared/README.md`.
"""

from .client import DEFAULT_DEADLINES, Client, image_media
from .keys import load_key_pair, load_public_key, write_key_pair
from .wire import (
    BODY_FRAMES,
    DEFAULT_ADDRESS,
    ERROR_CODES,
    JOB_TYPES,
    JOINT_NAMES,
    PROTOCOL_VERSION,
    REPLY_TYPES,
    REQUEST_TYPES,
    SUPPORTED_VERSIONS,
    AuthenticationFailed,
    BodyMesh,
    Message,
    MotionPayload,
    ProtocolError,
    RemoteError,
    ServerUnavailable,
    decode,
    encode,
    error_frames,
    new_id,
)

__all__ = [
    "DEFAULT_ADDRESS",
    "DEFAULT_DEADLINES",
    "ERROR_CODES",
    "JOB_TYPES",
    "JOINT_NAMES",
    "PROTOCOL_VERSION",
    "REPLY_TYPES",
    "REQUEST_TYPES",
    "SUPPORTED_VERSIONS",
    "AuthenticationFailed",
    "BODY_FRAMES",
    "BodyMesh",
    "Client",
    "Message",
    "MotionPayload",
    "ProtocolError",
    "RemoteError",
    "ServerUnavailable",
    "decode",
    "encode",
    "error_frames",
    "image_media",
    "load_key_pair",
    "load_public_key",
    "new_id",
    "write_key_pair",
]
