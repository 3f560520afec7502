"""Pack what `bench/bench_gpu.py` needs on a bare GPU machine into parts that fit its per-call limit.

The GPU machine (see bench/README.md) has Python 3.12 with PyTorch (CUDA), numpy 2, scipy, OpenCV,
Pillow, tokenizers and safetensors, and no network. Each call carries the working tree plus named
paths, 64 MiB in all, and the machine stays warm for 30 s between calls, so files written outside the
repository (/tmp) survive into the next call. This script builds, on a machine with network access:

* wheels for CPython 3.12 manylinux x86_64 (`WHEELS`: our pins, plus numpy 1.26 and protobuf 4 because
  mediapipe 0.10.21 needs numpy < 2 and protobuf < 5);
* the text encoder as an fp16 copy (45 MB instead of 91 MB; `vmclip.text.minilm.save_half_precision`);
* Anny's Python code without its 107 MB of data (the body is read from our 22 MB .npz; the data only
  builds that file at set-up) and the .npz itself, and the example person;
* the EGL libraries (Debian packages of glvnd's libEGL) that moderngl loads the NVIDIA driver through;

then tars them and splits the tar into `--part-mb` pieces, one per call:

    python bench/carry.py --out /tmp/vmclip-carry            # here, once (network for the wheels)
    python bench/carry.py --out /tmp/vmclip-carry --stage 1  # put part 1 into .carry/ (git-ignored)
    # device call: carry [".carry"], command: mkdir -p /tmp/carry && cp .carry/part* /tmp/carry/
    ... stages 2..N-1 likewise, each call right after the previous one (the machine stays warm 30 s);
    # last call: carry [".carry"], command: bash bench/gpu_run.sh
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CARRY = ROOT / ".carry"  # listed in .gitignore: travels only when a device call names it in `carry`
# The largest part: 64 MiB per call, less the working tree (about 20 MB, the t2m model most of it).
PART_MB = 40
WHEELS = (
    "mediapipe==0.10.21",
    "numpy==1.26.4",  # mediapipe 0.10.21 is built against numpy 1 (the machine has numpy 2)
    "protobuf==4.25.9",  # mediapipe 0.10.21 needs protobuf < 5
    "av==18.1.0",
    "moderngl==5.13.0",
    "glcontext==3.1.0",
    "pyzmq==27.3.0",
    "roma==1.8.0",  # Anny's rotations
    "PyPatchMatch==2.2.0",
)
PLATFORMS = (
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
)
# glvnd's EGL/GL front ends: the NVIDIA driver's folder on the machine holds the vendor libraries only.
EGL_DEBS = ("libegl1", "libglvnd0", "libopengl0", "libgl1", "libglx0", "libgles2")


def _run(cmd: list[str], cwd: Path | None = None) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=cwd)


def download_wheels(dest: Path, find_links: Path | None = None) -> None:
    """pip download of WHEELS for CPython 3.12 (from `find_links` alone when given: no network)."""
    plats = [a for p in PLATFORMS for a in ("--platform", p)]
    source = ["--no-index", "--find-links", str(find_links)] if find_links else []
    pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    _run(
        [
            *pip,
            "--python-version",
            "3.12",
            "--implementation",
            "cp",
            *plats,
            *source,
            "-d",
            str(dest),
            *WHEELS,
        ]
    )


def download_egl(dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    lists = Path("/tmp/amd64-lists")
    (lists / "partial").mkdir(parents=True, exist_ok=True)
    opts = ["-oAPT::Architecture=amd64", "-oAPT::Architectures=amd64", f"-oDir::State::Lists={lists}"]
    _run(["apt-get", *opts, "update", "-qq"])
    _run(["apt-get", *opts, "download", *EGL_DEBS], cwd=dest)


def slim_anny(dest: Path) -> None:
    """Anny's code without its data folder (only `prepare_anny` reads that, at set-up)."""
    import anny

    src = Path(anny.__file__).parent
    shutil.copytree(src, dest / "anny", ignore=shutil.ignore_patterns("data", "examples", "__pycache__"))


def build(out: Path, part_mb: int, find_links: Path | None = None) -> list[Path]:
    from vmclip.person.body import anny_cache_path, prepare_anny
    from vmclip.render.example import example_dir, prepare_example
    from vmclip.text.minilm import save_half_precision

    payload = out / "payload"
    if payload.exists():
        shutil.rmtree(payload)
    download_wheels(payload / "wheels", find_links)
    download_egl(payload / "egl")
    slim_anny(payload / "site")
    save_half_precision(payload / "minilm16")
    cache = payload / "cache"
    cache.mkdir()
    shutil.copy2(prepare_anny(), cache / anny_cache_path().name)
    prepare_example()
    shutil.copytree(example_dir(), cache / example_dir().name)
    tar = out / "payload.tar"
    with tarfile.open(tar, "w") as tf:
        tf.add(payload, arcname="payload")
    for old in out.glob("part*"):
        old.unlink()
    parts, size = [], part_mb * 2**20
    with open(tar, "rb") as fh:
        while chunk := fh.read(size):
            parts.append(out / f"part{len(parts) + 1:02d}")
            parts[-1].write_bytes(chunk)
    tar.unlink()
    print(f"{len(parts)} parts of at most {part_mb} MiB in {out}: one device call each")
    return parts


def stage(out: Path, k: int) -> None:
    """Make `.carry/` hold part k only (the next device call carries it)."""
    parts = sorted(out.glob("part*"))
    if not 1 <= k <= len(parts):
        raise SystemExit(f"carry: stage {k}: {out} holds {len(parts)} parts")
    if CARRY.exists():
        shutil.rmtree(CARRY)
    CARRY.mkdir()
    shutil.copy2(parts[k - 1], CARRY / parts[k - 1].name)
    print(f"{CARRY}: {parts[k - 1].name} ({k} of {len(parts)})")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True, help="build folder (outside the repository)")
    parser.add_argument("--part-mb", type=int, default=PART_MB, help=f"part size in MiB (default {PART_MB})")
    parser.add_argument("--stage", type=int, help="copy part N into .carry/ instead of building")
    parser.add_argument("--wheels", type=Path, help="take the wheels from this folder (no download)")
    args = parser.parse_args()
    if args.stage is not None:
        stage(args.out, args.stage)
    else:
        build(args.out, args.part_mb, args.wheels)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
