"""Acclaim ASF (skeleton) / AMC (motion) reader, as used by the CMU mocap database.

No maintained PyPI parser covers ASF/AMC, so this is our own. Conventions (Acclaim/CMU): each bone has
a rest `direction` and `length` in world axes and an `axis` rotation C (Euler angles, in the listed
order about fixed axes); a frame's dof values give M in the same way, and the bone's global rotation
is W = W_parent C M C^-1. The AMC motion block is parsed as one token array (every frame lists the
same bones in the same order in CMU files), so a 4 MB trial loads in a fraction of a second.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vmclip.errors import InputError
from vmclip.motion.bvh_read import SourceMotion, axis_rotations

_ROT_DOFS = ("rx", "ry", "rz")
_TRANS_DOFS = ("tx", "ty", "tz")


@dataclass
class AsfSkeleton:
    names: list[str]  # "root" first, then the bones
    parents: list[int]
    direction: np.ndarray  # (J, 3) unit directions (root: 0)
    length: np.ndarray  # (J,)
    axis: np.ndarray  # (J, 3, 3) C matrices
    dofs: list[list[str]]  # per joint, e.g. ["rx", "rz"]; root: its `order`
    root_position: np.ndarray = field(default_factory=lambda: np.zeros(3))


def _fixed_axes(angles_deg: np.ndarray, order: str) -> np.ndarray:
    """Rotations about fixed axes applied in `order` (e.g. "XYZ": X first) -> R_Z R_Y R_X."""
    return axis_rotations(np.asarray(angles_deg, dtype=np.float64)[..., ::-1].reshape(-1, 3), order[::-1])


def parse_asf(text: str, where: str = "asf") -> AsfSkeleton:
    if ":bonedata" not in text or ":hierarchy" not in text:
        raise InputError(f"{where}: not an ASF skeleton (no :bonedata/:hierarchy section)")
    root_order, root_axis, root_pos, root_orient = _parse_root(text, where)
    names = ["root"]
    direction = [np.zeros(3)]
    length = [0.0]
    axis = [_fixed_axes(root_orient, root_axis)[0]]
    dofs: list[list[str]] = [root_order]
    bonedata = text.split(":bonedata", 1)[1].split(":hierarchy", 1)[0]
    for block in re.findall(r"begin(.*?)end", bonedata, flags=re.S):
        name, d, ln, c, bone_dofs = _parse_bone(block, where)
        names.append(name)
        direction.append(d / max(np.linalg.norm(d), 1e-12))
        length.append(ln)
        axis.append(c)
        dofs.append(bone_dofs)
    parents = _parse_hierarchy(text, names, where)
    # order joints so that parents come first (FK walks the list once)
    order: list[int] = []
    pending = [0]
    while pending:
        j = pending.pop(0)
        order.append(j)
        pending += [c for c, p in enumerate(parents) if p == j]
    remap = {old: new for new, old in enumerate(order)}
    return AsfSkeleton(
        names=[names[i] for i in order],
        parents=[remap[parents[i]] if parents[i] >= 0 else -1 for i in order],
        direction=np.array([direction[i] for i in order]),
        length=np.array([length[i] for i in order]),
        axis=np.array([axis[i] for i in order]),
        dofs=[dofs[i] for i in order],
        root_position=root_pos,
    )


def _parse_root(text: str, where: str) -> tuple[list[str], str, np.ndarray, np.ndarray]:
    """The :root section: channel order, axis order, position and orientation."""
    root_order = ["tx", "ty", "tz", "rx", "ry", "rz"]
    root_axis = "XYZ"
    root_pos = np.zeros(3)
    root_orient = np.zeros(3)
    m = re.search(r":root(.*?)(?=^\s*:)", text, flags=re.S | re.M)
    if m:
        for line in m.group(1).splitlines():
            toks = line.split()
            if not toks:
                continue
            key = toks[0].lower()
            try:
                if key == "order":
                    root_order = [t.lower() for t in toks[1:]]
                elif key == "axis":
                    root_axis = toks[1].upper()
                elif key == "position":
                    root_pos = np.array([float(t) for t in toks[1:4]])
                elif key == "orientation":
                    root_orient = np.array([float(t) for t in toks[1:4]])
            except (ValueError, IndexError):
                raise InputError(f"{where}: malformed ASF :root line {line.strip()!r}") from None
    return root_order, root_axis, root_pos, root_orient


def _parse_bone(block: str, where: str) -> tuple[str, np.ndarray, float, np.ndarray, list[str]]:
    """One :bonedata block: name, direction, length, axis frame and rotation dofs."""
    info: dict[str, list[str]] = {}
    for line in block.splitlines():
        toks = line.split()
        if toks and not toks[0].startswith("("):
            info[toks[0].lower()] = toks[1:]
    try:
        name = info["name"][0]
        d = np.array([float(t) for t in info["direction"][:3]])
        ln = float(info["length"][0])
        ax = info.get("axis", ["0", "0", "0", "XYZ"])
        c = _fixed_axes(np.array([float(t) for t in ax[:3]]), ax[3].upper() if len(ax) > 3 else "XYZ")[0]
    except (KeyError, ValueError, IndexError):
        raise InputError(f"{where}: malformed ASF bone block: {' '.join(block.split())[:60]!r}") from None
    bone_dofs = [t.lower() for t in info.get("dof", [])]
    if any(t not in _ROT_DOFS for t in bone_dofs):
        raise InputError(f"{where}: bone {name}: unsupported dof {bone_dofs}")
    return name, d, ln, c, bone_dofs


def _parse_hierarchy(text: str, names: list[str], where: str) -> list[int]:
    """The :hierarchy section: each bone's parent index (-1 for the root)."""
    index = {n: i for i, n in enumerate(names)}
    parents = [-2] * len(names)
    parents[0] = -1
    hier = text.split(":hierarchy", 1)[1]
    body = re.search(r"begin(.*?)end", hier, flags=re.S)
    if body is None:
        raise InputError(f"{where}: truncated ASF (:hierarchy has no begin/end)")
    for line in body.group(1).splitlines():
        toks = line.split()
        if len(toks) < 2:
            continue
        if any(t not in index for t in toks):
            raise InputError(f"{where}: hierarchy names an unknown bone in {line.strip()!r}")
        for child in toks[1:]:
            parents[index[child]] = index[toks[0]]
    orphans = [names[i] for i, p in enumerate(parents) if p == -2]
    if orphans:
        raise InputError(f"{where}: bones not in the hierarchy: {', '.join(orphans[:5])}")
    return parents


