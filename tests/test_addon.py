"""The Blender add-on, headless with the `bpy` module: every test runs Blender in its own subprocess (a
fresh Blender, BLENDER_USER_RESOURCES in a temporary folder), installs the built zip and talks to a
real backend process over loopback ZeroMQ.

Requests and replies are observed with `Relay`, a small ZeroMQ relay between the add-on and the
server that forwards every message unchanged and keeps a copy (like a network tap), so the tests can
compare what the add-on keyed with what the server sent, and what the add-on sent with what it keyed.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zmq
from scipy.spatial.transform import Rotation
from vmclip_protocol import Client, MotionPayload, RemoteError, ServerUnavailable, decode
from vmclip_protocol.wire import MAX_REPLY_HEADER_BYTES

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
import build_addon  # noqa: E402

pytest.importorskip("bpy", reason="the bpy module (pip install bpy==5.0.1) runs the add-on headless")

ADDON_MODULE = "bl_ext.user_default.videomotionclip"
MARK = "@@VMCLIP_RESULT@@"
# Motion frame (Y up, facing +Z) -> Blender (Z up, facing -Y); the tests' own copy of the convention.
C = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])


# --- helpers --------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def addon_zip(tmp_path_factory) -> Path:
    """The add-on built exactly as users get it (offline: bundled wheels come from .cache/wheels)."""
    return build_addon.build(tmp_path_factory.mktemp("dist"), offline=True, log=lambda *_: None)


PRELUDE = '''
import json, sys, os
import bpy, addon_utils
import numpy as np
MARK = {mark!r}
_r = bpy.ops.extensions.package_install_files(filepath={zip!r}, repo="user_default", enable_on_install=True)
assert _r == {{"FINISHED"}}, _r
ADDON = sys.modules[{module!r}]
prefs = bpy.context.preferences.addons[{module!r}].preferences
settings = bpy.context.scene.vmclip
state = bpy.context.window_manager.vmclip_state
from importlib import import_module
rig = import_module({module!r} + ".rig")
compat = import_module({module!r} + ".compat")
operators = import_module({module!r} + ".operators")
backend = import_module({module!r} + ".backend")
keying = import_module({module!r} + ".keying")
settings.reduce_keys = False  # one key per frame, to compare exactly (thinning: test_addon_rigs.py)
bpy.context.scene.render.fps = 30
bpy.context.scene.frame_start = 1

def emit(obj):
    print(MARK + json.dumps(obj), flush=True)

def op_error(fn, *args, **kwargs):
    """Run an operator; return the error text Blender turns its ERROR report into (None if it ran)."""
    try:
        fn(*args, **kwargs)
    except RuntimeError as exc:
        return str(exc)
    return None

def keyed_quaternions(arm):
    """Raw keyframe values: {{bone: (frames, 4)}} and root location (frames, 3), plus key frames."""
    fcs = compat.action_fcurves(keying.current_take(arm) or arm.animation_data.action, arm)
    out, frames = {{}}, None
    for fc in fcs:
        bone = fc.data_path.split('"')[1]
        kind = fc.data_path.rsplit(".", 1)[1]
        co = np.zeros(2 * len(fc.keyframe_points))
        fc.keyframe_points.foreach_get("co", co)
        co = co.reshape(-1, 2)
        frames = co[:, 0].tolist()
        out.setdefault((bone, kind), {{}})[fc.array_index] = co[:, 1].tolist()
    quats = {{b: [v[i] for i in range(4)] for (b, k), v in out.items() if k == "rotation_quaternion"}}
    loc = [out[("pelvis", "location")][i] for i in range(3)]
    rest = {{b.name: [list(r) for r in b.matrix_local.to_3x3()] for b in arm.data.bones}}
    head = list(arm.data.bones["pelvis"].head_local)
    return {{"quats": quats, "loc": loc, "frames": frames, "rest": rest, "root_head": head}}
'''


def run_bpy(script: str, tmp_path: Path, addon_zip: Path, timeout: float = 240) -> dict:
    """Run `script` in a fresh Blender (bpy module) with the add-on installed; return what it emitted."""
    res = tmp_path / "blender-user"
    res.mkdir(exist_ok=True)
    path = tmp_path / "script.py"
    path.write_text(
        PRELUDE.format(mark=MARK, zip=str(addon_zip), module=ADDON_MODULE) + textwrap.dedent(script)
    )
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(res))
    proc = subprocess.run(
        [sys.executable, str(path)], capture_output=True, text=True, timeout=timeout, env=env, cwd=tmp_path
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "Traceback" not in out, out[-4000:]  # errors reach the user as reports, never as tracebacks
    lines = [line[len(MARK) :] for line in proc.stdout.splitlines() if line.startswith(MARK)]
    assert lines, out[-4000:]
    result = json.loads(lines[-1])
    result["_output"] = out
    return result


class Relay:
    """Forwards ZeroMQ messages between clients and a server unchanged, keeping a copy of each.

    Each client identity gets its own upstream DEALER, so the server still sees separate clients."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self._ctx = zmq.Context()
        self.front = self._ctx.socket(zmq.ROUTER)
        self.front.setsockopt(zmq.LINGER, 0)
        port = self.front.bind_to_random_port("tcp://127.0.0.1")
        self.address = f"tcp://127.0.0.1:{port}"
        self.sent: list = []  # decoded client -> server messages
        self.received: list = []  # decoded server -> client messages
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        peers: dict[bytes, zmq.Socket] = {}
        owners: dict[zmq.Socket, bytes] = {}
        poller = zmq.Poller()
        poller.register(self.front, zmq.POLLIN)
        while not self._stop.is_set():
            for sock, _ in poller.poll(50):
                if sock is self.front:
                    ident, *frames = self.front.recv_multipart()
                    if ident not in peers:
                        up = self._ctx.socket(zmq.DEALER)
                        up.setsockopt(zmq.LINGER, 0)
                        up.connect(self.upstream)
                        peers[ident], owners[up] = up, ident
                        poller.register(up, zmq.POLLIN)
                    self.sent.append(decode(frames))
                    peers[ident].send_multipart(frames)
                else:
                    frames = sock.recv_multipart()
                    # (replies may carry headers beyond the 64 KiB of a request: an analysis)
                    self.received.append(decode(frames, max_header=MAX_REPLY_HEADER_BYTES))
                    self.front.send_multipart([owners[sock], *frames])
        for sock in peers.values():
            sock.close(0)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.front.close(0)
        self._ctx.term()

    def results(self, request_type: str) -> list:
        ids = {m.id for m in self.sent if m.type == request_type}
        return [m for m in self.received if m.type == "result" and m.id in ids]


