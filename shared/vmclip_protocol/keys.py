"""CURVE key files: make a key pair, read public keys and key pairs (pyzmq's certificate format)."""

from __future__ import annotations

import os
from pathlib import Path

import zmq
import zmq.auth


def write_key_pair(folder: str | os.PathLike, name: str) -> tuple[Path, Path]:
    """Write `<name>.key` (public, share it) and `<name>.key_secret` (keep it) into `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    public, secret = zmq.auth.create_certificates(str(folder), name)
    os.chmod(secret, 0o600)
    return Path(public), Path(secret)


def load_public_key(key: str | bytes | os.PathLike) -> bytes:
    """A z85 public key (40 characters) given as text/bytes or as the path of a `.key`/`.key_secret` file."""
    if isinstance(key, bytes | str) and len(key) == 40 and not Path(os.fsdecode(key)).exists():
        return key.encode("ascii") if isinstance(key, str) else key
    path = Path(os.fsdecode(key))
    if not path.is_file():
        raise ValueError(f"{path}: no such key file (expected a z85 key or a .key file from `vmclip keys`)")
    public, _ = zmq.auth.load_certificate(str(path))
    if not public:
        raise ValueError(f"{path}: no public key in this file")
    return public


def load_key_pair(key: str | os.PathLike | tuple[bytes, bytes]) -> tuple[bytes, bytes]:
    """(public, secret) z85 keys from a `.key_secret` file or an explicit tuple."""
    if isinstance(key, tuple):
        public, secret = key
        return bytes(public), bytes(secret)
    path = Path(os.fsdecode(key))
    if not path.is_file():
        raise ValueError(f"{path}: no such key file (expected a .key_secret file from `vmclip keys`)")
    public, secret = zmq.auth.load_certificate(str(path))
    if not secret:
        raise ValueError(f"{path}: holds no secret key (pass the .key_secret file, not the public .key)")
    return public, secret
