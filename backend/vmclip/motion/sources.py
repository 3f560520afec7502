"""The staged mocap folder (`../shared/data/motion`): manifests and zip members.

Every folder of motion files is stored as a zip beside where the folder would be; a manifest path
such as `cmu/iclone_bvh60/001/001_01.bvh` is the member `001/001_01.bvh` of `cmu/iclone_bvh60.zip`
(the longest leading folder that has a zip). `extra/` has its own manifest with paths relative to it.
"""

from __future__ import annotations

import csv
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from vmclip.errors import InputError

MANIFESTS = (("manifests/paired_manifest.csv", ""), ("extra/manifests/manifest.csv", "extra/"))


@dataclass
class ClipRow:
    clip_id: str
    path: str  # relative to the motion root (extra/ paths already prefixed)
    start_frame: int
    end_frame: int  # exclusive
    fps: float
    texts: list[str] = field(default_factory=list)
    source: str = ""
    format: str = "bvh"
    license: str = ""

    @property
    def asf_path(self) -> str | None:
        """For AMC clips: the skeleton file beside it (CMU names it after the subject)."""
        if self.format != "amc":
            return None
        p = PurePosixPath(self.path)
        return str(p.parent / (p.name.split("_")[0] + ".asf"))


def iter_manifest(motion_root: str | Path) -> Iterator[ClipRow]:
    """All clips of both manifests, in file order."""
    root = Path(motion_root)
    found = False
    for rel, prefix in MANIFESTS:
        path = root / rel
        if not path.is_file():
            continue
        found = True
        with open(path, newline="", encoding="utf-8") as fh:
            for i, row in enumerate(csv.DictReader(fh), start=2):
                try:
                    yield ClipRow(
                        clip_id=row["clip_id"],
                        path=prefix + row["bvh_path"],
                        start_frame=int(row["start_frame"]),
                        end_frame=int(row["end_frame"]),
                        fps=float(row["fps"]),
                        texts=[t.strip() for t in row["texts"].split(" | ") if t.strip()],
                        source=row["source"],
                        format=row["format"].strip().lower(),
                        license=row["license"],
                    )
                except (KeyError, ValueError, AttributeError) as exc:
                    raise InputError(f"{path}:{i}: malformed manifest row ({exc})") from None
    if not found:
        raise InputError(f"{root}: no manifest found (looked for {', '.join(r for r, _ in MANIFESTS)})")


_zips: dict[Path, zipfile.ZipFile] = {}
_lock = threading.Lock()


def _open_zip(path: Path) -> zipfile.ZipFile:
    with _lock:
        zf = _zips.get(path)
        if zf is None:
            try:
                zf = zipfile.ZipFile(path)
            except (OSError, zipfile.BadZipFile) as exc:
                raise InputError(f"{path}: unreadable zip ({exc})") from None
            _zips[path] = zf
        return zf


def resolve_member(motion_root: str | Path, rel_path: str) -> tuple[Path, str | None]:
    """(zip file, member) for a manifest path, or (plain file, None) when no zip holds it."""
    root = Path(motion_root)
    parts = PurePosixPath(rel_path).parts
    for k in range(len(parts) - 1, 0, -1):
        zpath = root.joinpath(*parts[:k]).with_suffix(".zip") if parts[k - 1] else None
        if zpath is not None and zpath.is_file():
            return zpath, "/".join(parts[k:])
    return root.joinpath(*parts), None


def read_member(motion_root: str | Path, rel_path: str) -> bytes:
    """Bytes of a manifest path (BVH, AMC or ASF), read from its zip."""
    zpath, member = resolve_member(motion_root, rel_path)
    if member is None:
        try:
            return zpath.read_bytes()
        except OSError:
            raise InputError(f"{rel_path}: not found under {motion_root} (no zip holds it)") from None
    zf = _open_zip(zpath)
    with _lock:
        try:
            return zf.read(member)
        except KeyError:
            raise InputError(f"{rel_path}: no member {member!r} in {zpath}") from None
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise InputError(f"{rel_path}: unreadable member of {zpath} ({exc})") from None


def load_clip(motion_root: str | Path, row: ClipRow, *, crop: bool = True):
    """Load one manifest clip as a 30-fps SMPL-24 `Motion` (cropped to its frame range, texts set)."""
    from vmclip.motion.mocap import load_mocap

    data = read_member(motion_root, row.path)
    asf = read_member(motion_root, row.asf_path) if row.asf_path else None
    frames = (row.start_frame, row.end_frame) if crop else None
    return load_mocap(
        row.path, data=data, asf=asf, fps=row.fps, frames=frames, texts=row.texts, source=row.clip_id
    )