def _wait_ready(address: str, proc: subprocess.Popen, seconds: float = 90) -> dict:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stdout.read() if proc.stdout else ''}")
        try:
            with Client(address, timeout_s=1.0, retries=0) as c:
                return c.hello()
        except ServerUnavailable:
            time.sleep(0.3)
    raise RuntimeError(f"no server at {address} after {seconds} s")


def _start(cmd: list[str]) -> subprocess.Popen:
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO)


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


@pytest.fixture(scope="module")
def vmclip_server():
    """`vmclip serve` with the real pipeline, on a free loopback port."""
    pytest.importorskip("vmclip.server", reason="the backend server is not installed")
    address = f"tcp://127.0.0.1:{free_port()}"
    proc = _start(
        [sys.executable, "-m", "vmclip", "serve", "--bind", address, "--workers", "1", "--no-preload"]
    )
    try:
        hello = _wait_ready(address, proc)
        yield address, hello
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def motion_server(vmclip_server, tmp_path_factory):
    """A server that answers generate_motion: the real `vmclip serve` once the text-to-motion model is
    installed; until then the server tests' replay pipeline (windows of a real motion file, served by
    the real Server class in its own process), so the add-on side is still tested end to end."""
    address, _ = vmclip_server
    try:
        with Client(address, timeout_s=60.0, retries=0) as c:
            c.generate_motion("a person walks forward", 1.0, 0, 30.0)
        yield address, "real text-to-motion"
        return
    except RemoteError as exc:
        if exc.code != "unavailable":
            raise
        reason = exc.message
    support = REPO / "tests" / "server_support.py"
    if not support.is_file():
        pytest.skip(f"text-to-motion unavailable ({reason}) and no replay server")
    sys.path.insert(0, str(support.parent))
    from server_support import write_test_motion

    motion = write_test_motion(tmp_path_factory.mktemp("motion") / "walk.npz")
    replay = f"tcp://127.0.0.1:{free_port()}"
    proc = _start([sys.executable, str(support), "--bind", replay, "--motion", str(motion)])
    try:
        _wait_ready(replay, proc)
        print(f"\nNOTE: generate_motion served by the replay pipeline ({reason})")
        yield replay, "replay pipeline"
    finally:
        _stop(proc)


@pytest.fixture
def relay_to():
    relays = []

    def make(address: str) -> Relay:
        relays.append(Relay(address))
        return relays[-1]

    yield make
    for r in relays:
        r.close()


def keys_to_motion(data: dict, names) -> tuple[np.ndarray, np.ndarray]:
    """The tests' own inverse of the keying: pose-bone quaternions -> SMPL local rotations."""
    local = []
    for name in names:
        q = np.array(data["quats"][name]).T  # (frames, 4) w x y z
        b = np.array(data["rest"][name])
        basis = Rotation.from_quat(q[:, [1, 2, 3, 0]]).as_matrix()
        local.append(C.T @ b @ basis @ b.T @ C)
    loc = np.array(data["loc"]).T
    b0 = np.array(data["rest"][names[0]])
    trans = (C.T @ (np.array(data["root_head"]) + loc @ b0.T).T).T
    return np.stack(local, 1), trans


def angle_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    rel = np.swapaxes(a, -1, -2) @ b  # (arccos of the trace loses precision near 0; quaternions do not)
    return Rotation.from_matrix(rel.reshape(-1, 3, 3)).magnitude().reshape(rel.shape[:-2])


# --- tests ----------------------------------------------------------------------------------------


