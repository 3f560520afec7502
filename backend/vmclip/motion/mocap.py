"""Mocap import: BVH or ASF/AMC -> SMPL-24 `Motion` at 30 fps.

`load_mocap` reads the file (or bytes taken from a zip), detects the skeleton from its joint names
(Bandai-Namco, iClone CC_Base, CMU ASF, DeepMimic/ASE amp_humanoid15, CMU 31/38-joint rigs, rigify,
AnimatedDrawings, Rokoko, or any rig whose names map), retargets it through global joint orientations
(`vmclip.motion.retarget`) and resamples to 30 fps.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vmclip.errors import InputError
from vmclip.motion import rotations as R
from vmclip.motion.bvh_read import SourceMotion, bvh_to_source, parse_bvh, rest_positions
from vmclip.motion.format import Motion
from vmclip.motion.retarget import map_skeleton, retarget
from vmclip.motion.skeleton import FPS


def _text(data: bytes, where: str) -> str:
    if not data:
        raise InputError(f"{where}: empty file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        try:
            return data.decode("latin-1")
        except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes any byte string
            raise InputError(f"{where}: not a text file") from None


def _read(path: Path, data: bytes | None) -> bytes:
    if data is not None:
        return bytes(data)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None


def read_source(
    path: str | Path,
    *,
    data: bytes | None = None,
    asf: str | Path | bytes | None = None,
    fps: float | None = None,
    frames: tuple[int, int] | None = None,
    source: str | None = None,
) -> SourceMotion:
    """Parse a BVH or AMC(+ASF) recording into global joint poses in its own units and axes."""
    path = Path(path)
    where = f"{path} [{source}]" if source else str(path)
    suffix = path.suffix.lower()
    raw = _read(path, data)
    if suffix == ".amc":
        from vmclip.motion.amc import amc_to_source, find_asf, parse_amc, parse_asf

        if asf is None:
            asf = find_asf(path) if data is None else None
            if asf is None:
                raise InputError(f"{where}: AMC motion needs its ASF skeleton (pass asf=...)")
        if isinstance(asf, (bytes, bytearray)):
            asf_text, asf_where = _text(bytes(asf), f"{where} (asf)"), f"{where} (asf)"
        else:
            asf_text, asf_where = _text(_read(Path(asf), None), str(asf)), str(asf)
        skel = parse_asf(asf_text, asf_where)
        values = parse_amc(_text(raw, where), skel, where)
        if frames is not None:
            values = {k: _crop(v, frames, where) for k, v in values.items()}
        return amc_to_source(skel, values, fps or 120.0, where)
    if suffix not in (".bvh", ""):
        raise InputError(f"{where}: unsupported mocap format {suffix!r} (expected .bvh or .amc)")
    bvh = parse_bvh(_text(raw, where), where)
    if frames is not None:
        bvh.values = _crop(bvh.values, frames, where)
    header = SourceMotion(
        bvh.names,
        np.asarray(bvh.parents),
        rest_positions(bvh),
        np.zeros((0, len(bvh.names), 3)),
        np.zeros((0, len(bvh.names), 3, 3)),
        1.0,
        bvh.end_sites,
        where,
    )
    mapping = map_skeleton(header)
    needed = [a.joint for a in mapping.anchors.values()] + list(mapping.spine_chain)
    return bvh_to_source(bvh, where, only=needed, fps=fps)


def _crop(values, frames: tuple[int, int], where: str):
    start, end = int(frames[0]), int(frames[1])
    out = values[start:end]
    if len(out) == 0:
        raise InputError(f"{where}: frame range {start}..{end} is empty (clip has {len(values)} frames)")
    return out


def load_mocap(
    path: str | Path,
    *,
    data: bytes | None = None,
    asf: str | Path | bytes | None = None,
    fps: float | None = None,
    source: str | None = None,
    frames: tuple[int, int] | None = None,
    texts: list[str] | None = None,
) -> Motion:
    """Read a BVH or AMC(+ASF) file, retarget it to SMPL-24 and resample to 30 fps.

    `data`: the file's bytes (e.g. read from a zip); `path` then only names it and gives the format.
    `asf`: the skeleton for an AMC file (path or bytes; default: the only .asf beside it).
    `fps`: overrides the file's frame rate (AMC files do not store one; CMU's are 120 fps).
    `source`: a label used in error messages only. `frames`: (start, end) source frames to keep,
    end exclusive, applied before retargeting (so the floor is found on the kept part).
    """
    exact = _read_our_bvh(path, data)
    if exact is not None:  # our own SMPL-24 export: read exactly, retargeting would re-derive twist and floor
        if frames is not None:
            exact = exact.slice(*frames)
        if fps is not None:
            exact.fps = float(fps)
        exact.texts = list(texts or exact.texts)
        return exact.resample(FPS)
    src = read_source(path, data=data, asf=asf, fps=fps, frames=frames, source=source)
    if src.num_frames < 1:
        raise InputError(f"{src.where}: zero-length clip")
    res = retarget(src)
    if not (np.isfinite(res.local_rot).all() and np.isfinite(res.trans).all()):
        raise InputError(f"{src.where}: retargeting produced NaN values (degenerate skeleton or pose)")
    rot, trans = _resample(res.local_rot, res.trans, src.fps, FPS)
    return Motion.from_matrices(rot, trans, FPS, list(texts or []))


def _read_our_bvh(path: str | Path, data: bytes | None) -> Motion | None:
    """A BVH whose hierarchy is exactly SMPL-24 (what `write_bvh` writes), read without retargeting."""
    from vmclip.motion.bvh_write import read_smpl_bvh, smpl_bvh_joint_names

    if Path(path).suffix.lower() != ".bvh":
        return None
    try:
        raw = Path(path).read_bytes() if data is None else bytes(data)
    except OSError:
        return None  # read_source reports it with the source label
    if smpl_bvh_joint_names(raw[:65536].decode("latin-1")) is None:
        return None
    return read_smpl_bvh(path, data=raw)


def _resample(
    rot: np.ndarray, trans: np.ndarray, fps_in: float, fps_out: float
) -> tuple[np.ndarray, np.ndarray]:
    """Rotations (F, J, 3, 3) and translations (F, 3) at `fps_out`: slerp / linear between the two
    nearest source frames (same timing as `Motion.resample`), converting only the frames it uses --
    120-fps sources would otherwise spend most of their load time in quaternion conversion."""
    n_in = len(rot)
    if n_in == 1 or abs(fps_in - fps_out) < 1e-6:
        return rot, trans
    n_out = max(1, int(round((n_in - 1) / fps_in * fps_out)) + 1)
    t = np.arange(n_out) / fps_out * fps_in
    t = np.where(np.abs(t - np.round(t)) < 1e-6, np.round(t), t)  # 4/30*120 is 3.9999...
    i0 = np.clip(np.floor(t).astype(int), 0, n_in - 1)
    i1 = np.clip(i0 + 1, 0, n_in - 1)
    w = t - i0
    if np.all(w < 1e-9):  # integer ratio (60 or 120 fps): plain decimation
        return rot[i0], trans[i0]
    q0, q1 = R.matrix_to_quaternion(rot[i0]), R.matrix_to_quaternion(rot[i1])
    dot = (q0 * q1).sum(-1, keepdims=True)
    q1 = np.where(dot < 0, -q1, q1)
    theta = np.arccos(np.clip(np.abs(dot), 0.0, 1.0))
    sin_t = np.sin(theta)
    wj = w[:, None, None]
    small = sin_t < 1e-6
    a = np.where(small, 1 - wj, np.sin((1 - wj) * theta) / np.where(small, 1.0, sin_t))
    b = np.where(small, wj, np.sin(wj * theta) / np.where(small, 1.0, sin_t))
    out_rot = R.quaternion_to_matrix(a * q0 + b * q1)
    out_trans = trans[i0] * (1 - w[:, None]) + trans[i1] * w[:, None]
    return out_rot, out_trans
