"""Where the server may listen, and CURVE authentication when it listens beyond this machine."""

from __future__ import annotations

import ipaddress
import logging
import os
from pathlib import Path

import zmq
import zmq.auth
from vmclip_protocol import load_key_pair
from zmq.auth.thread import ThreadAuthenticator

from vmclip.errors import InputError

log = logging.getLogger("vmclip.server")


def is_local_address(address: str) -> bool:
    """True for endpoints only this machine can reach: loopback TCP, ipc:// and inproc://."""
    scheme, sep, rest = address.partition("://")
    if not sep:
        raise InputError(f"{address}: not a ZeroMQ endpoint (expected e.g. tcp://127.0.0.1:5555)")
    if scheme in ("ipc", "inproc"):
        return True
    if scheme != "tcp":
        raise InputError(f"{address}: unsupported transport {scheme!r} (use tcp://, ipc:// or inproc://)")
    host = rest.rsplit(":", 1)[0] if ":" in rest else rest
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # "*", an interface name or a host name: may be reachable from outside
        return False


class AllowList:
    """Client public keys allowed in: a folder of `.key` files (re-read on each handshake, so keys
    can be added or removed without a restart) or a single key file."""

    def __init__(self, location: str | os.PathLike) -> None:
        self.location = Path(location)
        if not self.location.exists():
            raise InputError(f"{self.location}: authorized keys folder/file does not exist")
        if not self.keys():
            raise InputError(
                f"{self.location}: no client public keys (*.key) found; make them with `vmclip keys`"
            )

    def keys(self) -> set[bytes]:
        files = sorted(self.location.glob("*.key")) if self.location.is_dir() else [self.location]
        found = set()
        for path in files:
            try:
                public, _ = zmq.auth.load_certificate(str(path))
            except (OSError, ValueError) as exc:
                log.warning("skipping unreadable key file %s: %s", path, exc)
                continue
            if public:
                found.add(public)
        return found

    def callback(self, domain: str, key: bytes) -> bool:  # called by pyzmq's authenticator thread
        allowed = key in self.keys()
        if not allowed:
            log.warning("rejected a CURVE client whose key is not on the allow-list: %s", key.decode()[:8])
        return allowed


def setup_curve(
    ctx: zmq.Context, sock: zmq.Socket, server_key: str | os.PathLike, authorized_keys: str | os.PathLike
) -> ThreadAuthenticator:
    """Make `sock` a CURVE server that admits only the allow-listed client keys."""
    try:
        public, secret = load_key_pair(server_key)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    allow = AllowList(authorized_keys)
    auth = ThreadAuthenticator(ctx)
    auth.start()
    auth.configure_curve_callback(domain="*", credentials_provider=allow)
    sock.curve_secretkey = secret
    sock.curve_publickey = public
    sock.curve_server = True
    return auth
