"""Talking to the backend without blocking Blender: the protocol client runs in a worker thread, the main
thread polls the job (from a modal operator's timer events, or directly when run from a script)."""

from __future__ import annotations

import os
import queue
import re
import threading
import time
from collections.abc import Callable
from typing import Any

try:  # the copy vendored by build_addon.py into the add-on package (its client needs pyzmq)
    from . import vmclip_protocol as protocol
    from .vmclip_protocol import client as _client  # noqa: F401 - fail here when pyzmq is missing
except ImportError:  # running from a source checkout: the package installed beside the backend
    try:
        import vmclip_protocol as protocol
        from vmclip_protocol import client as _client  # noqa: F401
    except ImportError as exc:  # pyzmq missing in this Blender: reported when a request is made
        protocol = None
        _IMPORT_ERROR = exc


def protocol_module():
    if protocol is None:
        raise BackendMissing(
            f"the add-on cannot talk to the backend: {_IMPORT_ERROR} "
            "(install the add-on from the built zip, which bundles pyzmq)"
        )
    return protocol


class BackendMissing(Exception):
    pass


def describe_error(exc: BaseException, address: str = "") -> str:
    """One line for Blender's report area; never a traceback."""
    if protocol is not None:
        if isinstance(exc, protocol.AuthenticationFailed):
            return f"Backend at {address} refused the connection: {exc}"
        if isinstance(exc, protocol.ServerUnavailable):
            return f"Backend not reachable at {address} (is `vmclip serve` running there?): {exc}"
        if isinstance(exc, protocol.RemoteError):
            return f"Backend error ({exc.code}): {exc.message}"
        if isinstance(exc, protocol.ProtocolError):
            return f"Backend sent a malformed reply ({exc.code}): {exc.message}"
    if isinstance(exc, BackendMissing | InputProblem):
        return str(exc)
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc)
    return f"{type(exc).__name__}: {exc}"


class InputProblem(Exception):
    """Something the user has to fix in the panel (no images, empty prompt, unsaved file...)."""


def make_client(prefs) -> Any:
    """A protocol client from the add-on preferences (address, timeout, CURVE keys)."""
    proto = protocol_module()
    server_key = prefs.server_public_key.strip() or None
    client_key = prefs.client_secret_key_file.strip() or None
    if client_key is not None:
        client_key = os.path.expanduser(client_key)
    address = prefs.address.strip()
    if not re.fullmatch(r"(tcp://[^\s:]+:\d+|tcp://\[[0-9a-fA-F:.]+\]:\d+|ipc://\S+)", address):
        raise InputProblem(f"Backend address {address!r} is not a ZeroMQ address (expected tcp://HOST:PORT)")
    if client_key is not None and server_key is None:
        raise InputProblem("A client key file is set but the server's public key is empty (Preferences)")
    try:
        return proto.Client(
            address,
            timeout_s=float(prefs.timeout_s),
            retries=int(prefs.retries),
            server_key=server_key,
            client_key=client_key,
            name="blender-vmclip",
        )
    except ValueError as exc:
        raise InputProblem(f"Backend settings: {exc}") from None


class Job:
    """One request running in a worker thread.

    `work(client, report, job_id)` runs in the thread; `report(fraction, message)` queues progress
    for the main thread. `poll()` (main thread) drains progress and says whether the work has
    finished; `result` or `error` then hold the outcome. `cancel()` asks the server to stop the job."""

    def __init__(self, label: str, client, work: Callable[..., Any]) -> None:
        self.label = label
        self.client = client
        self.job_id = client.new_job_id()
        self.result: Any = None
        self.error: BaseException | None = None
        self.fraction = 0.0
        self.message = f"{label}: sending request"
        self.started = time.monotonic()
        self.cancel_requested = threading.Event()
        self._updates: queue.SimpleQueue = queue.SimpleQueue()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(work,), name=f"vmclip-{label}", daemon=True)

    def start(self) -> Job:
        self._thread.start()
        return self

    def _report(self, fraction: float, message: str) -> None:
        if self.cancel_requested.is_set():
            raise Cancelled("cancelled by the user")
        self._updates.put((float(fraction), str(message)))

    def _run(self, work) -> None:
        try:
            self.result = work(self.client, self._report, self.job_id)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, reported there
            self.error = exc
        finally:
            self.client.close()
            self._done.set()

    def poll(self) -> bool:
        """Main thread: take queued progress; True once the worker has finished."""
        while True:
            try:
                self.fraction, msg = self._updates.get_nowait()
            except queue.Empty:
                break
            self.message = f"{self.label}: {msg}" if msg else self.label
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def cancel(self) -> None:
        """Ask the server to stop; the worker then ends with a 'cancelled' error."""
        self.cancel_requested.set()
        threading.Thread(target=self._send_cancel, daemon=True).start()

    def _send_cancel(self) -> None:
        try:
            self.client.cancel(self.job_id)
        except Exception:  # noqa: BLE001 - the job may already be over; nothing to report
            pass

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started


class Cancelled(Exception):
    pass


# The one job in flight (the panel shows it; operators refuse to start a second one).
ACTIVE: dict[str, Job | None] = {"job": None}


def active_job() -> Job | None:
    return ACTIVE["job"]