def parse_amc(text: str, skel: AsfSkeleton, where: str = "amc") -> dict[str, np.ndarray]:
    """Per-joint dof values (F, n_dof) in the ASF's dof order."""
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith(("#", ":"))]
    toks = " ".join(lines).split()
    if not toks:
        raise InputError(f"{where}: zero-length clip (no AMC frames)")
    if not toks[0].isdigit():
        raise InputError(f"{where}: not an AMC motion file (expected a frame number, got {toks[0][:20]!r})")
    n_dof = {n: len(d) for n, d in zip(skel.names, skel.dofs, strict=True)}
    # layout of one frame from the first one
    layout: list[tuple[str, int]] = []
    i = 1
    while i < len(toks) and not toks[i].isdigit():
        name = toks[i]
        if name not in n_dof:
            raise InputError(f"{where}: AMC names bone {name!r}, which the ASF skeleton does not have")
        layout.append((name, n_dof[name]))
        i += 1 + n_dof[name]
    per = 1 + sum(1 + k for _, k in layout)
    if len(toks) % per:
        raise InputError(
            f"{where}: truncated AMC: the last frame is incomplete ({len(toks) // per} complete frames)"
        )
    grid = np.array(toks, dtype=object).reshape(-1, per)
    out: dict[str, np.ndarray] = {}
    col = 1
    for name, k in layout:
        if not np.all(grid[:, col] == name):
            unknown = sorted({str(t) for t in grid[:, col]} - set(n_dof))
            if unknown:
                raise InputError(
                    f"{where}: AMC names bone {unknown[0]!r}, which the ASF skeleton does not have"
                )
            raise InputError(f"{where}: AMC frames do not all list the same bones in the same order")
        try:
            vals = grid[:, col + 1 : col + 1 + k].astype(np.float64)
        except ValueError:
            raise InputError(f"{where}: malformed AMC values for bone {name}") from None
        if not np.isfinite(vals).all():
            raise InputError(f"{where}: AMC motion contains NaN or infinite values (bone {name})")
        out[name] = vals
        col += 1 + k
    if "root" not in out:
        raise InputError(f"{where}: AMC frames have no root")
    return out


def amc_to_source(skel: AsfSkeleton, values: dict[str, np.ndarray], fps: float, where: str) -> SourceMotion:
    n_f = len(values["root"])
    n_j = len(skel.names)
    bone = skel.direction * skel.length[:, None]  # bone vectors (world rest axes)
    rest = np.zeros((n_j, 3))
    for j in range(1, n_j):
        p = skel.parents[j]
        # a bone starts where its parent ends; the root's children start at the root
        rest[j] = rest[p] + (bone[p] if p > 0 else 0.0)
    rest[:, :] += skel.root_position
    pos = np.empty((n_f, n_j, 3))
    rot = np.empty((n_f, n_j, 3, 3))
    for j, name in enumerate(skel.names):
        dof = skel.dofs[j]
        vals = values.get(name)
        angles = np.zeros((n_f, 3))
        trans = np.zeros((n_f, 3))
        if vals is not None:
            for k, d in enumerate(dof):
                if d in _ROT_DOFS:
                    angles[:, _ROT_DOFS.index(d)] = vals[:, k]
                elif d in _TRANS_DOFS:
                    trans[:, _TRANS_DOFS.index(d)] = vals[:, k]
        if j == 0:
            # root rotation order comes from its `order` line (rotation dofs in listed order)
            r_order = "".join(d[1].upper() for d in dof if d in _ROT_DOFS) or "XYZ"
            m = _fixed_axes(angles[:, ["XYZ".index(a) for a in r_order]], r_order)
            c = skel.axis[0]
            rot[:, 0] = c @ m @ c.T
            pos[:, 0] = trans + skel.root_position
            continue
        m = _fixed_axes(angles, "XYZ")
        c = skel.axis[j]
        p = skel.parents[j]
        rot[:, j] = rot[:, p] @ (c @ m @ c.T)
        pos[:, j] = pos[:, p] + (np.einsum("fab,b->fa", rot[:, p], bone[p]) if p > 0 else 0.0)
    end_sites = {j: bone[j] for j in range(1, n_j) if j not in skel.parents}
    return SourceMotion(
        list(skel.names), np.asarray(skel.parents), rest, pos, rot, float(fps), end_sites, where
    )


def find_asf(amc_path: Path) -> Path | None:
    """The ASF beside an AMC: `SS.asf` for CMU's `SS_TT.amc`, else the only .asf in the folder."""
    guess = amc_path.with_name(amc_path.name.split("_")[0] + ".asf")
    if guess.is_file():
        return guess
    found = sorted(amc_path.parent.glob("*.asf"))
    return found[0] if len(found) == 1 else None
