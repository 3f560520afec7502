"""Python client of the VideoMotionCLIP server (used by the Blender add-on and `vmclip client`).

Reliability follows ZeroMQ's "Lazy Pirate" pattern on a DEALER socket: the client waits at most
`timeout_s` for *any* message (long jobs send progress at least once a second); on silence it closes
the socket, opens a fresh one and sends the same request again (same id, so a server that is still
working on it re-attaches instead of starting over), up to `retries` times, then raises
ServerUnavailable. A restarted server is therefore picked up transparently.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zmq
from zmq.utils.monitor import recv_monitor_message

from .keys import load_key_pair, load_public_key
from .wire import (
    DEFAULT_ADDRESS,
    JOB_TYPES,
    MAX_REPLY_HEADER_BYTES,
    REPLY_TYPES,
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
    new_id,
)

ProgressCallback = Callable[[float, str], Any]

# Whole-request deadlines (seconds) when the caller gives none; jobs on a CPU can take minutes.
DEFAULT_DEADLINES = {"generate_motion": 300.0, "analyze": 600.0, "render": 3600.0}
# The client waits this much past the deadline it sent, so the server's own "deadline_exceeded" arrives.
_DEADLINE_GRACE_S = 2.0

_HANDSHAKE_FAILED = (
    zmq.EVENT_HANDSHAKE_FAILED_AUTH
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
)


def constraint_frames(constraints: Any) -> list[tuple[str, np.ndarray]]:
    """The three `generate_motion` constraint frames from an object or dict holding poses, trans, mask
    (a (T,) mask of whole frames is widened to (T, 25))."""
    get = constraints.get if isinstance(constraints, dict) else lambda k: getattr(constraints, k, None)
    poses, trans, mask = (get(k) for k in ("poses", "trans", "mask"))
    if poses is None or trans is None or mask is None:
        raise ValueError("constraints need poses (T,24,3), trans (T,3) and mask (T,25) or (T,)")
    mask = np.asarray(mask)
    if mask.ndim == 1:
        mask = np.repeat(mask[:, None], 25, axis=1)
    return [
        ("constraint_poses", np.asarray(poses, dtype="<f4")),
        ("constraint_trans", np.asarray(trans, dtype="<f4")),
        ("constraint_mask", (mask != 0).astype("|u1")),
    ]


def image_media(data: bytes) -> str:
    """MIME type from an encoded image's magic bytes (a hint for the receiver)."""
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    return "application/octet-stream"


class _Channel:
    """One DEALER socket (plus a handshake monitor when CURVE is on)."""

    def __init__(self, ctx: zmq.Context, address: str, curve: tuple[bytes, bytes, bytes] | None) -> None:
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        if "[" in address:
            self.sock.setsockopt(zmq.IPV6, 1)
        self.monitor = None
        if curve is not None:
            server_public, public, secret = curve
            self.sock.curve_serverkey = server_public
            self.sock.curve_publickey = public
            self.sock.curve_secretkey = secret
            self.monitor = self.sock.get_monitor_socket(_HANDSHAKE_FAILED)
        self.sock.connect(address)
        self.poller = zmq.Poller()
        self.poller.register(self.sock, zmq.POLLIN)
        if self.monitor is not None:
            self.poller.register(self.monitor, zmq.POLLIN)

    def send(self, frames: list[bytes]) -> bool:
        try:
            self.sock.send_multipart(frames, flags=zmq.NOBLOCK, copy=False)
            return True
        except zmq.Again:  # peer queue full; treated like silence
            return False

    def recv(self, timeout_s: float) -> list[zmq.Frame] | None:
        end = time.monotonic() + timeout_s
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return None
            events = dict(self.poller.poll(max(1, int(left * 1000))))
            if self.monitor is not None and self.monitor in events:
                event = recv_monitor_message(self.monitor)
                if event["event"] & _HANDSHAKE_FAILED:
                    raise AuthenticationFailed(
                        "the server rejected the CURVE handshake: wrong server public key, or this client's "
                        "public key is not on the server's allow-list"
                    )
            if self.sock in events:
                return self.sock.recv_multipart(copy=False)

    def close(self) -> None:
        if self.monitor is not None:
            try:
                self.sock.disable_monitor()
            except zmq.ZMQError:
                pass
            self.monitor.close(linger=0)
        self.sock.close(linger=0)


