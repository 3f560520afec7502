"""`vmclip serve`, `vmclip keys` and `vmclip client ping|status|motion|render`."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from pathlib import Path

from vmclip.errors import InputError, VmclipError
from vmclip.limits import MAX_MOTION_FRAMES

DEFAULT_ADDRESS = "tcp://127.0.0.1:5555"  # same as vmclip_protocol.DEFAULT_ADDRESS (kept light to import)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "serve",
        help="run the backend service (ZeroMQ) that the Blender add-on talks to",
        description="Load the models once and serve text-to-motion, person analysis and rendering over "
        "ZeroMQ. Listens on loopback by default; any other address needs CURVE keys (see `vmclip keys`). "
        "Logs one line per request: type, client, duration, outcome.",
    )
    p.add_argument(
        "--bind",
        default=DEFAULT_ADDRESS,
        help=f"ZeroMQ endpoint to listen on (default {DEFAULT_ADDRESS}; tcp://127.0.0.1:* picks a free port)",
    )
    p.add_argument("--workers", type=int, default=2, help="jobs run at once (default 2)")
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    p.add_argument(
        "--server-key",
        type=Path,
        default=None,
        help="this server's CURVE key pair (.key_secret from `vmclip keys`); turns on encryption",
    )
    p.add_argument(
        "--authorized-keys",
        type=Path,
        default=None,
        help="folder of client public keys (*.key) allowed to connect, or one .key file",
    )
    p.add_argument(
        "--max-message-mb",
        type=float,
        default=256.0,
        help="largest accepted message (ZMQ_MAXMSGSIZE, default 256 MB)",
    )
    p.add_argument("--jobs-per-client", type=int, default=4, help="open jobs one client may have (default 4)")
    p.add_argument("--no-preload", action="store_true", help="load models on first use instead of at start")
    p.add_argument("--quiet", action="store_true", help="log warnings only, not one line per request")
    p.set_defaults(func=_serve)

    k = subparsers.add_parser(
        "keys",
        help="write a CURVE key pair for the server or a client",
        description="Write NAME.key (public: give it to the other side) and NAME.key_secret (keep it "
        "private) into --out. The server's --authorized-keys folder holds the clients' .key files.",
    )
    k.add_argument("--out", type=Path, default=Path("keys"), help="folder to write into (default ./keys)")
    k.add_argument("--name", default="server", help="key name, e.g. server or the artist's machine")
    k.add_argument("--force", action="store_true", help="overwrite an existing key pair of that name")
    k.set_defaults(func=_keys)

    c = subparsers.add_parser(
        "client",
        help="talk to a running `vmclip serve` (ping, status, motion, render)",
        description="Script a running server. `motion` and `render` write their result with -o FILE.",
    )
    _client_options(c, with_defaults=True)
    cs = c.add_subparsers(dest="client_command", metavar="ACTION", required=True)
    actions = [
        cs.add_parser("ping", help="hello: versions, device, available stages, round-trip time"),
        cs.add_parser("status", help="queue, workers and this client's jobs"),
    ]
    m = cs.add_parser("motion", help="generate a motion from text and save it as .npz (AMASS-style)")
    m.add_argument("prompt", help="what the person does, e.g. 'a man waves with his right hand'")
    m.add_argument("-o", "--output", type=Path, required=True, help="output .npz")
    m.add_argument("--seconds", type=float, default=4.0)
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--fps", type=float, default=30.0)
    r = cs.add_parser("render", help="animate the person in photo(s) and save the MP4")
    r.add_argument("images", nargs="+", type=Path, help="PNG/JPEG photo(s) of one person")
    src = r.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--motion",
        type=Path,
        help=f"motion .npz to use (at most {MAX_MOTION_FRAMES} frames, the server's limit)",
    )
    src.add_argument("--prompt", help="generate the motion from this text first")
    r.add_argument("-o", "--output", type=Path, required=True, help="output .mp4")
    r.add_argument("--size", type=int, default=512, help="output frame size in pixels (default 512)")
    r.add_argument("--seconds", type=float, default=4.0, help="motion length with --prompt")
    r.add_argument("--seed", type=int, default=0, help="seed with --prompt")
    for action in [*actions, m, r]:  # `vmclip client ping --server ...` as well as `client --server ... ping`
        _client_options(action, with_defaults=False)
    c.set_defaults(func=_client)


def _client_options(parser: argparse.ArgumentParser, *, with_defaults: bool) -> None:
    """The client's connection options, accepted before and after the action. After it they have no
    default (argparse.SUPPRESS), so that they do not overwrite a value given before it."""

    def default(value: object) -> object:
        return value if with_defaults else argparse.SUPPRESS

    parser.add_argument(
        "--server", default=default(DEFAULT_ADDRESS), help=f"server endpoint (default {DEFAULT_ADDRESS})"
    )
    parser.add_argument(
        "--timeout", type=float, default=default(10.0), help="seconds of silence before a retry (default 10)"
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=default(3),
        help="retries on silence, each on a fresh socket (default 3)",
    )
    parser.add_argument(
        "--server-key", type=Path, default=default(None), help="the server's public key (.key) for CURVE"
    )
    parser.add_argument(
        "--client-key", type=Path, default=default(None), help="this client's key pair (.key_secret)"
    )


def _serve(args: argparse.Namespace) -> int:
    from vmclip.server import Limits, Pipeline, Server, ServerConfig

    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    limits = Limits(
        max_message_bytes=int(args.max_message_mb * 1024 * 1024), max_jobs_per_client=args.jobs_per_client
    )
    config = ServerConfig(
        bind=args.bind,
        workers=args.workers,
        limits=limits,
        server_key=args.server_key,
        authorized_keys=args.authorized_keys,
    )
    pipeline = Pipeline(device=args.device)
    server = Server(config, pipeline)  # refuses a public address without keys before loading anything
    if not args.no_preload:
        t0 = time.monotonic()
        pipeline.preload()
        logging.getLogger("vmclip.server").info(
            "models loaded in %.1f s on %s", time.monotonic() - t0, pipeline.device
        )
    server.start()
    print(f"vmclip: serving on {server.address}", file=sys.stderr, flush=True)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: server.request_stop())
    server.serve_forever()
    return 0


def _keys(args: argparse.Namespace) -> int:
    from vmclip_protocol import write_key_pair

    public = args.out / f"{args.name}.key"
    secret = args.out / f"{args.name}.key_secret"
    if not args.force and (public.exists() or secret.exists()):
        raise InputError(f"{public} or {secret} already exists (use --force to overwrite)")
    if not args.name or "/" in args.name or args.name.startswith("."):
        raise InputError(f"{args.name!r}: not a usable key name")
    public, secret = write_key_pair(args.out, args.name)
    print(f"public key: {public}  (give this to the other side)")
    print(f"secret key: {secret}  (keep private)")
    return 0


def _client(args: argparse.Namespace) -> int:
    import vmclip_protocol as vp

    try:
        client = vp.Client(
            args.server,
            timeout_s=args.timeout,
            retries=args.retries,
            server_key=args.server_key,
            client_key=args.client_key,
            name="vmclip-cli",
        )
    except ValueError as exc:
        raise InputError(str(exc)) from None
    try:
        with client:
            return _client_action(args, client)
    except vp.RemoteError as exc:
        raise VmclipError(f"server: {exc.code}: {exc.message}") from None
    except vp.ServerUnavailable as exc:
        raise VmclipError(str(exc)) from None


def _client_action(args: argparse.Namespace, client) -> int:
    import numpy as np
    import vmclip_protocol as vp

    from vmclip.fileio import atomic_output, check_writable
    from vmclip.motion import Motion, load_npz

    action = args.client_command
    if action == "ping":
        t0 = time.perf_counter()
        info = client.hello()
        ms = (time.perf_counter() - t0) * 1000
        caps = ", ".join(
            f"{k}={'yes' if v.get('available') else 'no'}" for k, v in info["capabilities"].items()
        )
        print(
            f"{info['server']} at {args.server}: protocol {info['protocol']}, device {info['device']}, "
            f"{'encrypted' if info.get('encrypted') else 'unencrypted'}, {ms:.1f} ms round trip"
        )
        print(f"stages: {caps}")
        return 0
    if action == "status":
        print(json.dumps(client.status(), indent=2))
        return 0
    if action == "motion":
        if args.output.suffix.lower() != ".npz":
            raise InputError(f"{args.output}: motion output must end in .npz")
        check_writable(args.output)
        payload = client.generate_motion(args.prompt, args.seconds, args.seed, args.fps)
        Motion.from_axis_angle(payload.poses, payload.trans, payload.fps, [args.prompt]).save_npz(args.output)
        print(f"wrote {args.output} ({payload.num_frames} frames at {payload.fps:g} fps)")
        return 0
    # render
    if args.output.suffix.lower() != ".mp4":
        raise InputError(f"{args.output}: video output must end in .mp4")
    check_writable(args.output)
    images = []
    for path in args.images:
        if not path.is_file():
            raise InputError(f"{path}: no such image")
        images.append(path.read_bytes())
    if args.motion is not None:
        m = load_npz(args.motion, max_frames=MAX_MOTION_FRAMES)
        motion = vp.MotionPayload(m.axis_angle().astype(np.float32), m.trans, m.fps, text=m.text)
    else:
        motion = client.generate_motion(args.prompt, args.seconds, args.seed)
    bar = None
    if sys.stderr.isatty():  # a progress bar on a terminal only, like vmclip.progress
        from tqdm import tqdm

        bar = tqdm(total=100, desc="render", leave=False, dynamic_ncols=True)

    def on_progress(fraction: float, message: str) -> None:
        if bar is not None:
            bar.set_postfix_str(message[:40])
            bar.update(max(0, int(fraction * 100) - bar.n))

    try:
        video = client.render(images, motion, {"size": args.size}, on_progress)
    finally:
        if bar is not None:
            bar.close()
    with atomic_output(args.output) as tmp:
        tmp.write_bytes(video)
    print(f"wrote {args.output} ({len(video) / 1e6:.2f} MB)")
    return 0
