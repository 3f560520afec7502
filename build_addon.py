#!/usr/bin/env python3
"""Build the installable Blender add-on zip: `dist/<id>-<version>.zip`.

The zip holds one folder named after the extension id with the add-on's modules, the protocol package
vendored from `shared/vmclip_protocol`, and the pyzmq wheels listed in `blender_manifest.toml`
(Linux x86_64, Windows x64, macOS universal2 = arm64 + x86_64), so nothing has to be pip-installed into
Blender. Wheels are fetched once with `pip download` into `.cache/wheels/` (git-ignored); later builds
work offline from that cache. If a wheel can neither be found in the cache nor downloaded, the build
goes on without bundled wheels (the manifest's `wheels` list is dropped) and says so, unless
`--require-wheels` is given.

Usage: python build_addon.py [--out dist] [--offline] [--require-wheels]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
ADDON_SRC = ROOT / "blender_addon"
PROTOCOL_SRC = ROOT / "shared" / "vmclip_protocol"
WHEEL_CACHE = ROOT / ".cache" / "wheels"
# A wheel's platform tag -> the --platform pip needs to fetch it for another machine.
_WHEEL_RE = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)-(?P<py>[^-]+)-(?P<abi>[^-]+)-(?P<plat>.+)\.whl$")


class BuildError(Exception):
    pass


def read_manifest(path: Path = ADDON_SRC / "blender_manifest.toml") -> dict:
    with open(path, "rb") as fh:
        return tomllib.load(fh)


def _fetch_wheel(filename: str, cache: Path) -> None:
    """pip download one wheel named in the manifest (exact file name) into the cache."""
    m = _WHEEL_RE.match(filename)
    if m is None:
        raise BuildError(f"{filename}: not a wheel file name")
    py = m["py"]
    if not py.startswith("cp") or not py[2:].isdigit():
        raise BuildError(f"{filename}: expected a CPython wheel (cpXY), got {py}")
    pyver = f"{py[2]}.{py[3:]}"
    platforms = m["plat"].split(".")  # manylinux wheels carry several compatible tags
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--only-binary=:all:",
        "--no-deps",
        "--python-version",
        pyver,
        "--implementation",
        "cp",
        "--abi",
        m["abi"],
        "--timeout",
        "20",
        "--retries",
        "1",
        "--disable-pip-version-check",
        "-q",
        "-d",
        str(cache),
    ]
    for plat in platforms:
        cmd += ["--platform", plat]
    cmd.append(f"{m['name']}=={m['version']}")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not (cache / filename).is_file():
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        why = detail[-1] if detail else "no such file on the index"
        raise BuildError(f"could not download {filename}: {why}")


def ensure_wheels(names: list[str], cache: Path, offline: bool) -> tuple[list[Path], str | None]:
    """Paths of the manifest's wheels in the cache (downloading what is missing unless offline).
    Returns (paths, None) or ([], reason) when they cannot all be had."""
    cache.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names:
        path = cache / name
        if not path.is_file():
            if offline:
                return [], f"{name} is not in {_show(cache)} and --offline was given"
            try:
                _fetch_wheel(name, cache)
            except BuildError as exc:
                return [], str(exc)
        if not zipfile.is_zipfile(path):
            return [], f"{_show(path)} is not a valid wheel (delete it and build again)"
        paths.append(path)
    return paths, None


def _show(path: Path) -> Path:
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def _manifest_without_wheels(text: str) -> str:
    return re.sub(r"(?ms)^wheels\s*=\s*\[.*?\]\s*\n", "", text)


def _copy_tree(src: Path, dst: Path) -> None:
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if "__pycache__" in rel.parts or path.suffix == ".pyc" or path.name.startswith("."):
            continue
        if path.is_dir():
            continue
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)


def build(
    out_dir: Path = ROOT / "dist",
    *,
    offline: bool = False,
    require_wheels: bool = False,
    cache: Path = WHEEL_CACHE,
    log=print,
) -> Path:
    """Build the zip; returns its path. Raises BuildError on a broken source tree."""
    manifest_path = ADDON_SRC / "blender_manifest.toml"
    manifest = read_manifest(manifest_path)
    ext_id, version = manifest["id"], manifest["version"]
    if not (PROTOCOL_SRC / "__init__.py").is_file():
        raise BuildError(f"{PROTOCOL_SRC.relative_to(ROOT)} is missing: the add-on would have no client")
    wheel_names = [Path(w).name for w in manifest.get("wheels", [])]
    wheels, reason = ensure_wheels(wheel_names, cache, offline) if wheel_names else ([], None)
    manifest_text = manifest_path.read_text(encoding="utf-8")
    if reason is not None:
        if require_wheels:
            raise BuildError(f"pyzmq wheels unavailable: {reason}")
        log(
            f"build_addon: NOTE: building WITHOUT bundled pyzmq wheels ({reason}). The add-on then needs "
            "pyzmq in Blender's own Python (pip install pyzmq there); run this build once with network "
            "access to bundle them."
        )
        manifest_text = _manifest_without_wheels(manifest_text)

    out_dir.mkdir(parents=True, exist_ok=True)
    zip_path = out_dir / f"{ext_id}-{version}.zip"
    with tempfile.TemporaryDirectory(prefix="vmclip-addon-") as tmp:
        stage = Path(tmp) / ext_id
        _copy_tree(ADDON_SRC, stage)
        (stage / "blender_manifest.toml").write_text(manifest_text, encoding="utf-8")
        _copy_tree(PROTOCOL_SRC, stage / "vmclip_protocol")
        for wheel in wheels:
            (stage / "wheels").mkdir(exist_ok=True)
            shutil.copy2(wheel, stage / "wheels" / wheel.name)
        part = zip_path.with_name(zip_path.name + ".part")
        with zipfile.ZipFile(part, "w", zipfile.ZIP_DEFLATED) as zf:
            # One top-level folder: Blender 4.2+ installs it as an extension, 3.4 as a legacy add-on.
            for path in sorted(stage.rglob("*")):
                if path.is_file():
                    zf.write(path, path.relative_to(stage.parent).as_posix())
        os.replace(part, zip_path)
    log(
        f"build_addon: wrote {_show(zip_path)} "
        f"({zip_path.stat().st_size / 1e6:.1f} MB, {len(wheels)} wheel(s))"
    )
    return zip_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="output folder (default: dist/)")
    parser.add_argument(
        "--offline",
        action="store_true",
        help="never download: use the wheels in .cache/wheels or build without them",
    )
    parser.add_argument(
        "--require-wheels", action="store_true", help="fail instead of building without the pyzmq wheels"
    )
    args = parser.parse_args(argv)
    try:
        build(args.out, offline=args.offline, require_wheels=args.require_wheels)
    except (BuildError, OSError, KeyError, tomllib.TOMLDecodeError) as exc:
        print(f"build_addon: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