def test_install_register_unregister_twice(tmp_path, addon_zip):
    result = run_bpy(
        f"""
        import io, contextlib
        seen = []
        def registered():
            return [hasattr(bpy.types, "VMCLIP_PT_main"), hasattr(bpy.types.Scene, "vmclip"),
                    hasattr(bpy.types.WindowManager, "vmclip_state"),
                    hasattr(bpy.types, "VMCLIP_OT_generate_motion")]
        seen.append(registered())
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            for _ in range(2):
                addon_utils.disable({ADDON_MODULE!r}, default_set=True)
                seen.append(registered())
                addon_utils.enable({ADDON_MODULE!r}, default_set=True)
                seen.append(registered())
        panel = bpy.types.VMCLIP_PT_main
        emit({{"seen": seen, "stderr": err.getvalue(), "category": panel.bl_category,
              "space": panel.bl_space_type, "region": panel.bl_region_type,
              "prefs_address": bpy.context.preferences.addons[{ADDON_MODULE!r}].preferences.address,
              "vendored": backend.protocol.__name__}})
    """,
        tmp_path,
        addon_zip,
    )
    on, off = [True, True, True, True], [False, False, False, False]
    assert result["seen"] == [on, off, on, off, on]
    assert result["stderr"] == ""
    assert (result["category"], result["space"], result["region"]) == ("VideoMotionCLIP", "VIEW_3D", "UI")
    assert result["prefs_address"] == "tcp://127.0.0.1:5555"
    assert result["vendored"] == f"{ADDON_MODULE}.vmclip_protocol"  # the zip's own copy, not the venv's


def test_check_connection_reads_hello(tmp_path, addon_zip, vmclip_server):
    address, hello = vmclip_server
    result = run_bpy(
        f"""
        prefs.address = {address!r}
        bpy.ops.vmclip.check_connection()
        emit({{"connection": state.connection, "text": state.connection_text, "status": state.status}})
    """,
        tmp_path,
        addon_zip,
    )
    assert result["connection"] == "CONNECTED"
    assert result["text"] == f"connected ({hello['device']})"
    assert "protocol 1" in result["status"] and hello["server"] in result["status"]


def test_generate_keys_equal_returned_motion(tmp_path, addon_zip, motion_server, relay_to):
    address, kind = motion_server
    relay = relay_to(address)
    result = run_bpy(
        f"""
        prefs.address = {relay.address!r}
        settings.prompt = "a person walks forward and waves"
        settings.seconds, settings.seed = 2.0, 7
        settings.plant_feet = False  # (the reply's own legs: planting turns them, tests/test_addon_rigs.py)
        bpy.context.scene.frame_start = 11
        assert bpy.ops.vmclip.generate_motion() == {{"FINISHED"}}
        arm = settings.armature
        first = keying.current_take(arm).name
        data = keyed_quaternions(arm)
        rotation_modes = sorted({{pb.rotation_mode for pb in arm.pose.bones}})
        body = rig.body_of(arm)
        # A second generate, from pose mode: new action, the first one kept (fake user) and untouched,
        # and the artist stays in pose mode.
        settings.seed = 8
        bpy.ops.object.mode_set(mode="POSE")
        assert bpy.ops.vmclip.generate_motion() == {{"FINISHED"}}
        mode_after = bpy.context.mode
        actions = {{a.name: a.use_fake_user for a in bpy.data.actions}}
        emit({{"data": data, "first": first, "second": keying.current_take(arm).name, "actions": actions,
              "armatures": [o.name for o in bpy.data.objects if o.type == "ARMATURE"],
              "bones": [b.name for b in arm.data.bones], "modes": rotation_modes,
              "body": body.name if body else None, "range": [bpy.context.scene.frame_start,
              bpy.context.scene.frame_end], "status": state.status, "connection": state.connection,
              "prompt_prop": keying.current_take(arm).get("vmclip_prompt"), "mode_after": mode_after,
              "tracks": [(t.name, t.mute) for t in arm.animation_data.nla_tracks],
              "tweak": arm.animation_data.action.name}})
    """,
        tmp_path,
        addon_zip,
    )
    replies = relay.results("generate_motion")
    assert len(replies) == 2, f"{kind}: {len(replies)} generate_motion results"
    requests = [m for m in relay.sent if m.type == "generate_motion"]
    assert requests[0].body["prompt"] == "a person walks forward and waves"
    assert (requests[0].body["seconds"], requests[0].body["seed"], requests[0].body["fps"]) == (2.0, 7, 30.0)
    motion = MotionPayload.from_message(next(m for m in replies if m.id == requests[0].id))
    names = list(motion.joint_names)
    assert sorted(result["bones"]) == sorted(names)
    local, trans = keys_to_motion(result["data"], names)
    sent = Rotation.from_rotvec(motion.poses.reshape(-1, 3)).as_matrix().reshape(-1, 24, 3, 3)
    err = angle_between(local, sent)
    assert err.max() < 1e-4, f"{kind}: keyed rotations differ from the reply by {err.max():.2e} rad"
    assert np.abs(trans - motion.trans).max() < 1e-4
    n = motion.num_frames
    assert result["data"]["frames"] == [11.0 + i for i in range(n)]
    assert result["range"] == [11, 11 + n - 1]
    assert result["modes"] == ["QUATERNION"]
    assert result["body"] == "VMCLIP_Body"
    assert result["armatures"] == ["VMCLIP_Armature"]  # the second generate reused the rig
    assert result["first"] != result["second"]
    # both takes on the NLA (the first muted, never removed) under one tweak layer
    assert result["actions"] == {result["first"]: True, result["second"]: True, result["tweak"]: True}
    assert result["tracks"] == [["VMCLIP Take 1", True], ["VMCLIP Take 2", False]]
    assert result["connection"] == "CONNECTED" and f"Generated {n} frames" in result["status"]
    assert result["prompt_prop"] == "a person walks forward and waves"
    assert result["mode_after"] == "POSE"


