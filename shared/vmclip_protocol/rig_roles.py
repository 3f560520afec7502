"""Which bone of a skeleton plays which SMPL-24 role, and the rest-pose calibration between them.

One set of rules for the backend's mocap retargeter (`vmclip.motion.retarget`) and the Blender
add-on's rig retargeter, which vendors only this package. Pure Python + numpy.

Names are compared after `normalise` (lower case, separators, known rig prefixes and suffixes
dropped); the candidates list the left side with `{left}`/`{l}` standing for the side, the right
side is derived. Rig families covered: BVH/CMU/Bandai-Namco/iClone (`CC_Base_`), Mixamo
(`mixamorig:`), Unreal's Mannequin and MakeHuman's game skeleton (`thigh_l`, `ball_l`), MakeHuman's
default skeleton and Anny (`upperleg01.L`), VRM humanoid and VRoid (`leftUpperLeg`, `J_Bip_L_`),
Auto-Rig Pro (`thigh_stretch.l`, `.x`), Rigify (`thigh.L`, `DEF-`, `spine.006`) and SMPL itself.
"""

from __future__ import annotations

import re

import numpy as np

from .wire import JOINT_NAMES

PARENTS: tuple[int, ...] = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)
ROLE_INDEX: dict[str, int] = {n: i for i, n in enumerate(JOINT_NAMES)}

# Normalised name candidates, best first; {left}/{l} stand for the side (left/l or right/r).
LEFT_CANDIDATES: dict[str, list[str]] = {
    "left_hip": [
        "{left}upleg",
        "upperleg{l}",
        "{l}thigh",
        "{left}thigh",
        "thigh{l}",
        "{l}femur",
        "{left}upperleg",
        "{left}hip",
        "{l}upleg",
        "upperleg01{l}",
        "{l}upperleg",
    ],
    "left_knee": [
        "{left}leg",
        "lowerleg{l}",
        "{l}calf",
        "{left}shin",
        "shin{l}",
        "{l}tibia",
        "{left}lowerleg",
        "{left}knee",
        "{l}leg",
        "calf{l}",
        "{left}calf",
        "lowerleg01{l}",
        "leg{l}",
        "{l}lowerleg",
    ],
    "left_ankle": ["{left}foot", "foot{l}", "{l}foot", "{left}ankle", "ankle{l}"],
    "left_foot": [
        "{left}toebase",
        "toes{l}",
        "{l}toebase",
        "{l}toes",
        "{left}toe",
        "{left}toes",
        "toe{l}",
        "toebase{l}",
        "{left}foot@end",
        "foot{l}@end",
        "{l}foot@end",
        "{left}ankle@end",
        "ball{l}",
        "toes01{l}",
        "toe31{l}",
    ],
    "left_shoulder": [
        "{left}arm",
        "upperarm{l}",
        "{l}upperarm",
        "{left}upperarm",
        "{l}humerus",
        "{left}shoulder",
        "{l}arm",
        "arm{l}",
        "upperarm01{l}",
    ],
    "left_collar": [
        "{left}collar",
        "{l}clavicle",
        "shoulder{l}",
        "{left}clavicle",
        "{left}shoulder",
        "clavicle{l}",
        "{l}shoulder",
    ],
    "left_elbow": [
        "{left}forearm",
        "lowerarm{l}",
        "{l}forearm",
        "{left}lowerarm",
        "forearm{l}",
        "{l}radius",
        "{left}elbow",
        "{l}elbow",
        "lowerarm01{l}",
        "{l}lowerarm",
    ],
    "left_wrist": [
        "{left}wrist",
        "{l}wrist",
        "{left}hand",
        "hand{l}",
        "{l}hand",
        "forearm{l}@end",
        "{left}forearm@end",
        "lowerarm{l}@end",
        "wrist{l}",
    ],
    "left_hand": [
        "{left}handmiddle1",
        "{l}mid1",
        "{l}fingers",
        "{left}fingers",
        "{left}fingerbase",
        "{left}handmid",
        "{left}handend",
        "{left}hand@end",
        "hand{l}@end",
        "{l}hand@end",
        "{l}hand",
        "{left}wrist@end",
        "finger31{l}",
        "middle01{l}",
        "{l}middle1",
        "{left}middleproximal",
    ],
}
CENTRE_CANDIDATES: dict[str, list[str]] = {
    "pelvis": ["hips", "hip", "pelvis", "root"],
    "neck": ["lowerneck", "neck", "necktwist01", "neck01"],
    "head": ["head", "face"],
}
# Rig prefixes dropped by `normalise` (after lower-casing and dropping separators).
PREFIXES = ("ccbase", "mixamorig", "joint", "bip01", "def")
# Auto-Rig Pro: its deform bones end in `_stretch` and its centre bones in `.x`.
_ARP_SUFFIX = re.compile(r"(_stretch)?\.x$|_stretch(?=\.[lr]$)", re.IGNORECASE)
# VRoid: `J_Bip_C_Hips`, `J_Bip_L_UpperArm` (side letter after the prefix).
_VROID = re.compile(r"^J_(?:Bip|Adj|Sec)_([CLR])_", re.IGNORECASE)
# Roles resolved in this order, so that ambiguous names (CMU's "LeftShoulder" is the collar in some
# rigs and the upper arm in others) go to the role that needs them most.
ROLE_ORDER = [
    "pelvis",
    "left_hip",
    "left_knee",
    "left_ankle",
    "left_foot",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "left_collar",
    "left_hand",
    "neck",
    "head",
]
# Without these a skeleton is not taken for a humanoid.
REQUIRED_ROLES = [
    "pelvis",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
]
SPINE_ROLES = ("spine1", "spine2", "spine3")
# Rigify's metarig (and its generated DEF- bones) name its trunk spine, spine.001 ... spine.006: the
# pelvis, three spine bones, two neck bones and the head.
_RIGIFY_TRUNK = {"pelvis": "spine", "neck": "spine004", "head": "spine006"}

