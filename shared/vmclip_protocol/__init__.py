"""VideoMotionCLIP wire protocol: message framing, the motion payload and a reliable Python client.

Pure Python + pyzmq + numpy (no torch, no vmclip), so the Blender add-on vendors it unchanged.
The specification for clients in other languages is `shared/README.md`. The SMPL-24 skeleton lives
here too (`vmclip_protocol.skeleton`), the one copy for the backend, the wire and the add-on.

The client and the key helpers need pyzmq and are imported on first use: the wire format and the
skeleton (numpy only) then load where pyzmq is missing, as in a Blender without the bundled wheels.
"""

from typing import TYPE_CHECKING, Any

from . import skeleton
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

if TYPE_CHECKING:
    from .client import DEFAULT_DEADLINES, Client, image_media
    from .keys import load_key_pair, load_public_key, write_key_pair

_CLIENT_NAMES = ("DEFAULT_DEADLINES", "Client", "image_media")
_KEY_NAMES = ("load_key_pair", "load_public_key", "write_key_pair")


def __getattr__(name: str) -> Any:
    if name in _CLIENT_NAMES:
        from . import client

        return getattr(client, name)
    if name in _KEY_NAMES:
        from . import keys

        return getattr(keys, name)
    raise AttributeError(f"module 'vmclip_protocol' has no attribute {name!r}")


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
    "skeleton",
    "write_key_pair",
]