def test_generate_at_scene_frame_rate(tmp_path, addon_zip, motion_server, relay_to):
    """A 24 fps scene asks the backend for 24 fps and gets one key per scene frame."""
    relay = relay_to(motion_server[0])
    result = run_bpy(
        f"""
        prefs.address = {relay.address!r}
        bpy.context.scene.render.fps = 24
        settings.prompt, settings.seconds = "a person jumps", 1.5
        bpy.ops.vmclip.generate_motion()
        emit({{"frames": keyed_quaternions(settings.armature)["frames"], "end": bpy.context.scene.frame_end}})
    """,
        tmp_path,
        addon_zip,
    )
    (request,) = [m for m in relay.sent if m.type == "generate_motion"]
    assert request.body["fps"] == 24.0
    (reply,) = relay.results("generate_motion")
    n = MotionPayload.from_message(reply).num_frames
    assert MotionPayload.from_message(reply).fps == 24.0
    assert result["frames"] == [1.0 + i for i in range(n)] and result["end"] == n


def test_modal_path_polls_the_worker(tmp_path, addon_zip, motion_server):
    """The panel's path: invoke starts a worker thread and returns at once; every timer event calls
    modal(), which polls the job without blocking; the last one keys the armature. (The bpy module
    has no event loop, so the timer events are delivered here by hand; the GUI test runs the real one.)"""
    result = run_bpy(
        f"""
        import time, types
        prefs.address = {motion_server[0]!r}
        settings.prompt = "a person waves"
        Op = operators.VMCLIP_OT_generate_motion
        reports = []
        class StandIn:  # the operator's own methods, on a plain object standing in for the instance
            pass
        for klass in reversed(Op.__mro__):
            for name, value in vars(klass).items():
                if callable(value) and not name.startswith("__") and name != "poll":
                    setattr(StandIn, name, value)
        StandIn.label = Op.label
        StandIn.report = lambda self, kind, msg: reports.append((sorted(kind), msg))
        op = StandIn()
        ctx = bpy.context
        t0 = time.monotonic()
        job = op._start(ctx)  # what invoke() does before handing over to the event loop
        op._job, op._timer = job, ctx.window_manager.event_timer_add(0.1, window=ctx.window)
        started_in = time.monotonic() - t0
        busy_seen = state.busy and backend.active_job() is job
        ticks, outcome, max_tick = 0, None, 0.0
        while outcome is None or outcome == {{"PASS_THROUGH"}}:
            time.sleep(0.02)
            t = time.monotonic()
            outcome = Op.modal(op, ctx, types.SimpleNamespace(type="TIMER", value="NOTHING"))
            max_tick = max(max_tick, time.monotonic() - t)
            ticks += 1
            other = Op.modal(op, ctx, types.SimpleNamespace(type="MOUSEMOVE", value="NOTHING"))
            assert other == {{"PASS_THROUGH"}}  # the rest of Blender keeps its events
        keyed = settings.armature is not None and keying.current_take(settings.armature) is not None
        busy_after = state.busy
        # Loading another file while a request runs (Blender drops modal operators then): not stuck busy.
        op._start(ctx)
        bpy.ops.wm.read_homefile(use_empty=True)  # (settings/state above now point at freed data)
        after_load = [backend.active_job() is None, bpy.context.window_manager.vmclip_state.busy]
        emit({{"outcome": sorted(outcome), "ticks": ticks, "started_in": started_in, "busy_seen": busy_seen,
              "after_load": after_load, "max_tick": max_tick, "keyed": keyed, "busy_after": busy_after,
              "reports": reports}})
    """,
        tmp_path,
        addon_zip,
    )
    assert result["outcome"] == ["FINISHED"] and result["keyed"] and result["busy_seen"]
    assert not result["busy_after"]
    assert result["started_in"] < 0.5  # invoke returns at once; the request runs in the worker
    assert result["max_tick"] < 0.5  # a timer tick never waits for the backend (the last one keys)
    assert result["reports"] and result["reports"][-1][0] == ["INFO"]
    assert result["after_load"] == [True, False]


def test_cancel_from_modal_escape(tmp_path, addon_zip, motion_server):
    """Esc during a request cancels it: the operator ends CANCELLED and nothing is keyed."""
    result = run_bpy(
        f"""
        import time, types, threading
        prefs.address = {motion_server[0]!r}
        settings.prompt = "a person waves"
        Op = operators.VMCLIP_OT_generate_motion
        class StandIn:
            pass
        for klass in reversed(Op.__mro__):
            for name, value in vars(klass).items():
                if callable(value) and not name.startswith("__") and name != "poll":
                    setattr(StandIn, name, value)
        StandIn.label = Op.label
        reports = []
        StandIn.report = lambda self, kind, msg: reports.append((sorted(kind), msg))
        op = StandIn()
        ctx = bpy.context
        job = op._start(ctx)
        op._job, op._timer = job, ctx.window_manager.event_timer_add(0.1, window=ctx.window)
        Op.modal(op, ctx, types.SimpleNamespace(type="ESC", value="PRESS"))
        outcome = {{"PASS_THROUGH"}}
        while outcome == {{"PASS_THROUGH"}}:
            time.sleep(0.02)
            outcome = Op.modal(op, ctx, types.SimpleNamespace(type="TIMER", value="NOTHING"))
        emit({{"outcome": sorted(outcome), "armature": settings.armature is not None, "reports": reports,
              "busy": state.busy, "status": state.status}})
    """,
        tmp_path,
        addon_zip,
    )
    # The reply may win the race against the cancel; either way the state is consistent.
    if result["outcome"] == ["CANCELLED"]:
        assert not result["armature"] and "cancelled" in result["status"]
    else:
        assert result["outcome"] == ["FINISHED"] and result["armature"]
    assert not result["busy"]


