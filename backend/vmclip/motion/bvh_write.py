"""BVH export of SMPL-24 motion, and its exact inverse.

The file uses our skeleton as it is: joint names from `JOINT_NAMES`, offsets from `REST_OFFSETS`
(or a body's own offsets), Y up, the body facing +Z, rest pose = T-pose with zero rotations. The root
(pelvis) has 6 channels (position then rotation), every other joint 3 rotation channels, all in the
order Z X Y (intrinsic: R = Rz @ Rx @ Ry, the CMU/MotionBuilder convention). Lengths are written in
metres by default (Blender imports them at true size) or centimetres (`units="cm"`, what MotionBuilder
and most game tools expect). Angles are written with 6 decimals of a degree, so a file read back
reproduces every local rotation to about 1e-7 rad.

`read_smpl_bvh` reads such a file back without retargeting (any channel order, metres or centimetres):
a BVH whose skeleton already is SMPL-24 needs no retarget, and going through one would re-derive
twists and floor height and so lose the exact round trip. Other skeletons go to `load_mocap`.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np

from vmclip.errors import InputError
from vmclip.fileio import atomic_output
from vmclip.motion import rotations as R
from vmclip.motion.format import Motion
from vmclip.motion.skeleton import JOINT_NAMES, NUM_JOINTS, PARENTS, REST_OFFSETS

CHANNEL_ORDER = "ZXY"
_UNIT_SCALE = {"m": 1.0, "cm": 100.0}

# Leaf joints get an "End Site" so that importers can give the last bone a length and direction.
_END_SITES: dict[str, tuple[float, float, float]] = {
    "head": (0.0, 0.12, 0.02),
    "left_foot": (0.0, -0.015, 0.06),
    "right_foot": (0.0, -0.015, 0.06),
    "left_hand": (0.09, 0.0, 0.0),
    "right_hand": (-0.09, 0.0, 0.0),
}


def _children() -> list[list[int]]:
    kids: list[list[int]] = [[] for _ in range(NUM_JOINTS)]
    for j, p in enumerate(PARENTS):
        if p >= 0:
            kids[p].append(j)
    return kids


def _hierarchy_text(offsets: np.ndarray, scale: float) -> str:
    kids = _children()
    rot_channels = " ".join(f"{a}rotation" for a in CHANNEL_ORDER)
    out = io.StringIO()
    out.write("HIERARCHY\n")

    def fmt(v) -> str:
        return " ".join(f"{x * scale:.6f}" for x in v)

    def joint(j: int, depth: int) -> None:
        pad = "\t" * depth
        kind = "ROOT" if PARENTS[j] < 0 else "JOINT"
        out.write(f"{pad}{kind} {JOINT_NAMES[j]}\n{pad}{{\n")
        out.write(f"{pad}\tOFFSET {fmt(offsets[j])}\n")
        if PARENTS[j] < 0:
            out.write(f"{pad}\tCHANNELS 6 Xposition Yposition Zposition {rot_channels}\n")
        else:
            out.write(f"{pad}\tCHANNELS 3 {rot_channels}\n")
        for c in kids[j]:
            joint(c, depth + 1)
        if not kids[j]:
            end = _END_SITES.get(JOINT_NAMES[j], (0.0, 0.05, 0.0))
            out.write(f"{pad}\tEnd Site\n{pad}\t{{\n{pad}\t\tOFFSET {fmt(end)}\n{pad}\t}}\n")
        out.write(f"{pad}}}\n")

    joint(0, 0)
    return out.getvalue()


def _depth_first_order() -> list[int]:
    kids = _children()
    order: list[int] = []
    stack = [0]
    while stack:
        j = stack.pop()
        order.append(j)
        stack.extend(reversed(kids[j]))
    return order


def bvh_text(motion: Motion, offsets: np.ndarray | None = None, units: str = "m") -> str:
    """The BVH file contents for `motion` (see the module docstring for the conventions)."""
    if units not in _UNIT_SCALE:
        raise InputError(f"BVH units must be one of {sorted(_UNIT_SCALE)}, got {units!r}")
    scale = _UNIT_SCALE[units]
    offsets = np.array(REST_OFFSETS if offsets is None else offsets, dtype=np.float64)
    if offsets.shape != (NUM_JOINTS, 3) or not np.isfinite(offsets).all():
        raise InputError(f"BVH offsets must be a finite ({NUM_JOINTS}, 3) array, got shape {offsets.shape}")
    order = _depth_first_order()  # BVH lists channels in the order joints appear in the hierarchy
    mats = motion.matrices()[:, order]
    euler = np.degrees(R.matrix_to_euler(mats, CHANNEL_ORDER))  # (T, 24, 3)
    rows = np.concatenate(
        [motion.trans.astype(np.float64) * scale, euler.reshape(motion.num_frames, -1)], axis=1
    )
    out = io.StringIO()
    out.write(_hierarchy_text(offsets, scale))
    out.write(f"MOTION\nFrames: {motion.num_frames}\nFrame Time: {1.0 / motion.fps:.10f}\n")
    np.savetxt(out, rows, fmt="%.6f", delimiter=" ")
    return out.getvalue()


def smpl_bvh_joint_names(text: str) -> list[str] | None:
    """The joint names of a BVH text if its hierarchy is the SMPL-24 tree (same names and parents),
    else None. Only the header is looked at."""
    from vmclip.motion.bvh_read import parse_bvh

    header = text.split("MOTION", 1)[0]
    names = re.findall(r"\b(?:ROOT|JOINT)\s+(\S+)", header)
    if sorted(names) != sorted(JOINT_NAMES):
        return None
    try:
        bvh = parse_bvh(header + "MOTION\nFrames: 1\nFrame Time: 1\n" + " ".join(["0"] * 75), "header")
    except InputError:
        return None
    index = {n: i for i, n in enumerate(bvh.names)}
    for j, name in enumerate(JOINT_NAMES):
        p = bvh.parents[index[name]]
        if (bvh.names[p] if p >= 0 else None) != (JOINT_NAMES[PARENTS[j]] if PARENTS[j] >= 0 else None):
            return None
    return bvh.names


def read_smpl_bvh(path: str | Path, data: bytes | None = None) -> Motion:
    """Read a BVH whose skeleton is SMPL-24 (e.g. written by `write_bvh`) exactly, without retargeting.

    Lengths in centimetres are detected from the offsets (a skeleton 100x ours) and converted."""
    from vmclip.motion.bvh_read import axis_rotations, parse_bvh

    path = Path(path)
    try:
        raw = path.read_bytes() if data is None else bytes(data)
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    text = raw.decode("latin-1")
    if smpl_bvh_joint_names(text) is None:
        raise InputError(f"{path}: not an SMPL-24 BVH (joint names or hierarchy differ)")
    bvh = parse_bvh(text, str(path))
    n_frames = bvh.values.shape[0]
    size = np.abs(bvh.offsets).sum() / np.abs(REST_OFFSETS).sum()
    scale = 0.01 if size > 10 else 1.0  # centimetres -> metres
    mats = np.empty((n_frames, NUM_JOINTS, 3, 3))
    trans = np.zeros((n_frames, 3))
    col = 0
    for j, name in enumerate(bvh.names):
        chans = bvh.channels[j]
        block = bvh.values[:, col : col + len(chans)]
        col += len(chans)
        rot_k = [k for k, c in enumerate(chans) if c[1:].lower() == "rotation"]
        ours = JOINT_NAMES.index(name)
        mats[:, ours] = axis_rotations(block[:, rot_k], "".join(chans[k][0] for k in rot_k))
        if bvh.parents[j] < 0:
            trans[:] = bvh.offsets[j]
            for k, c in enumerate(chans):
                if c[1:].lower() == "position":
                    trans[:, "XYZ".index(c[0].upper())] = block[:, k]
    fps = 1.0 / bvh.frame_time
    if abs(fps - round(fps, 3)) < 1e-4:  # undo the rounding of "Frame Time" (1/30 -> 30.0000003)
        fps = round(fps, 3)
    if not (1 <= fps <= 1000):
        raise InputError(f"{path}: frame time {bvh.frame_time} s is not a usable frame rate")
    return Motion.from_matrices(mats, trans * scale, fps)


def write_bvh(motion: Motion, path: str | Path, offsets: np.ndarray | None = None, units: str = "m") -> Path:
    """Write `motion` as a BVH file (atomically: a failed write leaves no file behind)."""
    path = Path(path)
    if path.suffix.lower() != ".bvh":
        raise InputError(f"{path}: BVH output must end in .bvh")
    text = bvh_text(motion, offsets, units)
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="ascii")
    return path