class Client:
    """Talks to `vmclip serve`.

    `timeout_s` bounds the silence between two messages from the server; `retries` is how many times
    a silent request is re-sent on a fresh socket. `server_key` (the server's public key: z85 text or
    a `.key` file) turns on CURVE encryption; `client_key` (a `.key_secret` file or a (public, secret)
    tuple) is this client's key pair, whose public half must be on the server's allow-list.

    Calls are serialised by a lock (one socket); `cancel()` uses a socket of its own, so another thread
    may cancel a job that a blocked `render()` is waiting for.
    """

    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        *,
        timeout_s: float = 10.0,
        retries: int = 3,
        server_key: str | bytes | os.PathLike | None = None,
        client_key: str | os.PathLike | tuple[bytes, bytes] | None = None,
        name: str = "vmclip_protocol",
        context: zmq.Context | None = None,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        if retries < 0:
            raise ValueError("retries must be >= 0")
        self.address = address
        self.timeout_s = float(timeout_s)
        self.retries = int(retries)
        self.name = name
        self.session = f"{name[:60]}-{new_id()[:16]}"
        self._ctx = context or zmq.Context.instance()
        self._curve: tuple[bytes, bytes, bytes] | None = None
        if server_key is not None:
            public, secret = load_key_pair(client_key) if client_key is not None else zmq.curve_keypair()
            self._curve = (load_public_key(server_key), public, secret)
        elif client_key is not None:
            raise ValueError("client_key needs server_key (the server's public key) as well")
        self._chan: _Channel | None = None
        self._lock = threading.Lock()
        self.current_job: str | None = None  # id of the job a call is waiting for (for cancel from elsewhere)
        self.limits: dict[str, Any] = {}  # the server's limits, known after hello()

    # --- public API ------------------------------------------------------------------------------
    @staticmethod
    def new_job_id() -> str:
        """An id to pass as `job_id=` so that another thread can `cancel()` that job."""
        return new_id()

    def hello(self) -> dict[str, Any]:
        """Server name, protocol versions, device, capabilities (which stages are available), limits."""
        info = self._request("hello", {"client": self.name, "versions": list(SUPPORTED_VERSIONS)}).body
        if isinstance(info.get("limits"), dict):
            self.limits = dict(info["limits"])
        return info

    def status(self, job_id: str | None = None) -> dict[str, Any]:
        """Queue, workers and open jobs; with `job_id`, that job's state and progress."""
        return self._request("status", {"job_id": job_id} if job_id else {}).body

    def generate_motion(
        self,
        prompt: str,
        seconds: float = 4.0,
        seed: int = 0,
        fps: float = 30.0,
        *,
        on_progress: ProgressCallback | None = None,
        job_id: str | None = None,
        deadline_s: float | None = None,
        constraints: Any = None,
    ) -> MotionPayload:
        """Text to SMPL-24 motion: `poses` (T,24,3) axis-angle float32, `trans` (T,3), `fps`.

        `constraints`: an object with `poses` (T,24,3), `trans` (T,3) and `mask` (T,25) or (T,)
        attributes (e.g. `vmclip.motion.constraints.MotionConstraints`) or a dict with those keys,
        T = round(seconds x fps); the motion meets the held joints, frames and root path."""
        body = {"prompt": prompt, "seconds": float(seconds), "seed": int(seed), "fps": float(fps)}
        frames = constraint_frames(constraints) if constraints is not None else []
        msg = self._request(
            "generate_motion", body, frames, on_progress=on_progress, job_id=job_id, deadline_s=deadline_s
        )
        return MotionPayload.from_message(msg)

    def analyze(
        self,
        images: Sequence[bytes | str | os.PathLike],
        *,
        on_progress: ProgressCallback | None = None,
        job_id: str | None = None,
        deadline_s: float | None = None,
    ) -> dict[str, Any]:
        """Fit the person in the photos (PNG/JPEG bytes or file paths); returns the analysis summary.

        When the server sends the fitted body, the summary also holds it under "body_mesh" (a
        BodyMesh: rest mesh, skin weights, per-photo texture coordinates and visibility)."""
        frames, media = _image_frames(images)
        msg = self._request(
            "analyze", {}, frames, media=media, on_progress=on_progress, job_id=job_id, deadline_s=deadline_s
        )
        out = dict(msg.body)
        mesh = BodyMesh.from_message(msg)
        if mesh is not None:
            out["body_mesh"] = mesh
        return out

    def render(
        self,
        images: Sequence[bytes | str | os.PathLike],
        motion: MotionPayload,
        options: dict[str, Any] | None = None,
        on_progress: ProgressCallback | None = None,
        *,
        job_id: str | None = None,
        deadline_s: float | None = None,
    ) -> bytes:
        """Animate the person in `images` with `motion`; returns the MP4 file's bytes.

        `on_progress(fraction, message)` is called for every progress message; if it raises, the job
        is cancelled on the server and the exception propagates.
        """
        frames, media = _image_frames(images)
        mbody, mframes = motion.to_wire()
        body = {"options": dict(options or {}), "motion": mbody}
        msg = self._request(
            "render",
            body,
            frames + mframes,
            media=media,
            on_progress=on_progress,
            job_id=job_id,
            deadline_s=deadline_s,
        )
        video = msg.frame("video")
        if not isinstance(video, bytes):
            raise ProtocolError("bad_array", "render result's video frame is not bytes", msg.id)
        return video

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Cancel a queued or running job (thread-safe: uses its own socket). Returns {job_id, state}."""
        chan = _Channel(self._ctx, self.address, self._curve)
        try:
            return self._exchange(
                chan,
                "cancel",
                {"job_id": job_id},
                [],
                None,
                new_id(),
                self.timeout_s * (self.retries + 1),
                None,
                reopen=False,
            ).body
        finally:
            chan.close()

    def close(self) -> None:
        with self._lock:
            if self._chan is not None:
                self._chan.close()
                self._chan = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- machinery -------------------------------------------------------------------------------
    def _request(
        self,
        msg_type: str,
        body: dict[str, Any],
        frames: list | None = None,
        *,
        media: dict[str, str] | None = None,
        on_progress: ProgressCallback | None = None,
        job_id: str | None = None,
        deadline_s: float | None = None,
    ) -> Message:
        rid = job_id or new_id()
        if deadline_s is None:
            deadline_s = DEFAULT_DEADLINES.get(msg_type, self.timeout_s * (self.retries + 1))
        with self._lock:
            if self._chan is None:
                self._chan = _Channel(self._ctx, self.address, self._curve)
            self.current_job = rid if msg_type in JOB_TYPES else None
            try:
                return self._exchange(
                    self._chan, msg_type, body, frames or [], media, rid, deadline_s, on_progress, reopen=True
                )
            finally:
                self.current_job = None

    def _exchange(
        self,
        chan: _Channel,
        msg_type: str,
        body: dict[str, Any],
        frames: list,
        media: dict[str, str] | None,
        rid: str,
        deadline_s: float,
        on_progress: ProgressCallback | None,
        *,
        reopen: bool,
    ) -> Message:
        t_end = time.monotonic() + deadline_s
        limit = self.limits.get("max_message_bytes")
        if isinstance(limit, int) and frames:
            size = sum(len(f[1]) if isinstance(f[1], bytes) else np.asarray(f[1]).nbytes for f in frames)
            if size > limit:  # the server's ZMQ_MAXMSGSIZE would drop the connection without a word
                raise RemoteError(
                    "too_large",
                    f"{msg_type}: {size} bytes of data, the server accepts at most {limit} per message",
                )

        def send() -> None:
            left_ms = max(0.0, (t_end - time.monotonic()) * 1000)
            chan.send(
                encode(msg_type, rid, body, frames, deadline_ms=left_ms, media=media, client=self.session)
            )

        send()
        silent = 0
        while True:
            left = t_end + _DEADLINE_GRACE_S - time.monotonic()
            if left <= 0:
                raise ServerUnavailable(
                    f"{msg_type}: no result from {self.address} within its deadline of {deadline_s:.0f} s"
                )
            try:
                raw = chan.recv(min(self.timeout_s, left))
            except AuthenticationFailed:
                if reopen:
                    self._drop(chan)
                raise
            if raw is None:
                silent += 1
                if silent > self.retries:
                    if reopen:
                        self._drop(chan)
                    raise ServerUnavailable(
                        f"{msg_type}: no answer from {self.address} "
                        f"({self.retries + 1} tries of {self.timeout_s:g} s)"
                    )
                if reopen:  # Lazy Pirate: a fresh socket forgets messages queued for a dead peer
                    self._drop(chan)
                    chan = self._chan = _Channel(self._ctx, self.address, self._curve)
                send()
                continue
            msg = decode(raw, expect=REPLY_TYPES, max_header=MAX_REPLY_HEADER_BYTES)
            if msg.id != rid:
                continue  # a late answer to an earlier, abandoned request
            silent = 0
            if msg.type == "error":
                body_ = msg.body
                raise RemoteError(str(body_.get("code", "internal")), str(body_.get("message", "")), body_)
            if msg.type == "result":
                return msg
            if on_progress is not None and msg.type == "progress":
                try:
                    on_progress(float(msg.body.get("fraction", 0.0)), str(msg.body.get("message", "")))
                except BaseException:
                    try:
                        self.cancel(rid)
                    except (ServerUnavailable, RemoteError):
                        pass
                    raise

    def _drop(self, chan: _Channel) -> None:
        chan.close()
        if self._chan is chan:
            self._chan = None


def _image_frames(images: Sequence[bytes | str | os.PathLike]) -> tuple[list, dict[str, str]]:
    if isinstance(images, bytes | str | os.PathLike):
        raise TypeError("images must be a list of encoded images (bytes) or paths")
    frames: list[tuple[str, bytes | np.ndarray]] = []
    media: dict[str, str] = {}
    for item in images:
        data = item if isinstance(item, bytes) else Path(item).read_bytes()
        frames.append(("image", data, image_media(data)))
    return frames, media