def test_error_cases_are_reports_not_tracebacks(tmp_path, addon_zip, vmclip_server):
    address, _ = vmclip_server
    ctx = zmq.Context()
    silent = ctx.socket(zmq.ROUTER)  # accepts connections, never answers: a hung backend
    silent_port = silent.bind_to_random_port("tcp://127.0.0.1")
    try:
        result = run_bpy(
            f"""
            out = {{}}
            prefs.timeout_s, prefs.retries = 0.6, 0
            # empty prompt: the button is disabled and says why
            settings.prompt = "   "
            out["poll_prompt"] = bpy.ops.vmclip.generate_motion.poll()
            out["empty_prompt"] = op_error(bpy.ops.vmclip.generate_motion)
            # unreachable backend (nothing listens on that port)
            settings.prompt = "a person waves"
            prefs.address = "tcp://127.0.0.1:{free_port()}"
            out["unreachable"] = op_error(bpy.ops.vmclip.generate_motion)
            out["unreachable_state"] = [state.connection, state.status_is_error, state.status, state.busy]
            # a backend that accepts the connection but never answers
            prefs.address = "tcp://127.0.0.1:{silent_port}"
            t0 = __import__("time").monotonic()
            out["timeout"] = op_error(bpy.ops.vmclip.generate_motion)
            out["timeout_s"] = __import__("time").monotonic() - t0
            # the backend's error reply (here: the prompt is longer than the server accepts)
            prefs.address = {address!r}
            prefs.timeout_s = 10
            settings.prompt = "walk " * 200
            out["error_reply"] = op_error(bpy.ops.vmclip.generate_motion)
            out["error_state"] = [state.connection, state.status_is_error, state.busy]
            # a malformed address
            prefs.address = "not an address"
            out["bad_address"] = op_error(bpy.ops.vmclip.generate_motion)
            # Bake without prerequisites: disabled, with the reason
            prefs.address = {address!r}
            out["bake_unsaved"] = op_error(bpy.ops.vmclip.bake_video)
            bpy.ops.wm.save_as_mainfile(filepath=os.path.abspath("scene.blend"))
            out["bake_no_images"] = op_error(bpy.ops.vmclip.bake_video)
            item = settings.images.add()
            item.filepath = os.path.abspath("missing.png")
            out["bake_no_motion"] = op_error(bpy.ops.vmclip.bake_video)
            settings.prompt = "x"
            arm = rig.ensure_armature(bpy.context, import_module({ADDON_MODULE!r} + ".smpl").Skeleton())
            settings.armature = arm
            rig.apply_motion(bpy.context, arm, np.zeros((5, 24, 3)), np.zeros((5, 3)) + [0, 0.9, 0], 30.0,
                             list(import_module({ADDON_MODULE!r} + ".smpl").JOINT_NAMES), "still")
            out["bake_missing_image"] = op_error(bpy.ops.vmclip.bake_video)
            out["export_ok_poll"] = bpy.ops.vmclip.export_fbx.poll()
            emit(out)
        """,
            tmp_path,
            addon_zip,
        )
    finally:
        silent.close(0)
        ctx.term()
    assert result["poll_prompt"] is False
    assert "Type a prompt first" in result["empty_prompt"]
    assert "Backend not reachable" in result["unreachable"]
    conn, is_err, status, busy = result["unreachable_state"]
    assert conn == "UNREACHABLE" and is_err and "Backend not reachable" in status and not busy
    assert "Backend not reachable" in result["timeout"] and result["timeout_s"] < 5
    assert "Backend error (too_large)" in result["error_reply"], result["error_reply"]
    assert result["error_state"][1] and not result["error_state"][2]
    assert result["bad_address"] and "Traceback" not in result["bad_address"]
    assert "Save the .blend file first" in result["bake_unsaved"]
    assert "Generate a motion first" in result["bake_no_motion"]
    assert "Add at least one source image" in result["bake_no_images"]
    assert "Source image not found" in result["bake_missing_image"]
    assert result["export_ok_poll"] is True
    assert "not a ZeroMQ address" in result["bad_address"]
    assert result["error_state"][0] == "CONNECTED"  # it answered, with an error
    for key, text in result.items():
        if isinstance(text, str) and key != "_output":
            assert text.count("\n") <= 1, f"{key}: {text!r}"  # one line each