# Primary child of each SMPL joint (the bone whose direction it controls); -1 for leaves.
PRIMARY_CHILD: tuple[int, ...] = tuple(
    {0: ROLE_INDEX["spine1"], 9: ROLE_INDEX["neck"]}.get(
        j, next((c for c, p in enumerate(PARENTS) if p == j), -1)
    )
    for j in range(len(JOINT_NAMES))
)


def normalise(name: str) -> str:
    """Lower case without separators, rig prefixes (`mixamorig:`, `CC_Base_`, `DEF-` ...) and rig
    suffixes (Auto-Rig Pro's `_stretch`, `.x`); VRoid's `J_Bip_L_` becomes the side letter."""
    name = _ARP_SUFFIX.sub("", name)
    vroid = _VROID.match(name)
    if vroid:
        side = vroid.group(1).lower()
        name = ("" if side == "c" else side) + name[vroid.end() :]
    n = re.sub(r"[\s_.:\-]", "", name.lower())
    for p in PREFIXES:
        if n.startswith(p) and len(n) > len(p) + 1:
            n = n[len(p) :]
    return n


def side_candidate(cand: str, right: bool) -> str:
    return cand.replace("{left}", "right" if right else "left").replace("{l}", "r" if right else "l")


def role_candidates() -> dict[str, list[str]]:
    """SMPL role -> normalised name candidates, best first (a trailing `@end` means an end site)."""
    out: dict[str, list[str]] = dict(CENTRE_CANDIDATES)
    for role, cands in LEFT_CANDIDATES.items():
        out[role] = [side_candidate(c, False) for c in cands]
        out["right_" + role[5:]] = [side_candidate(c, True) for c in cands]
    return out


def resolution_order() -> list[str]:
    """Roles in the order names are given out (left before right, see ROLE_ORDER)."""
    order = []
    for role in ROLE_ORDER:
        order.append(role)
        if role.startswith("left_"):
            order.append("right_" + role[5:])
    return order


def trunk_overrides(normalised: set[str]) -> dict[str, str]:
    """Role -> normalised name for rigs whose trunk names say nothing (Rigify's spine.00N)."""
    if {"spine", "spine004", "spine006", "thighl", "thighr"} <= normalised:
        return dict(_RIGIFY_TRUNK)
    return {}


def match_names(
    names: list[str], has_end=lambda i: False, usable=lambda i: True
) -> dict[str, tuple[int, bool]]:
    """Role -> (index into `names`, is-end-site) by the name rules; roles without a match are absent.

    `has_end(i)`: whether skeleton point i has an end site (a leaf's tail); `usable(i)`: whether i
    may take a role (a skeleton's deform bones, say)."""
    norm = [normalise(n) for n in names]
    index: dict[str, int] = {}
    for i, n in enumerate(norm):
        if usable(i):
            index.setdefault(n, i)
    if set(index) >= {normalise(r) for r in JOINT_NAMES}:  # SMPL-24 itself (a BVH we wrote, our rig)
        return {r: (index[normalise(r)], False) for r in JOINT_NAMES}
    cands = role_candidates()
    override = trunk_overrides(set(index))
    used: set[int] = set()
    out: dict[str, tuple[int, bool]] = {}
    for role in resolution_order():
        options = [override[role]] if role in override else cands[role]
        for cand in options:
            base, _, end = cand.partition("@")
            j = index.get(base)
            if j is None:
                continue
            if end:
                if has_end(j):
                    out[role] = (j, True)
                    break
                continue
            if j in used:
                continue
            used.add(j)
            out[role] = (j, False)
            break
    return out


