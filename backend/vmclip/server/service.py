"""The ZeroMQ service: a ROUTER socket in front of a job queue and a bounded pool of worker threads.

One I/O thread owns the ROUTER socket (ZeroMQ sockets are single-threaded): it decodes and
validates requests, answers hello/status/cancel itself, queues jobs, sends heartbeats and enforces
deadlines. Workers run jobs through the `Pipeline` and hand their replies back to the I/O thread
over an inproc PUSH/PULL pipe. Any failure inside one job becomes an error reply to that client;
a worker thread that dies anyway is replaced (the I/O thread supervises the pool), and no exception
raised while handling one message stops the I/O thread.
"""

from __future__ import annotations

import io
import logging
import math
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zmq
from vmclip_protocol import (
    DEFAULT_ADDRESS,
    JOINT_NAMES,
    PROTOCOL_VERSION,
    REQUEST_TYPES,
    SUPPORTED_VERSIONS,
    Message,
    MotionPayload,
    ProtocolError,
    decode,
    encode,
    error_frames,
    new_id,
)
from vmclip_protocol.wire import finite_number, peek_id

from vmclip import __version__
from vmclip.errors import InputError, VmclipError
from vmclip.limits import CAMERA_MODES, MAX_IMAGES, MAX_MOTION_FRAMES
from vmclip.motion.constraints import MotionConstraints
from vmclip.server.pipeline import JobCancelled, Pipeline, StageUnavailable
from vmclip.server.security import is_local_address, setup_curve

log = logging.getLogger("vmclip.server")

# A client that declared header.heartbeat_ms and then stayed silent this many heartbeats is taken to
# be gone and its jobs are cancelled: one or two late or lost messages never cost a job.
HEARTBEAT_MISSES = 3
# After an unexpected exception in the I/O loop, wait this long before the next turn so that a fault
# that repeats on every turn cannot spin a core (and flood the log).
_IO_FAULT_PAUSE_S = 0.05


@dataclass
class Limits:
    """What one request may ask for. Sent to clients in the hello reply."""

    max_message_bytes: int = 256 * 1024 * 1024  # ZMQ_MAXMSGSIZE: larger messages drop the connection
    max_images: int = MAX_IMAGES
    max_image_pixels: int = 40_000_000
    max_prompt_chars: int = 500
    min_seconds: float = 1.0  # the text-to-motion model's range (vmclip.t2m.generate)
    max_seconds: float = 10.0
    max_motion_frames: int = MAX_MOTION_FRAMES  # longest motion render accepts (same as the CLI's)
    min_fps: float = 1.0
    max_fps: float = 120.0
    max_render_size: int = 2048
    max_jobs_per_client: int = 4
    max_queue: int = 64
    max_deadline_s: float = 3600.0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class ServerConfig:
    bind: str = DEFAULT_ADDRESS
    workers: int = 2
    limits: Limits = field(default_factory=Limits)
    server_key: Path | None = None  # this server's .key_secret (CURVE)
    authorized_keys: Path | None = None  # folder of allowed client .key files (CURVE)
    heartbeat_s: float = 0.5  # progress messages at least this often while a job is queued or running


@dataclass
class Job:
    id: str
    type: str
    msg: Message
    client: str
    identity: bytes
    deadline: float
    params: dict[str, Any]
    cancel: threading.Event = field(default_factory=threading.Event)
    state: str = "queued"  # queued -> running -> finished; or cancelled/expired while queued/running
    created: float = field(default_factory=time.monotonic)
    started: float | None = None
    fraction: float = 0.0
    message: str = "queued"
    answered: bool = False  # the client already got its terminal reply (cancel/deadline)
    heartbeat_s: float | None = None  # the client promised a sign of life at least this often
    last_seen: float = field(default_factory=time.monotonic)  # its last message (any request)