FBX_SCRIPT = """
    from importlib import import_module
    smpl = import_module({module!r} + ".smpl")
    ctx = bpy.context
    T = 40
    t = np.arange(T) / 30.0
    poses = np.zeros((T, 24, 3))
    poses[:, 0, 1] = 0.6 * t                     # turning
    poses[:, 1, 0], poses[:, 2, 0] = -0.6 * np.sin(4 * t), 0.6 * np.sin(4 * t)
    poses[:, 4, 0] = poses[:, 5, 0] = 0.5 * (1 - np.cos(4 * t))
    poses[:, 16, 2], poses[:, 17, 2] = -1.1, 1.1   # arms down
    poses[:, 18, 1] = 0.8 * np.sin(5 * t)
    poses[:, 15] = [0.2, 0.3, -0.1]
    trans = np.stack([0.2 * t, 0.92 + 0.02 * np.cos(8 * t), 0.8 * t], -1)
    settings.prompt = "test"
    arm = rig.ensure_armature(ctx, smpl.Skeleton())
    settings.armature = arm
    rig.apply_motion(ctx, arm, poses, trans, 30.0, list(smpl.JOINT_NAMES), "walk")
    {extra}
    start, end = ctx.scene.frame_start, ctx.scene.frame_end
    ref, ref_t, names = rig.sample_motion(ctx, arm, start, end)
    {export}
    actions_before = sorted(a.name for a in bpy.data.actions)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    ctx.scene.render.fps = 30
    {reimport}
    arm2 = [o for o in bpy.data.objects if o.type == "ARMATURE"][0]
    act = arm2.animation_data.action
    r0, r1 = act.frame_range
    got, got_t, names2 = rig.sample_motion(ctx, arm2, start, end)
    emit({{"bones": sorted(b.name for b in arm2.data.bones), "range": [start, end], "act_range": [r0, r1],
          "ref": np.asarray(ref).tolist(), "got": np.asarray(got).tolist(), "ref_t": ref_t.tolist(),
          "got_t": got_t.tolist(), "meshes": [o.name for o in bpy.data.objects if o.type == "MESH"],
          "actions_before": actions_before, "n_actions": len(bpy.data.actions), "poses": poses.tolist()}})
"""


def _rot_err(a, b) -> float:
    ra = Rotation.from_rotvec(np.asarray(a).reshape(-1, 3))
    rb = Rotation.from_rotvec(np.asarray(b).reshape(-1, 3))
    return float((ra.inv() * rb).magnitude().max())


@pytest.mark.parametrize("with_body", [True, False], ids=["skinned-body", "body-deleted"])
def test_fbx_export_reimports_same_bones_rotations_and_range(tmp_path, addon_zip, with_body):
    extra = "" if with_body else "bpy.data.objects.remove(rig.body_of(arm))"
    # An artist's tweak on top of the generated keys: counts in the export (evaluated pose).
    extra += "\n    arm.pose.bones['left_elbow'].constraints.new('LIMIT_ROTATION').use_limit_y = True"
    result = run_bpy(
        FBX_SCRIPT.format(
            module=ADDON_MODULE,
            extra=extra,
            export='assert bpy.ops.vmclip.export_fbx(filepath=os.path.abspath("out.fbx")) == {"FINISHED"}',
            reimport='bpy.ops.import_scene.fbx(filepath=os.path.abspath("out.fbx"))',
        ),
        tmp_path,
        addon_zip,
    )
    assert result["bones"] == sorted(json.loads(json.dumps(list(_joint_names()))))
    assert result["act_range"] == [float(result["range"][0]), float(result["range"][1])]
    assert _rot_err(result["ref"], result["got"]) < 1e-3
    assert np.abs(np.array(result["ref_t"]) - np.array(result["got_t"])).max() < 1e-4
    assert result["n_actions"] == 1  # one take: the active action only
    assert "VMCLIP_Body" in result["meshes"]
    # The export is the evaluated pose: the constraint changed the elbow, nothing else.
    ref, keyed = np.array(result["ref"]), np.array(result["poses"])
    assert _rot_err(ref[:, 18], keyed[:, 18]) > 0.1
    assert _rot_err(np.delete(ref, 18, 1), np.delete(keyed, 18, 1)) < 1e-4


def test_bvh_export_reimports(tmp_path, addon_zip):
    result = run_bpy(
        FBX_SCRIPT.format(
            module=ADDON_MODULE,
            extra="",
            export='assert bpy.ops.vmclip.export_bvh(filepath=os.path.abspath("out.bvh")) == {"FINISHED"}',
            reimport='bpy.ops.import_anim.bvh(filepath=os.path.abspath("out.bvh"), axis_forward="Y", '
            'axis_up="Z", rotate_mode="QUATERNION", update_scene_fps=False, '
            "update_scene_duration=False)",
        ),
        tmp_path,
        addon_zip,
    )
    assert result["bones"] == sorted(_joint_names())
    assert _rot_err(result["ref"], result["got"]) < 1e-3
    assert np.abs(np.array(result["ref_t"]) - np.array(result["got_t"])).max() < 1e-3


def _joint_names():
    from vmclip.motion import JOINT_NAMES

    return JOINT_NAMES


@pytest.fixture(scope="module")
def render_server(vmclip_server, motion_server):
    """A server whose render works: the real one when its person analysis and renderer are installed,
    else the replay pipeline's (which draws the motion's joints over the photo into a real MP4)."""
    address, hello = vmclip_server
    caps = hello.get("capabilities", {})
    if all(caps.get(k, {}).get("available") for k in ("analyze", "render")):
        return address, "real renderer"
    print("\nNOTE: render served by the replay pipeline (person analysis or renderer not installed)")
    return motion_server[0], "replay pipeline"