def spine_points(chain_points: np.ndarray, fractions=None) -> np.ndarray:
    """Points (3, 3) of SMPL's spine1..3 along a pelvis-to-neck chain of points (K, 3), at SMPL's
    length fractions; also returns for each the chain segment it lies on (see `spine_segments`)."""
    return spine_segments(chain_points, fractions)[0]


def spine_segments(chain_points: np.ndarray, fractions=None) -> tuple[np.ndarray, list[int]]:
    """(points (3, 3), segment index of each) of SMPL's spine1..3 along a pelvis-to-neck chain."""
    fractions = SPINE_FRACTIONS if fractions is None else fractions
    chain_points = np.asarray(chain_points, dtype=np.float64)
    seg = np.linalg.norm(np.diff(chain_points, axis=0), axis=-1)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    total = max(cum[-1], 1e-9)
    pts, segs = [], []
    for f in fractions:
        s = f * total
        k = int(np.clip(np.searchsorted(cum, s, side="right") - 1, 0, len(seg) - 1))
        w = (s - cum[k]) / max(seg[k], 1e-9)
        pts.append((1 - w) * chain_points[k] + w * chain_points[k + 1])
        segs.append(k)
    return np.array(pts), segs


# --- rest calibration ---------------------------------------------------------------------------


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(n, 1e-12)


def shortest_rotation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) taking unit directions a onto b along the shortest arc."""
    a, b = np.broadcast_arrays(_unit(np.asarray(a, dtype=np.float64)), _unit(np.asarray(b, dtype=np.float64)))
    v = np.cross(a, b)
    c = (a * b).sum(-1)
    # antiparallel: rotate by pi about any axis perpendicular to a
    anti = c < -1 + 1e-8
    if np.any(anti):
        alt = np.where(np.abs(a[..., :1]) < 0.9, np.array([1.0, 0, 0]), np.array([0, 1.0, 0]))
        perp = _unit(np.cross(a, alt))
        v = np.where(anti[..., None], perp, v)
    k = np.zeros(v.shape + (3,))
    k[..., 0, 1], k[..., 0, 2] = -v[..., 2], v[..., 1]
    k[..., 1, 0], k[..., 1, 2] = v[..., 2], -v[..., 0]
    k[..., 2, 0], k[..., 2, 1] = -v[..., 1], v[..., 0]
    scale = np.where(anti, 0.0, 1.0 / np.maximum(1.0 + c, 1e-12))[..., None, None]
    rot = np.eye(3) + k + (k @ k) * scale
    if np.any(anti):
        p = v[..., :, None]
        rot = np.where(anti[..., None, None], 2 * (p @ np.swapaxes(p, -1, -2)) - np.eye(3), rot)
    return rot


def rest_calibration(role: str, smpl_offsets: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """Constant rotation (3, 3) from SMPL's rest frame of `role` to the skeleton's: the shortest
    rotation taking SMPL's rest bone onto the skeleton's rest bone. `rest` (24, 3): the skeleton's
    rest point of every role in SMPL's axes (Y up, facing +Z), NaN where it has none. T-pose, A-pose
    and arms-down rests all reduce to this; the head is neutral (a standing rest pose holds it level
    and looking ahead, while SMPL's neck-to-head bone leans forward)."""
    if role == "head":
        return np.eye(3)
    j = ROLE_INDEX[role]
    c = PRIMARY_CHILD[j]
    if c >= 0 and np.all(np.isfinite(rest[c])):
        smpl_bone, src_bone = smpl_offsets[c], rest[c] - rest[j]
    else:  # leaves and joints without a mapped child: the bone from the parent
        p = PARENTS[j]
        smpl_bone, src_bone = smpl_offsets[j], rest[j] - rest[p]
    if not np.all(np.isfinite(src_bone)) or np.linalg.norm(src_bone) < 1e-9:
        return np.eye(3)
    return shortest_rotation(smpl_bone, src_bone)


def _default_spine_fractions() -> np.ndarray:
    # SMPL's pelvis-to-neck segment lengths (vmclip.motion.skeleton's rest offsets of spine1..neck).
    lens = np.linalg.norm(
        np.array([(0.0, 0.110, -0.015), (0.0, 0.135, 0.010), (0.0, 0.055, 0.005), (0.0, 0.215, -0.030)]),
        axis=-1,
    )
    return np.cumsum(lens)[:3] / np.sum(lens)


SPINE_FRACTIONS: np.ndarray = _default_spine_fractions()