class _Request(Exception):
    """Validation failure of one request (becomes an error reply)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class Server:
    """`Server(config, pipeline).start()`; `.address` is the bound endpoint; `.stop()` shuts down."""

    def __init__(
        self,
        config: ServerConfig | None = None,
        pipeline: Pipeline | None = None,
        context: zmq.Context | None = None,
    ) -> None:
        self.config = config or ServerConfig()
        self.pipeline = pipeline if pipeline is not None else Pipeline()
        self.limits = self.config.limits
        curve = self.config.server_key is not None or self.config.authorized_keys is not None
        if curve and (self.config.server_key is None or self.config.authorized_keys is None):
            raise InputError(
                "CURVE needs both a server key pair (--server-key) and an allow-list of client "
                "keys (--authorized-keys)"
            )
        if not curve and not is_local_address(self.config.bind):
            raise InputError(
                f"refusing to bind {self.config.bind} without CURVE keys: it may be reachable "
                "from other machines. Pass --server-key and --authorized-keys (make them with "
                "`vmclip keys`), or bind tcp://127.0.0.1:PORT"
            )
        if self.config.workers < 1:
            raise InputError("workers must be at least 1")
        self.curve = curve
        self._ctx = context or zmq.Context.instance()
        self._jobs: dict[str, Job] = {}
        self._jobs_lock = threading.Lock()
        self._queue: queue.Queue[Job | None] = queue.Queue(maxsize=self.limits.max_queue)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._workers: list[threading.Thread] = []
        self._running: list[Job | None] = [None] * self.config.workers  # the job in each worker slot
        self.workers_restarted = 0
        self._pipe = f"inproc://vmclip-replies-{new_id()}"
        self._auth = None
        self._router: zmq.Socket | None = None
        self.address: str = self.config.bind
        self.started_at = time.monotonic()
        self.requests_served = 0

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self) -> Server:
        router = self._ctx.socket(zmq.ROUTER)
        router.setsockopt(zmq.LINGER, 0)
        router.setsockopt(zmq.MAXMSGSIZE, self.limits.max_message_bytes)
        router.setsockopt(zmq.ROUTER_HANDOVER, 1)
        if "[" in self.config.bind or "::" in self.config.bind:
            router.setsockopt(zmq.IPV6, 1)
        try:
            if self.curve:
                self._auth = setup_curve(
                    self._ctx, router, self.config.server_key, self.config.authorized_keys
                )
            router.bind(self.config.bind)
        except zmq.ZMQError as exc:
            router.close(linger=0)
            self._stop_auth()
            raise InputError(f"cannot bind {self.config.bind}: {exc}") from None
        except BaseException:
            router.close(linger=0)
            self._stop_auth()
            raise
        self.address = router.getsockopt(zmq.LAST_ENDPOINT).decode()
        self.pipeline.capabilities()  # resolve the stages now, not inside the I/O thread
        self._router = router
        pull = self._ctx.socket(zmq.PULL)
        pull.setsockopt(zmq.LINGER, 0)
        pull.bind(self._pipe)
        self._pull = pull
        self.started_at = time.monotonic()
        io_thread = threading.Thread(target=self._io_loop, name="vmclip-io", daemon=True)
        self._threads.append(io_thread)
        io_thread.start()
        self._workers = [self._start_worker(i) for i in range(self.config.workers)]
        log.info(
            "serving on %s (%s, %d workers, device %s)",
            self.address,
            "CURVE, allow-listed clients" if self.curve else "local only, no encryption",
            self.config.workers,
            self.pipeline.device,
        )
        return self

    def request_stop(self) -> None:
        """Ask `serve_forever` to return (safe from a signal handler)."""
        self._stop.set()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        with self._jobs_lock:
            for job in self._jobs.values():
                job.cancel.set()
        for _ in range(self.config.workers):
            try:
                self._queue.put_nowait(None)
            except queue.Full:
                break
        end = time.monotonic() + timeout_s
        for t in [*self._threads, *self._workers]:
            t.join(max(0.0, end - time.monotonic()))
        self._stop_auth()

    def _stop_auth(self) -> None:
        if self._auth is not None:
            self._auth.stop()
            self._auth = None

    def serve_forever(self) -> None:
        if self._router is None:
            self.start()
        try:
            while not self._stop.is_set():
                self._stop.wait(0.5)
        finally:
            self.stop()

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- I/O thread ------------------------------------------------------------------------------
    def _io_loop(self) -> None:
        router, pull = self._router, self._pull
        poller = zmq.Poller()
        poller.register(router, zmq.POLLIN)
        poller.register(pull, zmq.POLLIN)
        next_beat = time.monotonic() + self.config.heartbeat_s
        try:
            while not self._stop.is_set():
                try:
                    next_beat = self._io_turn(poller, next_beat)
                except Exception:  # noqa: BLE001 - a fault in one turn must not stop the service
                    log.exception("server I/O loop: unexpected error (the server goes on)")
                    self._stop.wait(_IO_FAULT_PAUSE_S)
        finally:
            router.close(linger=0)
            pull.close(linger=0)

    def _io_turn(self, poller: zmq.Poller, next_beat: float) -> float:
        """One turn of the I/O thread: requests in, worker replies out, deadlines, heartbeats, pool."""
        router, pull = self._router, self._pull
        events = dict(poller.poll(50))
        if router in events:
            for _ in range(100):  # drain, bounded so replies are not starved
                try:
                    frames = router.recv_multipart(flags=zmq.NOBLOCK, copy=False)
                except zmq.Again:
                    break
                self._on_request_guarded(frames)
        if pull in events:
            for _ in range(100):
                try:
                    parts = pull.recv_multipart(flags=zmq.NOBLOCK, copy=False)
                except zmq.Again:
                    break
                try:
                    self._on_worker_reply(parts)
                except Exception:  # noqa: BLE001 - one bad reply must not stop the others
                    log.exception("forwarding a worker's reply failed")
        now = time.monotonic()
        self._expire(now)
        self._supervise()
        if now >= next_beat:
            self._heartbeat()
            next_beat = now + self.config.heartbeat_s
        return next_beat

    def _on_request_guarded(self, frames: list[zmq.Frame]) -> None:
        """`_on_request`, with any exception turned into an `internal` error reply to that sender."""
        try:
            self._on_request(frames)
        except Exception as exc:  # noqa: BLE001 - a bug in one request must not stop the rest
            log.exception("request handling failed")
            try:
                rid = peek_id(frames[1]) if len(frames) > 1 else None  # never raises
                reply = error_frames("internal", f"{type(exc).__name__}: {exc}"[:500], rid)
                self._send(bytes(frames[0].buffer), reply)
            except Exception:  # noqa: BLE001 - not even an error reply could be made: drop it
                log.exception("could not answer the failed request")

    def _send(self, identity: bytes, frames: list[bytes]) -> None:
        try:
            self._router.send_multipart([identity, *frames], flags=zmq.NOBLOCK)
        except (zmq.Again, zmq.ZMQError):  # client gone or its queue is full: drop, as ROUTER would
            pass

    def _log(
        self, msg_type: str, client: str, rid: str | None, started: float, outcome: str, quiet: bool = False
    ) -> None:
        self.requests_served += 1
        log.log(
            logging.DEBUG if quiet else logging.INFO,
            "%s client=%s id=%s %.1f ms %s",
            _printable(msg_type, 20),
            _printable(client, 24),
            _printable(rid or "-", 12),
            (time.monotonic() - started) * 1000,
            outcome,
        )

    def _on_request(self, frames: list[zmq.Frame]) -> None:
        t0 = time.monotonic()
        if len(frames) < 2:
            return  # ROUTER always prepends the identity; nothing to answer
        identity = bytes(frames[0].buffer)
        user_id = None
        if self.curve:
            try:
                user_id = frames[1].get("User-Id")
            except zmq.ZMQError:
                user_id = None
        client = user_id or identity.hex()
        try:
            msg = decode(frames[1:], expect=REQUEST_TYPES)
        except ProtocolError as exc:
            self._send(identity, error_frames(exc.code, exc.message, exc.request_id, **exc.details))
            self._log("invalid", client, exc.request_id, t0, f"error {exc.code}")
            return
        if not user_id and msg.client:
            client = msg.client  # session id: stable across the client's reconnects
        self._touch(client, t0)
        try:
            if msg.id is None:
                raise _Request("bad_request", "requests need an id (header.id)")
            if msg.deadline_ms is None:
                raise _Request("bad_request", "requests need a deadline (header.deadline_ms)")
            if msg.type == "hello":
                self._send(identity, encode("result", msg.id, self._hello()))
            elif msg.type == "status":
                self._send(identity, encode("result", msg.id, self._status(msg, client)))
            elif msg.type == "cancel":
                self._send(identity, encode("result", msg.id, self._cancel(msg, client)))
            else:
                self._submit(msg, identity, client, t0)
                return  # logged when the job ends
            # a status about one job is the waiting client's heartbeat: logged at debug level only
            self._log(msg.type, client, msg.id, t0, "ok", quiet=msg.type == "status" and "job_id" in msg.body)
        except _Request as exc:
            self._send(identity, error_frames(exc.code, exc.message, msg.id))
            self._log(msg.type, client, msg.id, t0, f"error {exc.code}")

    def _hello(self) -> dict[str, Any]:
        return {
            "server": f"vmclip {__version__}",
            "protocol": PROTOCOL_VERSION,
            "versions": list(SUPPORTED_VERSIONS),
            "device": self.pipeline.device,
            "capabilities": self.pipeline.capabilities(),
            "limits": self.limits.as_dict(),
            "joint_names": list(JOINT_NAMES),
            "workers": self.config.workers,
            "encrypted": self.curve,
        }

    def _status(self, msg: Message, client: str) -> dict[str, Any]:
        now = time.monotonic()
        with self._jobs_lock:
            jobs = list(self._jobs.values())
        mine = [j for j in jobs if j.client == client]
        wanted = msg.body.get("job_id")
        if wanted is not None:
            found = [j for j in mine if j.id == wanted]
            if not found:
                raise _Request("not_found", f"no open job {str(wanted)[:40]!r} for this client")
            mine = found
        return {
            "server": f"vmclip {__version__}",
            "uptime_s": round(now - self.started_at, 3),
            "device": self.pipeline.device,
            "workers": self.config.workers,
            "workers_alive": self.workers_alive(),
            "workers_restarted": self.workers_restarted,
            "queued": sum(j.state == "queued" for j in jobs),
            "running": sum(j.state == "running" for j in jobs),
            "requests_served": self.requests_served,
            "jobs": [
                {
                    "job_id": j.id,
                    "type": j.type,
                    "state": j.state,
                    "fraction": j.fraction,
                    "message": j.message,
                    "age_s": round(now - j.created, 3),
                }
                for j in mine
            ],
        }

    def _cancel(self, msg: Message, client: str) -> dict[str, Any]:
        job_id = msg.body.get("job_id")
        if not isinstance(job_id, str):
            raise _Request("bad_request", "cancel needs body.job_id (a string)")
        with self._jobs_lock:
            job = self._jobs.get(job_id)
        if job is None or job.client != client:
            raise _Request("not_found", f"no open job {job_id[:40]!r} for this client")
        if not job.answered:
            self._cancel_job(job, "cancelled")
        return {"job_id": job_id, "state": job.state}

    def _cancel_job(self, job: Job, outcome: str) -> None:
        """Stop a job and give its client the terminal `cancelled` reply."""
        job.cancel.set()
        job.state = "cancelled" if job.state == "queued" else "cancelling"
        job.answered = True
        self._send(job.identity, error_frames("cancelled", "the job was cancelled", job.id))
        self._log(job.type, job.client, job.id, job.created, outcome)
        # never started: forget it now; a running job leaves when its worker stops
        if job.state == "cancelled":
            self._forget(job)

    def _touch(self, client: str, now: float) -> None:
        """Any request from a client is its sign of life (see HEARTBEAT_MISSES)."""
        with self._jobs_lock:
            for job in self._jobs.values():
                if job.client == client:
                    job.last_seen = now

    def _submit(self, msg: Message, identity: bytes, client: str, t0: float) -> None:
        with self._jobs_lock:
            existing = self._jobs.get(msg.id)
        if existing is not None:
            if existing.client != client or existing.type != msg.type:
                raise _Request("bad_request", "this request id is already in use")
            if existing.answered:  # cancelled or expired while the client was away
                code = "cancelled" if existing.state in ("cancelled", "cancelling") else "deadline_exceeded"
                raise _Request(code, f"the job was {existing.state}")
            # Lazy Pirate retry of a job we are still working on: answer on the new connection.
            existing.identity = identity
            existing.heartbeat_s = _heartbeat_s(msg)
            self._send(
                identity,
                encode("accepted", msg.id, {"job_id": msg.id, "state": existing.state, "reattached": True}),
            )
            return
        params = self._validate(msg)
        deadline_s = min(msg.deadline_ms / 1000.0, self.limits.max_deadline_s)
        with self._jobs_lock:
            open_jobs = sum(1 for j in self._jobs.values() if j.client == client)
            if open_jobs >= self.limits.max_jobs_per_client:
                raise _Request(
                    "too_many_jobs",
                    f"this client already has {open_jobs} open jobs "
                    f"(limit {self.limits.max_jobs_per_client})",
                )
            job = Job(msg.id, msg.type, msg, client, identity, t0 + deadline_s, params, created=t0)
            job.heartbeat_s, job.last_seen = _heartbeat_s(msg), t0
            try:
                self._queue.put_nowait(job)
            except queue.Full:
                raise _Request(
                    "busy", f"the job queue is full ({self.limits.max_queue}); retry later"
                ) from None
            self._jobs[job.id] = job
        self._send(
            identity,
            encode(
                "accepted",
                job.id,
                {"job_id": job.id, "state": "queued", "queue_position": self._queue.qsize()},
            ),
        )

    def _forget(self, job: Job) -> None:
        with self._jobs_lock:
            if self._jobs.get(job.id) is job:
                del self._jobs[job.id]

    def _expire(self, now: float) -> None:
        with self._jobs_lock:
            open_jobs = [j for j in self._jobs.values() if not j.answered]
        for job in open_jobs:
            if now > job.deadline:
                self._expire_job(job, now)
            elif job.heartbeat_s is not None and now - job.last_seen > HEARTBEAT_MISSES * job.heartbeat_s:
                # the client is gone (closed Blender, lost its network): free the worker for others
                self._cancel_job(job, f"cancelled (client silent for {now - job.last_seen:.1f} s)")

    def _expire_job(self, job: Job, now: float) -> None:
        job.cancel.set()
        job.answered = True
        was_queued = job.state == "queued"
        job.state = "expired"
        self._send(
            job.identity,
            error_frames(
                "deadline_exceeded",
                f"the request's deadline passed after {now - job.created:.1f} s",
                job.id,
            ),
        )
        self._log(job.type, job.client, job.id, job.created, "error deadline_exceeded")
        if was_queued:
            self._forget(job)

    def _heartbeat(self) -> None:
        with self._jobs_lock:
            jobs = [j for j in self._jobs.values() if not j.answered]
        for job in jobs:
            body = {"job_id": job.id, "state": job.state, "fraction": job.fraction, "message": job.message}
            self._send(job.identity, encode("progress", job.id, body))

    def _on_worker_reply(self, parts: list[zmq.Frame]) -> None:
        job_id = bytes(parts[0].buffer).decode()
        terminal = bytes(parts[1].buffer) == b"end"
        with self._jobs_lock:
            job = self._jobs.get(job_id)
        if job is None:
            return
        if terminal:
            self._forget(job)
        if job.answered:
            return  # cancelled or expired: the client already has its answer
        frames = [bytes(p.buffer) for p in parts[2:]]
        self._send(job.identity, frames)
        if terminal:
            job.answered = True
            outcome = "ok"
            if frames and b'"type":"error"' in frames[0][:200]:
                outcome = "error " + decode(frames).body.get("code", "?")
            self._log(job.type, job.client, job.id, job.created, outcome)

    # --- validation (I/O thread, cheap checks only) ----------------------------------------------
    def _validate(self, msg: Message) -> dict[str, Any]:
        check = {
            "generate_motion": self._validate_generate_motion,
            "analyze": self._validate_analyze,
            "render": self._validate_render,
        }[msg.type]
        return check(msg)

    def _validate_generate_motion(self, msg: Message) -> dict[str, Any]:
        body, lim = msg.body, self.limits
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise _Request("bad_request", "generate_motion needs body.prompt (a non-empty string)")
        if len(prompt) > lim.max_prompt_chars:
            raise _Request("too_large", f"prompt has {len(prompt)} characters, limit {lim.max_prompt_chars}")
        seconds = _number(body, "seconds", 4.0)
        if not lim.min_seconds <= seconds <= lim.max_seconds:
            raise _Request("bad_request", f"seconds {seconds} not in {lim.min_seconds}..{lim.max_seconds}")
        seed = body.get("seed", 0)
        if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63:
            raise _Request("bad_request", "seed must be a non-negative integer")
        fps = _number(body, "fps", 30.0)
        if not lim.min_fps <= fps <= lim.max_fps:
            raise _Request("bad_request", f"fps {fps} not in {lim.min_fps}..{lim.max_fps}")
        constraints = _constraints(msg, round(seconds * fps), fps)  # the only frames it takes
        return {
            "prompt": prompt.strip(),
            "seconds": seconds,
            "seed": seed,
            "fps": fps,
            "constraints": constraints,
        }

    def _validate_analyze(self, msg: Message) -> dict[str, Any]:
        images = self._images(msg)
        if len(msg.frames) != len(images):
            raise _Request("bad_request", "analyze takes only frames named 'image'")
        return {"images": images}

    def _validate_render(self, msg: Message) -> dict[str, Any]:
        images = self._images(msg)
        mbody = msg.body.get("motion", {})
        options = msg.body.get("options", {})
        if not isinstance(mbody, dict) or not isinstance(options, dict):
            raise _Request("bad_request", "render needs body.motion and body.options as objects")
        try:
            motion = MotionPayload.from_message(msg, mbody)
        except ProtocolError as exc:
            raise _Request(exc.code, exc.message) from None
        if motion.num_frames > self.limits.max_motion_frames:
            raise _Request(
                "too_large", f"motion has {motion.num_frames} frames, limit {self.limits.max_motion_frames}"
            )
        if len(msg.frames) != len(images) + 2:
            raise _Request("bad_request", "render takes frames named 'image', 'poses' and 'trans' only")
        size = options.get("size", 512)
        limit = self.limits.max_render_size
        if not isinstance(size, int) or isinstance(size, bool) or not 64 <= size <= limit:
            raise _Request("bad_request", f"options.size must be an integer in 64..{limit}")
        camera = options.get("camera", "follow")
        if camera not in CAMERA_MODES:
            raise _Request("bad_request", f"options.camera must be one of {', '.join(CAMERA_MODES)}")
        return {"images": images, "motion": motion, "options": options}

    def _images(self, msg: Message) -> list[bytes]:
        from PIL import Image, UnidentifiedImageError

        images = msg.frames_named("image")
        if not images:
            raise _Request(
                "bad_request", f"{msg.type} needs at least one frame named 'image' (PNG or JPEG bytes)"
            )
        if len(images) > self.limits.max_images:
            raise _Request("too_large", f"{len(images)} images, limit {self.limits.max_images}")
        for i, data in enumerate(images):
            if not isinstance(data, bytes):
                raise _Request("bad_array", f"image {i}: must be dtype 'bytes' (the encoded PNG/JPEG file)")
            try:  # reads the header only: size check before any decoding
                with Image.open(io.BytesIO(data)) as img:
                    fmt, (w, h) = img.format, img.size
            except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
                raise _Request("bad_request", f"image {i}: not a readable PNG or JPEG") from None
            if fmt not in ("PNG", "JPEG"):
                raise _Request("bad_request", f"image {i}: {fmt} is not accepted, send PNG or JPEG")
            if w * h > self.limits.max_image_pixels:
                raise _Request(
                    "too_large", f"image {i}: {w}x{h} pixels, limit {self.limits.max_image_pixels}"
                )
        return images  # type: ignore[return-value]

    # --- workers ---------------------------------------------------------------------------------
    def _start_worker(self, slot: int) -> threading.Thread:
        t = threading.Thread(target=self._worker, args=(slot,), name=f"vmclip-worker-{slot}", daemon=True)
        t.start()
        return t

    def workers_alive(self) -> int:
        return sum(t.is_alive() for t in self._workers)

    def _supervise(self) -> None:
        """Replace a worker thread that died (I/O thread). The job it was running gets `internal`."""
        if self._stop.is_set():
            return
        for slot, thread in enumerate(self._workers):
            if thread.is_alive():
                continue
            job, self._running[slot] = self._running[slot], None
            log.error(
                "worker %d died%s; starting a replacement", slot, f" in job {job.id[:12]}" if job else ""
            )
            if job is not None:
                self._forget(job)
                if not job.answered:
                    job.answered = True
                    self._send(
                        job.identity, error_frames("internal", "the worker running this job died", job.id)
                    )
                    self._log(job.type, job.client, job.id, job.created, "error internal (worker died)")
            self.workers_restarted += 1
            self._workers[slot] = self._start_worker(slot)

    def _worker(self, slot: int) -> None:
        push = self._ctx.socket(zmq.PUSH)
        push.setsockopt(zmq.LINGER, 0)
        push.connect(self._pipe)
        try:
            while not self._stop.is_set():
                job = self._queue.get()
                if job is None:
                    return
                if job.cancel.is_set():
                    self._forget(job)
                    continue
                self._running[slot] = job
                try:
                    self._run(job, push)
                except Exception:  # noqa: BLE001 - outside the job's own guard: answer it, or die
                    log.exception("worker %d: job %s failed outside its guard", slot, _printable(job.id, 12))
                    reply = error_frames("internal", "the job failed in the server", job.id)
                    push.send_multipart([job.id.encode(), b"end", *reply])  # if this fails too, the
                    # thread ends and _supervise answers the job and starts a fresh worker
                self._running[slot] = None
        finally:
            push.close(linger=0)

    def _run(self, job: Job, push: zmq.Socket) -> None:
        """Run one job and hand its terminal reply to the I/O thread; any exception becomes an error reply."""
        job.state, job.started, job.message = "running", time.monotonic(), "running"
        try:
            reply = self._execute(job, self._progress_fn(job, push))
        except JobCancelled:
            reply = error_frames("cancelled", "the job was cancelled", job.id)
        except StageUnavailable as exc:
            reply = error_frames("unavailable", str(exc), job.id)
        except VmclipError as exc:  # the stage's own one-line explanation of bad input
            reply = error_frames("bad_input", str(exc), job.id)
        except Exception as exc:  # noqa: BLE001 - one crashed job must not take the worker down
            log.exception("job %s (%s) crashed", _printable(job.id, 12), job.type)
            reply = error_frames("internal", f"{type(exc).__name__}: {exc}"[:500], job.id)
        if job.cancel.is_set() and not job.answered:
            reply = error_frames("cancelled", "the job was cancelled", job.id)
        job.state = "finished"
        push.send_multipart([job.id.encode(), b"end", *reply])

    def _progress_fn(self, job: Job, push: zmq.Socket) -> Callable[..., None]:
        """The stages' progress callback: records progress, forwards it (at most ~20 a second), and
        raises JobCancelled once the job is cancelled, so every stage that reports progress stops."""
        last_sent = [0.0]

        def progress(*args: Any, **kwargs: Any) -> None:
            fraction, message = _progress_args(args, kwargs)
            if fraction is not None:
                job.fraction = min(1.0, max(0.0, fraction))
            if message:
                job.message = message[:200]
            if job.cancel.is_set():
                raise JobCancelled()
            now = time.monotonic()
            if now - last_sent[0] >= 0.05 or job.fraction >= 1.0:
                last_sent[0] = now
                body = {
                    "job_id": job.id,
                    "state": "running",
                    "fraction": job.fraction,
                    "message": job.message,
                }
                push.send_multipart([job.id.encode(), b"progress", *encode("progress", job.id, body)])

        return progress

    def _execute(self, job: Job, progress: Callable[..., None]) -> list[bytes]:
        """The job's stage call and its `result` reply."""
        p = job.params
        if job.type == "generate_motion":
            held = {"constraints": p["constraints"]} if p.get("constraints") is not None else {}
            motion = self.pipeline.generate_motion(
                p["prompt"], p["seconds"], p["seed"], p["fps"], progress=progress, cancel=job.cancel, **held
            )
            body, frames = motion.to_wire()
            return encode("result", job.id, body, frames)
        if job.type == "analyze":
            result = self.pipeline.analyze(p["images"], progress=progress, cancel=job.cancel)
            # A pipeline may add binary frames (the fitted body) by returning (body, frames).
            body, frames = result if isinstance(result, tuple) else (result, [])
            return encode("result", job.id, body, frames)
        video = self.pipeline.render(
            p["images"], p["motion"], p["options"], progress=progress, cancel=job.cancel
        )
        return encode(
            "result", job.id, {"bytes": len(video), "media": "video/mp4"}, [("video", video, "video/mp4")]
        )