@pytest.fixture(scope="module")
def source_photo(tmp_path_factory, render_server) -> Path:
    """A photo of a person: one from ../shared when present (the real renderer needs a real person)."""
    photo = REPO.parent / "shared" / "data" / "photos" / "iper_p009_set_a_apose.jpg"
    if photo.is_file():
        return photo
    try:  # the project's own example person, rendered at set-up
        from vmclip.render.example import example_paths

        example = Path(example_paths()["photo"])
        if example.is_file():
            return example
    except (ImportError, KeyError, OSError):
        pass
    if render_server[1] == "real renderer":
        pytest.skip("no person photo in ../shared for the real renderer")
    from PIL import Image

    path = tmp_path_factory.mktemp("photo") / "person.png"
    Image.fromarray(np.full((160, 120, 3), 128, np.uint8)).save(path)
    return path


def test_bake_sends_the_edited_pose_and_loads_the_video(
    tmp_path, addon_zip, motion_server, render_server, source_photo, relay_to
):
    gen_relay = relay_to(motion_server[0])
    render_relay = relay_to(render_server[0])
    result = run_bpy(
        f"""
        import mathutils
        scene = bpy.context.scene
        prefs.address = {gen_relay.address!r}
        settings.prompt, settings.seconds, settings.seed = "a person waves", 1.0, 3
        settings.plant_feet = False  # (compared with the reply's own legs below)
        assert bpy.ops.vmclip.generate_motion() == {{"FINISHED"}}
        arm = settings.armature
        # The artist's tweak on the tweak layer: bend the left elbow at frame 10 and key it, between
        # two keys of the generated pose (frames 5 and 15) that keep the layer neutral elsewhere.
        pb = arm.pose.bones["left_elbow"]
        for f in (5, 15):
            scene.frame_set(f)
            pb.keyframe_insert("rotation_quaternion", frame=f)
        scene.frame_set(10)
        edited = mathutils.Quaternion((0.0, 1.0, 0.0), 1.2)
        pb.rotation_quaternion = edited
        pb.keyframe_insert("rotation_quaternion", frame=10)
        item = settings.images.add()
        item.filepath = {str(source_photo)!r}
        settings.video_size = "256"
        bpy.ops.wm.save_as_mainfile(filepath=os.path.abspath("shot.blend"))
        prefs.address, prefs.timeout_s = {render_relay.address!r}, 60
        assert bpy.ops.vmclip.bake_video() == {{"FINISHED"}}
        strips = [(s.name, bpy.path.abspath(s.filepath), s.channel, s.frame_start, s.frame_final_duration)
                  for s in compat.strips(scene) if s.type == "MOVIE"]
        # Baking again replaces the strip instead of stacking a second one.
        assert bpy.ops.vmclip.bake_video() == {{"FINISHED"}}
        n_strips = len([s for s in compat.strips(scene) if s.type == "MOVIE"])
        rest = [list(r) for r in arm.data.bones["left_elbow"].matrix_local.to_3x3()]
        emit({{"edited": list(edited), "rest": rest,
              "video": settings.last_video, "strips": strips, "n_strips": n_strips, "status": state.status,
              "start": scene.frame_start, "end": scene.frame_end}})
    """,
        tmp_path,
        addon_zip,
        timeout=600,
    )
    (generated,) = gen_relay.results("generate_motion")
    original = MotionPayload.from_message(generated)
    renders = [m for m in render_relay.sent if m.type == "render"]
    assert len(renders) == 2
    sent = MotionPayload.from_message(renders[0], renders[0].body["motion"])
    assert renders[0].body["options"]["size"] == 256
    assert renders[0].body["options"]["camera"] == "follow"  # the panel's default camera
    assert len(renders[0].frames_named("image")) == 1
    assert renders[0].frames_named("image")[0] == source_photo.read_bytes()
    assert sent.num_frames == result["end"] - result["start"] + 1 == original.num_frames
    as_mat = lambda p: Rotation.from_rotvec(np.asarray(p, dtype=np.float64)).as_matrix()  # noqa: E731
    # Frame 10 carries the edit: the key, seen in the motion frame.
    b = np.array(result["rest"])
    w, x, y, z = result["edited"]
    expect = C.T @ b @ Rotation.from_quat([x, y, z, w]).as_matrix() @ b.T @ C
    elbow = 18
    assert angle_between(as_mat(sent.poses[9, elbow]), expect) < 1e-3
    assert angle_between(as_mat(original.poses[9, elbow]), expect) > 0.1
    # Every other joint and frame went out as generated.
    others = np.ones(sent.poses.shape[:2], bool)
    others[5:14, elbow] = False  # the tweak layer's curve between its neutral keys (frames 5 and 15)
    err = angle_between(as_mat(sent.poses[others]), as_mat(original.poses[others]))
    assert err.max() < 1e-3
    assert np.abs(sent.trans - original.trans).max() < 1e-4
    # The video sits beside the .blend and is in the sequencer, from the scene's first frame.
    video = tmp_path / "shot.mp4"
    assert result["video"] == str(video) and video.stat().st_size > 1000
    import av

    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        size = (stream.codec_context.width, stream.codec_context.height)
    assert frames == sent.num_frames and max(size) == 256
    assert result["strips"] == [["shot", str(video), 1, result["start"], frames]]
    assert result["n_strips"] == 1
    assert "Baked shot.mp4" in result["status"]


