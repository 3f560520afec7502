"""Embedded assets: where shipped weights live and where caches are built.

`python -m vmclip.assets prepare` runs at set-up time: it builds the caches that would otherwise slow
the first run (each stage registers its own step below as it lands). Nothing here downloads anything.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

PACKAGE_ASSETS = Path(__file__).resolve().parent / "assets"


def cache_dir() -> Path:
    """Per-user cache (VMCLIP_CACHE overrides; defaults to ~/.cache/vmclip)."""
    root = os.environ.get("VMCLIP_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "vmclip"
    )
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


# Set-up steps: (name, dotted function path). Each is idempotent and fast when already done.
PREPARE_STEPS: list[tuple[str, str]] = [
    ("Anny body on the SMPL-24 skeleton (first time: a few minutes)", "vmclip.person.body:prepare_anny"),
    ("Anny's UV layout on our triangles (first time: seconds)", "vmclip.person.uvmap:prepare_anny_uv"),
    ("example person, rendered with Blender (first time: a minute)", "vmclip.render.example:prepare_example"),
]


def prepare() -> None:
    import importlib

    for name, target in PREPARE_STEPS:
        module, func = target.rsplit(":", 1)
        print(f"setup: {name}", flush=True)
        getattr(importlib.import_module(module), func)()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m vmclip.assets")
    parser.add_argument("action", choices=["prepare"])
    parser.parse_args()
    prepare()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