def _heartbeat_s(msg: Message) -> float | None:
    return msg.heartbeat_ms / 1000.0 if msg.heartbeat_ms is not None else None


def _printable(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, control and bidi-override characters shown as '?': a client
    chooses its name and ids, and must not be able to forge or garble the server's log lines."""
    return "".join(c if c.isprintable() else "?" for c in text[:limit])


CONSTRAINT_FRAMES = {"constraint_poses": "<f4", "constraint_trans": "<f4", "constraint_mask": "|u1"}


def _constraints(msg: Message, frames: int, fps: float) -> MotionConstraints | None:
    """A generate_motion request's optional constraint frames, validated (None when it has none)."""
    names = [name for name, _ in msg.frames]
    if not names:
        return None
    if sorted(names) != sorted(CONSTRAINT_FRAMES):
        raise _Request(
            "bad_request",
            "generate_motion takes either no frames or each of constraint_poses, constraint_trans and "
            f"constraint_mask once, not {names[:6]}",
        )
    arrays = {name: msg.frame(name) for name in CONSTRAINT_FRAMES}
    shapes = {
        "constraint_poses": [(frames, 24, 3)],
        "constraint_trans": [(frames, 3)],
        "constraint_mask": [(frames, 25), (frames,)],
    }
    for name, dtype in CONSTRAINT_FRAMES.items():
        arr = arrays[name]
        if not isinstance(arr, np.ndarray) or arr.dtype != np.dtype(dtype):
            raise _Request("bad_array", f"{name} must have dtype {dtype!r}")
        if arr.shape not in shapes[name]:
            want = " or ".join(str(list(s)) for s in shapes[name])
            raise _Request(
                "bad_array",
                f"{name} has shape {list(arr.shape)}, expected {want} "
                f"(one row per output frame: seconds x fps = {frames})",
            )
    try:
        held = MotionConstraints.create(
            arrays["constraint_poses"], arrays["constraint_trans"], arrays["constraint_mask"], frames
        )
        held.check_reachable(fps)
    except InputError as exc:
        raise _Request("bad_request", str(exc)) from None
    return held


def _number(body: dict[str, Any], key: str, default: float) -> float:
    value = finite_number(body.get(key, default))
    if value is None:
        raise _Request("bad_request", f"{key} must be a finite number")
    return value


def _progress_args(args: tuple, kwargs: dict) -> tuple[float | None, str]:
    """Accept the progress call shapes stages use: (fraction, message), (done, total), (message,)."""
    fraction = kwargs.get("fraction")
    message = str(kwargs.get("message", "") or "")
    nums = [a for a in args if isinstance(a, int | float) and not isinstance(a, bool)]
    texts = [a for a in args if isinstance(a, str)]
    if texts and not message:
        message = texts[0]
    if fraction is None and nums:
        if len(nums) >= 2 and nums[1] > 0:
            fraction = nums[0] / nums[1]
        else:
            fraction = float(nums[0])
    return (float(fraction) if fraction is not None and math.isfinite(fraction) else None), message