def test_blender_demo_writes_blend_fbx_mp4(tmp_path, motion_server, source_photo, monkeypatch):
    """The main job's Blender half (`vmclip.demo_blender`): headless Blender with the built add-on,
    writing into a folder given relative to the working directory (as the README's `demo_out`)."""
    from vmclip.demo_blender import run_blender_demo
    from vmclip.errors import InputError, VmclipError

    address, kind = motion_server
    with Client(address, timeout_s=5, retries=0) as c:
        caps = c.hello()["capabilities"]
        if not caps.get("render", {}).get("available"):
            pytest.skip(f"the server for generate ({kind}) cannot render")
        c_analyze = caps.get("analyze", {}).get("available")
    out = tmp_path / "demo"
    lines: list[str] = []
    monkeypatch.chdir(tmp_path)
    result = run_blender_demo(
        Path("demo"), address, [source_photo], "a person walks forward", 1.0, 2, size=256, log=lines.append
    )
    assert sorted(p.name for p in out.iterdir()) == ["demo.blend", "demo.fbx", "demo.mp4"]
    frames = result["frames"]
    assert Path(result["blend"]).resolve() == out / "demo.blend"
    assert result["bones"] == 24 and abs(frames - 31) <= 1
    assert any("bake video done" in line for line in lines)
    import av

    with av.open(str(out / "demo.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == frames
    check = run_bpy(
        f"""
        bpy.ops.wm.open_mainfile(filepath={str(out / "demo.blend")!r})
        scene = bpy.context.scene
        strip = [s for s in compat.strips(scene) if s.type == "MOVIE"][0]
        arm = scene.vmclip.armature
        body = bpy.data.objects.get(arm.name + "_body")
        images = [n.image for m in body.data.materials for n in m.node_tree.nodes
                  if n.type == "TEX_IMAGE"] if body is not None else []
        emit({{"strip": strip.filepath, "exists": os.path.isfile(bpy.path.abspath(strip.filepath)),
              "action": arm.animation_data.action.name, "range": [scene.frame_start, scene.frame_end],
              "prompt": scene.vmclip.prompt, "body": body.parent.name if body is not None else None,
              "packed": [i.packed_file is not None for i in images]}})
    """,
        tmp_path,
        build_addon.build(tmp_path / "dist", offline=True, log=lambda *_: None),
    )
    assert check["strip"] == "//demo.mp4" and check["exists"]
    assert check["range"] == [1, frames] and check["prompt"] == "a person walks forward"
    if c_analyze:  # the person's body, textured by the photo packed into the file
        assert result["body"] == "VMCLIP_Armature_body" and check["body"] == "VMCLIP_Armature"
        assert check["packed"] == [True]
    with pytest.raises(InputError, match="no such image"):
        run_blender_demo(out, address, [tmp_path / "nope.png"], "x")
    with pytest.raises(VmclipError, match="Backend not reachable"):
        run_blender_demo(
            tmp_path / "down",
            f"tcp://127.0.0.1:{free_port()}",
            [source_photo],
            "a person waves",
            1.0,
            0,
            size=256,
            log=lambda *_: None,
        )
    assert not (tmp_path / "down" / "demo.blend").exists()  # nothing half-written


def test_curve_keys_from_preferences(tmp_path, addon_zip, vmclip_server):
    """The preferences' CURVE keys: the right client key pair connects to an encrypting server; a key
    pair that is not on the server's allow-list is refused, with a one-line reason."""
    from vmclip_protocol import write_key_pair

    keys = tmp_path / "keys"
    server_public, server_secret = write_key_pair(keys, "server")
    allowed = tmp_path / "allowed"
    write_key_pair(allowed, "artist")
    artist_secret = allowed / "artist.key_secret"
    _, stranger_secret = write_key_pair(tmp_path / "other", "stranger")
    address = f"tcp://127.0.0.1:{free_port()}"
    proc = _start(
        [
            sys.executable,
            "-m",
            "vmclip",
            "serve",
            "--bind",
            address,
            "--workers",
            "1",
            "--no-preload",
            "--server-key",
            str(server_secret),
            "--authorized-keys",
            str(allowed / "artist.key"),
        ]
    )
    try:
        with Client(
            address, timeout_s=1.0, retries=30, server_key=server_public, client_key=artist_secret
        ) as c:
            c.hello()  # up
        result = run_bpy(
            f"""
            out = {{}}
            prefs.address, prefs.timeout_s, prefs.retries = {address!r}, 3.0, 0
            prefs.server_public_key = {str(server_public)!r}
            prefs.client_secret_key_file = {str(artist_secret)!r}
            out["allowed"] = op_error(bpy.ops.vmclip.check_connection)
            out["allowed_state"] = state.connection
            prefs.client_secret_key_file = {str(stranger_secret)!r}
            out["stranger"] = op_error(bpy.ops.vmclip.check_connection)
            prefs.server_public_key = ""
            out["no_server_key"] = op_error(bpy.ops.vmclip.check_connection)
            emit(out)
        """,
            tmp_path,
            addon_zip,
        )
    finally:
        _stop(proc)
    assert result["allowed"] is None and result["allowed_state"] == "CONNECTED"
    assert "refused the connection" in result["stranger"] and "allow-list" in result["stranger"]
    assert "server's public key is empty" in result["no_server_key"]
