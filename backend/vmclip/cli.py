"""`vmclip` command line. Each pipeline stage registers its own subcommands from a light module
(no heavy imports at registration, so `vmclip --help` stays fast)."""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading

from vmclip import __version__
from vmclip.errors import VmclipError

# Stage CLIs in pipeline order. Each module has `register(subparsers)`; handlers are set with
# `parser.set_defaults(func=...)` and receive the parsed namespace, returning an exit code.
COMMAND_MODULES = [
    "vmclip.motion.cli",
    "vmclip.t2m.cli",
    "vmclip.person.cli",
    "vmclip.render.cli",
    "vmclip.server.cli",
    "vmclip.demo",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vmclip",
        description="VideoMotionCLIP: animate a photographed person from free text. "
        "Text -> SMPL-24 motion -> re-posed person -> MP4.",
        epilog="Run `vmclip COMMAND --help` for a command's options. Nothing is downloaded at run time.",
    )
    parser.add_argument("--version", action="version", version=f"vmclip {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks for internal errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # stage not built yet
                continue
            raise
        module.register(sub)
    return parser


def _rewrite_aliases(argv: list[str]) -> list[str]:
    # `vmclip motion convert ...` and `vmclip eval motion` read naturally but argparse cannot mix a
    # sub-subcommand with a free-text positional; map them onto internal command names.
    if len(argv) >= 2 and argv[0] == "motion" and argv[1] == "convert":
        return ["motion-convert", *argv[2:]]
    if len(argv) >= 2 and argv[0] == "eval" and argv[1] == "motion":
        return ["eval-motion", *argv[2:]]
    return argv


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C, so that every `finally` (temporary outputs
    removed by `fileio.atomic_output`) runs before the process ends."""


def _on_sigterm(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one is enough: let the clean-up finish
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    """Run one command; SIGTERM and SIGINT both end it cleanly (exit 143 / 130)."""
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if in_main else None
    try:
        return _main(argv)
    except Terminated:  # arrived outside a command's own handling
        print("vmclip: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Only a --debug before the command is the global flag (`vmclip analyze --debug DIR` is not).
    command_at = next((i for i, a in enumerate(argv) if not a.startswith("-")), len(argv))
    debug = "--debug" in argv[:command_at] or bool(os.environ.get("VMCLIP_DEBUG"))
    parser = build_parser()
    args = parser.parse_args(_rewrite_aliases(argv))
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except VmclipError as exc:
        print(f"vmclip: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Terminated:
        print("vmclip: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("vmclip: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT
    except Exception as exc:  # noqa: BLE001 - last line of defence: one line, not a traceback
        if debug:
            raise
        print(
            f"vmclip: internal error: {type(exc).__name__}: {exc} (rerun with --debug for details)",
            file=sys.stderr,
        )
        return 1
