"""Retarget any parsed mocap skeleton onto SMPL-24 through global joint orientations.

How it works (all steps vectorised over frames):

1. Joint mapping. Every SMPL-24 role is matched to a source joint by normalised name (prefixes such
   as `CC_Base_`/`mixamorig:` and separators dropped; the right side is derived from the left list),
   an end site (`forearm.L@end`) or, for the spine, points along the source's pelvis-to-neck chain.
2. Axes and units. If the source's zero pose is a standing human (legs below the hips), its up axis
   and facing are read from it and rotated to Y up / facing +Z; otherwise (rigs with baked joint
   orients, e.g. Bandai-Namco, iClone) the BVH convention (Y up, +Z forward) is assumed. Units come
   from the leg length (m, cm, inch, CMU units or mm, whichever gives a human leg).
3. Calibration: the constant rotation between each source joint's frame and the SMPL joint's frame.
   On a standing rest pose: the shortest rotation taking SMPL's rest bone onto the source's zero-pose
   bone (T-pose, A-pose and arms-down rests all reduce to this; the head: neutral). Rigs whose zero
   pose is not a person (Bandai-Namco, iClone, Rokoko) are fitted on the clip by orthogonal
   Procrustes against anatomical frames. For every rig the limb twist is fitted to the knee/elbow
   hinge (the plane of the bent limb) and the foot roll so that a flat foot is level.
4. Per frame, SMPL global rotation = source global rotation x calibration, then a swing correction so
   that the SMPL bone points exactly where the source bone (or chain of bones) points. Pelvis and
   spine frames are built from anatomical landmarks (hip line, shoulder line, spine direction) so
   facing never depends on a rig's axis conventions.
5. Root translation: the source's mid-hip path scaled by the leg-length ratio (so steps match
   SMPL's legs); its height follows the source's lowest sole, knee or hand; the lowest sole of the
   clip sits on the floor (y = 0).
6. Planted feet: a two-bone leg IK removes the drift that differing proportions give a foot that
   stands still in the source (each thigh/shin turned by at most `MAX_IK` degrees).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from vmclip_protocol.rig_roles import (
    CENTRE_CANDIDATES,
    LEFT_CANDIDATES,
    REQUIRED_ROLES,
    ROLE_ORDER,
    normalise,
    rest_calibration,
    shortest_rotation,
    side_candidate,
)

from vmclip.errors import InputError
from vmclip.motion.bvh_read import SourceMotion
from vmclip.motion.kinematics import global_to_local, leg_length
from vmclip.motion.skeleton import JOINT_INDEX as J
from vmclip.motion.skeleton import (
    JOINT_NAMES,
    NUM_JOINTS,
    PARENTS,
    REST_OFFSETS,
    SOLE_BELOW_FOOT_JOINT,
    rest_positions,
)

# The name rules (candidates, prefixes, the order roles are given out, the roles a humanoid needs)
# live in vmclip_protocol.rig_roles, shared with the Blender add-on's rig retargeter.
_LEFT_CANDIDATES = LEFT_CANDIDATES
_CENTRE_CANDIDATES = CENTRE_CANDIDATES
_ORDER = ROLE_ORDER
_REQUIRED = REQUIRED_ROLES
_UNITS = (1.0, 0.01, 0.0254, 0.056444, 0.001)  # m, cm, inch, CMU ASF unit (1/0.45 inch), mm
_SPINE = ("spine1", "spine2", "spine3")
_END_OF = {
    "left_hand": "left_wrist",
    "right_hand": "right_wrist",
    "left_foot": "left_ankle",
    "right_foot": "right_ankle",
}


def _overrides(norm: list[str]) -> dict[str, str]:
    """Rigs whose arm joints are named one bone off from their position. Li et al.'s 38-joint CMU
    BVH puts `LeftShoulder` at the shoulder, `LeftArm` at the elbow and `LeftForeArm` at the wrist."""
    names = set(norm)
    out: dict[str, str] = {}
    smpl = {normalise(n): n for n in JOINT_NAMES}
    if set(smpl) <= names:  # our own SMPL-24 skeleton (e.g. a BVH we wrote): map one to one
        return {role: key for key, role in smpl.items() if role not in _SPINE}
    if {"leftshoulderroot", "lefthandmid", "thorax"} <= names:
        for side in ("left", "right"):
            out.update(
                {
                    f"{side}_collar": f"{side}shoulderroot",
                    f"{side}_shoulder": f"{side}shoulder",
                    f"{side}_elbow": f"{side}arm",
                    f"{side}_wrist": f"{side}forearm",
                    f"{side}_hand": f"{side}handmid",
                }
            )
    return out


_side = side_candidate


@dataclass(frozen=True)
class Anchor:
    """A point on the source skeleton: a joint, or a joint's end site (`end`)."""

    joint: int
    end: bool = False


@dataclass
class Mapping:
    anchors: dict[str, Anchor]  # SMPL role -> source point
    frames: dict[str, int]  # SMPL role -> source joint whose orientation drives it
    spine_chain: list[int]  # source joints from pelvis to neck (inclusive)
    head_mid_end: bool  # head = midpoint of the head joint and its end site (neck-less rigs)

    def describe(self, names: list[str]) -> dict[str, str]:
        return {k: names[a.joint] + ("@end" if a.end else "") for k, a in self.anchors.items()}


def map_skeleton(src: SourceMotion) -> Mapping:
    """Match SMPL roles to source joints by name; InputError when a required one is missing."""
    norm = [normalise(n) for n in src.names]
    index: dict[str, int] = {}
    for i, n in enumerate(norm):
        index.setdefault(n, i)
    candidates: dict[str, list[str]] = dict(_CENTRE_CANDIDATES)
    for role, cands in _LEFT_CANDIDATES.items():
        candidates[role] = [_side(c, False) for c in cands]
        candidates["right_" + role[5:]] = [_side(c, True) for c in cands]
    used: set[int] = set()
    anchors: dict[str, Anchor] = {}
    order = []
    for role in _ORDER:
        order.append(role)
        if role.startswith("left_"):
            order.append("right_" + role[5:])
    override = _overrides(norm)
    for role in order:
        if role in override and override[role] in index:
            j = index[override[role]]
            used.add(j)
            anchors[role] = Anchor(j)
            continue
        for cand in candidates[role]:
            base, _, end = cand.partition("@")
            j = index.get(base)
            if j is None:
                continue
            if end:
                site = src.end_sites.get(j)
                if site is None or np.linalg.norm(site) < 1e-6:
                    continue
                anchors[role] = Anchor(j, True)
                break
            if j in used:
                continue
            base_role = _END_OF.get(role)
            if (
                base_role in anchors
                and np.linalg.norm(src.rest[j] - _rest_point(src, anchors[base_role])) < 1e-6
            ):
                continue  # zero-length bone (e.g. a finger base sitting on the wrist): no direction
            used.add(j)
            anchors[role] = Anchor(j)
            break
    head_mid_end = False
    if "neck" not in anchors and "head" in anchors:
        # Rigs without a neck joint (DeepMimic): the head joint sits at the neck's base; the head
        # centre is halfway to the head's end site.
        h = anchors["head"].joint
        if h in src.end_sites and np.linalg.norm(src.end_sites[h]) > 1e-6:
            anchors["neck"] = Anchor(h)
            head_mid_end = True
    missing = [r for r in _REQUIRED + ["neck"] if r not in anchors]
    if "head" not in anchors:
        missing.append("head")
    if missing:
        shown = ", ".join(src.names[:40]) + (" ..." if len(src.names) > 40 else "")
        raise InputError(
            f"{src.where}: unknown skeleton: no joint found for {', '.join(missing)} (joint names: {shown})"
        )
    frames = {
        r: a.joint
        for r, a in anchors.items()
        if r not in ("pelvis", "neck", "left_hand", "right_hand", "left_foot", "right_foot")
    }
    # spine chain: ancestors of the neck down to the first one shared with the pelvis
    pel = anchors["pelvis"].joint
    pel_anc = set()
    j = pel
    while j >= 0:
        pel_anc.add(j)
        j = int(src.parents[j])
    chain = []
    j = anchors["neck"].joint
    while j >= 0 and j not in pel_anc:
        chain.append(j)
        j = int(src.parents[j])
    chain = [pel] + chain[::-1]
    if len(chain) < 2:
        raise InputError(f"{src.where}: unknown skeleton: the neck is not above the pelvis in the hierarchy")
    return Mapping(anchors, frames, chain, head_mid_end)


# --- small vectorised geometry ------------------------------------------------------------------


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(n, 1e-12)


def frame_from(primary: np.ndarray, lateral: np.ndarray) -> np.ndarray:
    """Orthonormal frame (columns x, y, z) with y along `primary` and x towards `lateral`."""
    y = _unit(primary)
    x = _unit(lateral - (lateral * y).sum(-1, keepdims=True) * y)
    z = np.cross(x, y)
    return np.stack([x, y, z], axis=-1)


# --- retargeting --------------------------------------------------------------------------------


@dataclass
class Retargeted:
    local_rot: np.ndarray  # (F, 24, 3, 3)
    trans: np.ndarray  # (F, 3) metres
    targets: np.ndarray  # (F, 24, 3) source landmark per SMPL joint (metres, our axes, scaled by `scale`)
    scale: float  # SMPL leg length / source leg length (source metres -> our body)
    unit: float  # source unit in metres
    world: np.ndarray  # (3, 3) source world -> ours
    mapping: Mapping


def _point(
    src: SourceMotion, a: Anchor, pos: np.ndarray, rot: np.ndarray, site_xform: np.ndarray | None = None
) -> np.ndarray:
    if not a.end:
        return pos[..., a.joint, :]
    site = src.end_sites[a.joint]
    if site_xform is not None:  # end-site offsets live in the joint's frame: our axes and scale
        site = site_xform @ site
    return pos[..., a.joint, :] + (rot[..., a.joint, :, :] @ site[:, None])[..., 0]


def _rest_point(src: SourceMotion, a: Anchor) -> np.ndarray:
    p = src.rest[a.joint]
    return p + src.end_sites[a.joint] if a.end else p


def _targets(
    src: SourceMotion,
    m: Mapping,
    pos: np.ndarray,
    rot: np.ndarray,
    rest_chain: np.ndarray,
    fractions: np.ndarray,
    site_xform: np.ndarray | None = None,
) -> np.ndarray:
    """(…, 24, 3) landmark of every SMPL joint on the source (NaN where the source has none)."""
    shape = pos.shape[:-2]
    out = np.full(shape + (NUM_JOINTS, 3), np.nan)
    for role, a in m.anchors.items():
        out[..., J[role], :] = _point(src, a, pos, rot, site_xform)
    if m.head_mid_end:
        h = m.anchors["head"].joint
        out[..., J["head"], :] = 0.5 * (pos[..., h, :] + _point(src, Anchor(h, True), pos, rot, site_xform))
    # spine joints: points along the pelvis-neck chain at SMPL's length fractions
    chain_pts = pos[..., m.spine_chain, :]
    seg = np.linalg.norm(np.diff(rest_chain, axis=0), axis=-1)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    total = max(cum[-1], 1e-9)
    for name, f in zip(_SPINE, fractions, strict=True):
        s = f * total
        k = int(np.clip(np.searchsorted(cum, s, side="right") - 1, 0, len(seg) - 1))
        w = (s - cum[k]) / max(seg[k], 1e-9)
        out[..., J[name], :] = (1 - w) * chain_pts[..., k, :] + w * chain_pts[..., k + 1, :]
    return out


def _detect_world(rest_t: np.ndarray) -> tuple[np.ndarray, bool]:
    """Rotation from the source world to ours (Y up, facing +Z) read from a standing rest pose;
    identity (BVH convention) when the zero pose is not a standing human."""
    up = _unit(rest_t[J["neck"]] - rest_t[J["pelvis"]])
    left = _unit(rest_t[J["left_hip"]] - rest_t[J["right_hip"]])
    leg = _unit(rest_t[J["left_ankle"]] - rest_t[J["left_hip"]])
    if not (np.all(np.isfinite([up, left, leg])) and leg @ up < -0.8 and abs(left @ up) < 0.3):
        return np.eye(3), False

    def snap(v: np.ndarray) -> np.ndarray:
        k = int(np.argmax(np.abs(v)))
        out = np.zeros(3)
        out[k] = np.sign(v[k])
        return out

    up_s, left_s = snap(up), snap(left)
    if abs(up_s @ left_s) > 0.5:
        return np.eye(3), False
    fwd = np.cross(left_s, up_s)
    return np.stack([left_s, up_s, fwd]), True  # rows: maps left -> +x, up -> +y, forward -> +z


# How far the body's surface reaches below each joint (metres): the sole below the foot joints,
# flesh around the others. Used to find what touches the ground in each frame.
BODY_RADIUS = np.array(
    [
        {
            "pelvis": 0.09,
            "spine1": 0.09,
            "spine2": 0.10,
            "spine3": 0.10,
            "neck": 0.06,
            "head": 0.10,
            "left_hip": 0.08,
            "right_hip": 0.08,
            "left_knee": 0.05,
            "right_knee": 0.05,
            "left_collar": 0.06,
            "right_collar": 0.06,
            "left_shoulder": 0.05,
            "right_shoulder": 0.05,
            "left_elbow": 0.04,
            "right_elbow": 0.04,
            "left_wrist": 0.03,
            "right_wrist": 0.03,
            "left_hand": 0.02,
            "right_hand": 0.02,
        }.get(n, SOLE_BELOW_FOOT_JOINT)
        for n in JOINT_NAMES
    ]
)

# The joints that usually touch the ground (soles, knees, hands): the source's lowest one sets the
# height. The trunk is left out: how deep its joints sit inside the body differs between rigs.
_CONTACTS = [J[f"{s}_{p}"] for s in ("left", "right") for p in ("ankle", "foot", "knee", "wrist", "hand")]
_FEET = [J[n] for n in ("left_ankle", "right_ankle", "left_foot", "right_foot")]

_SMPL_REST = rest_positions()
_SMPL_LEG = leg_length(_SMPL_REST)
# primary child of each SMPL joint (the bone whose direction it controls); -1 for leaves
_PRIMARY_CHILD = [-1] * NUM_JOINTS
for _j, _p in enumerate(PARENTS):
    if _p >= 0 and _PRIMARY_CHILD[_p] == -1:
        _PRIMARY_CHILD[_p] = _j
_PRIMARY_CHILD[J["spine3"]] = J["neck"]
_PRIMARY_CHILD[J["pelvis"]] = J["spine1"]
_SPINE_FRACTIONS = (lambda lens: np.cumsum(lens)[:3] / np.sum(lens))(
    np.linalg.norm(REST_OFFSETS[[J["spine1"], J["spine2"], J["spine3"], J["neck"]]], axis=-1)
)


# Limb joints whose twist a bent limb reveals: joint -> (upper, middle, lower) roles of the limb and
# the direction the lower segment swings in SMPL's T-pose when the limb bends.
_LIMBS = {}
for _s, _sign in (("left", 1.0), ("right", -1.0)):
    _LIMBS[f"{_s}_hip"] = _LIMBS[f"{_s}_knee"] = (
        (f"{_s}_hip", f"{_s}_knee", f"{_s}_ankle"),
        np.array([0, 0, -1.0]),
    )
    _LIMBS[f"{_s}_shoulder"] = _LIMBS[f"{_s}_elbow"] = (
        (f"{_s}_shoulder", f"{_s}_elbow", f"{_s}_wrist"),
        np.array([0, 0, 1.0]),
    )


def _polar(m: np.ndarray) -> np.ndarray:
    """Nearest rotation to a 3x3 matrix (orthogonal Procrustes)."""
    u, _, vt = np.linalg.svd(m)
    d = np.sign(np.linalg.det(u @ vt))
    return u @ np.diag([1.0, 1.0, d]) @ vt


@dataclass
class _Source:
    """The source recording in our axes and scale: `pos` (F, J, 3) and `rot` (F, J, 3, 3) global
    joint poses, `tgt` (F, 24, 3) the landmark of every SMPL joint on it (NaN where it has none),
    `has` (24,) which SMPL joints have one, `rest_t` / `rest_w` the zero pose's landmarks in the
    source's axes and units / in ours, `rest_human` whether that zero pose is a standing person."""

    pos: np.ndarray
    rot: np.ndarray
    tgt: np.ndarray
    has: np.ndarray
    rest_t: np.ndarray
    rest_w: np.ndarray
    rest_human: bool
    world: np.ndarray
    scale: float
    unit: float

    @property
    def num_frames(self) -> int:
        return int(self.tgt.shape[0])

    def aim(self, j: int) -> np.ndarray | None:
        """The source's direction (F, 3) of SMPL joint j's primary bone, if the source has both ends."""
        c = _PRIMARY_CHILD[j]
        return self.tgt[:, c] - self.tgt[:, j] if c >= 0 and self.has[c] and self.has[j] else None


def _source_in_our_frame(src: SourceMotion, m: Mapping) -> _Source:
    """Axes and units (module docstring, step 2): the source's world turned to ours (read from a
    standing rest pose) and scaled so that its legs are SMPL's."""
    rest_chain = src.rest[m.spine_chain]
    eye = np.broadcast_to(np.eye(3), src.rest.shape[:1] + (3, 3))
    rest_t = _targets(src, m, src.rest, eye, rest_chain, _SPINE_FRACTIONS)
    world, rest_human = _detect_world(rest_t)
    leg = leg_length(rest_t)
    if not leg > 0:
        raise InputError(f"{src.where}: degenerate skeleton (zero leg length)")
    unit = min(_UNITS, key=lambda u: abs(np.log(leg * u / 0.85)))
    scale = _SMPL_LEG / (leg * unit)  # source metres -> our body's metres
    k = unit * scale
    pos = (src.pos @ world.T) * k  # (F, J, 3)
    rot = world @ src.rot @ world.T  # conjugated into our axes
    tgt = _targets(src, m, pos, rot, rest_chain, _SPINE_FRACTIONS, k * world)
    return _Source(
        pos=pos,
        rot=rot,
        tgt=tgt,
        has=~np.isnan(tgt[0, :, 0]),
        rest_t=rest_t,
        rest_w=rest_t @ world.T,
        rest_human=rest_human,
        world=world,
        scale=scale,
        unit=unit,
    )


class _TrunkFrames:
    """The pelvis, spine and neck frames from anatomical landmarks (hip line, shoulder line, the
    spine's direction), so that facing never depends on a rig's axis conventions."""

    def __init__(self, s: _Source) -> None:
        self.s = s
        has = s.has
        self.lat_pelvis = self.lateral("left_hip", "right_hip")
        # collar bases that coincide (CMU, rigify) give no shoulder line: use the shoulders then
        use_collars = (
            has[J["left_collar"]]
            and has[J["right_collar"]]
            and np.linalg.norm(s.rest_t[J["left_collar"]] - s.rest_t[J["right_collar"]])
            > 0.3 * np.linalg.norm(s.rest_t[J["left_shoulder"]] - s.rest_t[J["right_shoulder"]])
        )
        self.lat_chest = (
            self.lateral("left_collar", "right_collar")
            if use_collars
            else self.lateral("left_shoulder", "right_shoulder")
        )

    def lateral(self, left: str, right: str) -> np.ndarray:
        return self.s.tgt[:, J[left]] - self.s.tgt[:, J[right]]

    def frame(self, j: int, lat: np.ndarray) -> np.ndarray:
        """Global rotation (F, 3, 3) of joint j: its bone along the source's, x towards `lat`."""
        c = _PRIMARY_CHILD[j]
        f_src = frame_from(self.s.tgt[:, c] - self.s.tgt[:, j], lat)
        f_rest = frame_from(REST_OFFSETS[c], np.array([1.0, 0.0, 0.0]))
        return f_src @ f_rest.T

    def pelvis(self) -> np.ndarray:
        return self.frame(J["pelvis"], self.lat_pelvis)

    def spine(self, name: str) -> np.ndarray:
        """A spine joint: its lateral axis blends from the hips' to the shoulders' up the spine."""
        if name == "spine3":
            lat = self.lat_chest
        else:
            f = dict(zip(_SPINE, _SPINE_FRACTIONS, strict=True))[name]
            lat = (1 - f) * _unit(self.lat_pelvis) + f * _unit(self.lat_chest)
        return self.frame(J[name], lat)

    def neck(self, head_rot: np.ndarray) -> np.ndarray:
        """The neck: the head's lateral axis steers its twist."""
        return self.frame(J["neck"], _unit(self.lat_chest) + _unit(head_rot[..., :, 0]))


class _Calibrator:
    """Calibration (module docstring, step 3): the constant rotation between each source joint's
    frame and the SMPL joint's, per mapped joint; `calibrated` returns the joint's global rotation
    (F, 3, 3) with it applied. Joints are calibrated parents first (the references use the parent's
    global rotation); a wrist reuses its elbow's correction."""

    def __init__(self, src: SourceMotion, m: Mapping, s: _Source) -> None:
        self.src, self.m, self.s = src, m, s
        self.cals: dict[str, np.ndarray] = {}

    def references(self, name: str, parent_glob: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Anatomical guesses of the SMPL global rotation with per-frame weights, for calibrating
        rigs whose zero pose is not a standing human: the plane of a clearly bent knee or elbow,
        plus (weakly, so it decides only when the limb never bends) no twist relative to the parent."""
        s, n_f = self.s, self.s.num_frames
        j = J[name]
        a = s.aim(j)
        no_twist = (
            parent_glob
            if a is None
            else (shortest_rotation(parent_glob @ REST_OFFSETS[_PRIMARY_CHILD[j]], a) @ parent_glob)
        )
        if name.endswith("_ankle") and a is not None:
            # a foot flat on the floor has its lateral axis level: calibrates the foot's roll
            # (CMU's rest pose, for one, rolls the feet by ~20 degrees)
            toe = J[name.replace("ankle", "foot")]
            h_ankle, h_toe = s.tgt[:, j, 1], s.tgt[:, toe, 1]
            flat = (h_ankle - h_ankle.min() < 0.03) & (h_toe - h_toe.min() < 0.03)
            level = frame_from(a, np.cross([0.0, 1.0, 0.0], a))
            flat_ref = level @ frame_from(REST_OFFSETS[toe], np.array([1.0, 0.0, 0.0])).T
            return [(flat_ref, flat.astype(float)), (no_twist, np.full(n_f, 0.02))]
        if name not in _LIMBS:
            return [(no_twist, np.ones(n_f))]
        (r0, r1, r2), bend = _LIMBS[name]
        u, v = s.tgt[:, J[r1]] - s.tgt[:, J[r0]], s.tgt[:, J[r2]] - s.tgt[:, J[r1]]
        n = np.cross(u, v)
        w = np.linalg.norm(n, axis=-1) / np.maximum(
            np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1), 1e-12
        )
        n_rest = np.cross(REST_OFFSETS[J[r1]], bend)
        bent = frame_from(a, n) @ frame_from(REST_OFFSETS[_PRIMARY_CHILD[j]], n_rest).T
        # sin(bend) > 0.25: bent by more than ~15 degrees
        return [(bent, np.where(w > 0.25, w, 0.0)), (no_twist, np.full(n_f, 0.02))]

    def _fitted(self, name: str, g_src: np.ndarray, parent_glob: np.ndarray) -> np.ndarray:
        """Orthogonal Procrustes of the source rotations against the weighted references."""
        acc = sum(np.einsum("f,fba,fbc->ac", w, g_src, ref) for ref, w in self.references(name, parent_glob))
        return _polar(acc)

    def calibrated(self, name: str, parent_glob: np.ndarray) -> np.ndarray:
        g_src = self.s.rot[:, self.m.frames[name]]
        if self.s.rest_human:
            return self._on_human_rest(name, g_src, parent_glob)
        cals, m = self.cals, self.m
        chest = int(self.src.parents[m.anchors["neck"].joint])
        if name == "head" and chest >= 0 and not m.head_mid_end:
            # Baked-orient rigs build the spine, neck and head joints with one axis convention
            # (bones along local X or Y): the head takes the calibration of the source's chest
            # joint, which is exact because the shoulder line that orients SMPL's chest is rigid
            # to it -- so a head held down for a whole clip stays down.
            cal = _polar(np.einsum("fba,fbc->ac", self.s.rot[:, chest], parent_glob))
        elif name.endswith("_wrist") and name.replace("wrist", "elbow") in cals:
            cal = cals[name.replace("wrist", "elbow")]  # the hand continues the forearm's axes
        else:
            cal = self._fitted(name, g_src, parent_glob)
        cals[name] = cal
        return g_src @ cal

    def _on_human_rest(self, name: str, g_src: np.ndarray, parent_glob: np.ndarray) -> np.ndarray:
        """A standing rest pose: the rest calibration, with the limbs' twist and the feet's roll
        fitted on the clip."""
        cals = self.cals
        rest_cal = _rest_calibration(self.m, name, self.s.rest_w)
        elbow = name.replace("wrist", "elbow")
        if name.endswith("_wrist") and elbow in cals:
            # the hand keeps its rest relation to the forearm, whose twist the hinge corrected
            return g_src @ rest_cal @ cals[elbow]
        if name.endswith("_ankle") and self.s.aim(J[name]) is not None:
            return g_src @ self._fitted(name, g_src, parent_glob)
        if name not in _LIMBS:
            return g_src @ rest_cal
        # limbs: the knee/elbow hinge fixes the twist better than a rest pose whose palms or
        # knee caps may face anywhere; the rest calibration decides when the limb never bends
        bent, w = self.references(name, parent_glob)[0]
        cal = _polar(np.einsum("f,fba,fbc->ac", w, g_src, bent) + 0.02 * self.s.num_frames * rest_cal)
        cals[name] = rest_cal.T @ cal  # the correction, for the hand below
        return g_src @ cal


def _global_rotations(s: _Source, m: Mapping, trunk: _TrunkFrames, calib: _Calibrator) -> np.ndarray:
    """SMPL global rotations (F, 24, 3, 3) (module docstring, step 4): the trunk from landmarks, every
    other joint the calibrated source rotation swung so that its bone points where the source's does."""
    glob = np.empty((s.num_frames, NUM_JOINTS, 3, 3))
    head_rot = None
    for j in range(NUM_JOINTS):
        name = JOINT_NAMES[j]
        if name == "pelvis":
            glob[:, j] = trunk.pelvis()
        elif name in _SPINE:
            glob[:, j] = trunk.spine(name)
        elif name == "neck":
            # the head's lateral axis steers the neck's twist, so the head goes first
            head_rot = calib.calibrated("head", glob[:, J["spine3"]])
            glob[:, j] = trunk.neck(head_rot)
        elif name == "head":
            glob[:, j] = head_rot
        else:
            p = PARENTS[j]
            g = calib.calibrated(name, glob[:, p]) if name in m.frames else glob[:, p]
            a = s.aim(j)
            if a is not None:
                g = shortest_rotation(g @ REST_OFFSETS[_PRIMARY_CHILD[j]], a) @ g
            glob[:, j] = g
    return glob


def _place_root(glob: np.ndarray, tgt: np.ndarray, fps: float) -> np.ndarray:
    """Root translation (F, 3) (module docstring, step 5)."""
    # put SMPL's mid-hip point on the source's, so the pelvis-to-hip lever (which differs between
    # rigs) does not swing the legs around and make planted feet slide
    mid_src = 0.5 * (tgt[:, J["left_hip"]] + tgt[:, J["right_hip"]])
    mid_off = 0.5 * (REST_OFFSETS[J["left_hip"]] + REST_OFFSETS[J["right_hip"]])
    trans = mid_src - glob[:, 0] @ mid_off
    # height: the root follows the source's lowest sole, knee or hand (smoothed over ~0.3 s), so
    # whatever touches the ground there touches it here although proportions differ (SMPL's trunk is
    # longer from the hip joints up than DeepMimic's: matching the hips alone puts a cartwheel's
    # hands 14 cm below its feet). Then the clip's lowest sole goes on the floor (y = 0).
    joints = _positions(glob, trans)
    ours_low = (joints[:, _CONTACTS, 1] - BODY_RADIUS[_CONTACTS]).min(-1)
    src_low = np.nanmin(tgt[:, _CONTACTS, 1] - BODY_RADIUS[_CONTACTS], axis=-1)
    trans[:, 1] += _smooth(src_low - ours_low, max(1, int(round(0.3 * fps))))
    trans[:, 1] -= (_positions(glob, trans)[:, _FEET, 1] - SOLE_BELOW_FOOT_JOINT).min()
    return trans


def retarget(src: SourceMotion) -> Retargeted:
    """Source skeleton motion -> SMPL-24 local rotations and root translation (same frame rate)."""
    m = map_skeleton(src)
    s = _source_in_our_frame(src, m)
    glob = _global_rotations(s, m, _TrunkFrames(s), _Calibrator(src, m, s))
    trans = _place_root(glob, s.tgt, src.fps)
    # limb proportions differ, so a planted source foot would drift a little on SMPL's legs: a small
    # leg IK (at most MAX_IK degrees per bone) keeps it in place
    _plant_feet(glob, trans, s.tgt, src.fps)
    return Retargeted(global_to_local(glob), trans, s.tgt, s.scale, s.unit, s.world, m)


def _plant_feet(glob: np.ndarray, trans: np.ndarray, tgt: np.ndarray, fps: float) -> None:
    """Two-bone leg IK (in place on `glob`): while the source's foot is on the ground, move SMPL's
    ankle horizontally so its toe is where the source's toe is."""
    pos = _positions(glob, trans)
    win = max(1, int(round(0.1 * fps)))
    for side in ("left", "right"):
        h, k, a, f = (J[f"{side}_{n}"] for n in ("hip", "knee", "ankle", "foot"))
        ref = f if not np.isnan(tgt[0, f, 0]) else a
        height = tgt[:, ref, 1] - tgt[:, ref, 1].min()
        c = np.clip((0.06 - height) / 0.03, 0.0, 1.0)
        err = tgt[:, ref][:, [0, 2]] - pos[:, ref][:, [0, 2]]
        # only the error's change within each ground contact makes the foot slide: correct that, not
        # the (constant) offset between the two skeletons' feet; nothing away from contacts
        residual = np.zeros_like(err)
        on = c > 0.5
        edges = np.flatnonzero(np.diff(np.concatenate([[0], on.astype(np.int8), [0]])))
        for start, stop in zip(edges[::2], edges[1::2], strict=True):
            lo, hi = max(0, start - win), min(len(err), stop + win)
            residual[lo:hi] = err[lo:hi] - err[start:stop].mean(0)
        shift = np.zeros((len(pos), 3))
        shift[:, [0, 2]] = c[:, None] * residual
        H, K, A = pos[:, h], pos[:, k], pos[:, a]
        knee_fwd = glob[:, h] @ np.array([0.0, 0.0, 1.0])  # a straight leg bends its knee forward
        # never turn a thigh or shin more than MAX_IK degrees away from the source's direction: shrink
        # the shift where needed (the angle grows about linearly with it)
        scale = np.ones(len(pos))
        for _ in range(4):
            r_hip, r_knee = _two_bone(H, K, A, A + shift * scale[:, None], knee_fwd)
            worst = np.maximum(_angle(r_hip), _angle(r_knee))
            over = worst > np.radians(MAX_IK)
            if not over.any():
                break
            scale[over] *= 0.95 * np.radians(MAX_IK) / worst[over]
        else:
            r_hip, r_knee = _two_bone(H, K, A, A + shift * scale[:, None], knee_fwd)
        glob[:, h] = r_hip @ glob[:, h]
        glob[:, k] = r_knee @ glob[:, k]


MAX_IK = 3.0  # degrees: keeps every thigh and shin within a few degrees of the source's direction


def _angle(rot: np.ndarray) -> np.ndarray:
    return np.arccos(np.clip((np.trace(rot, axis1=-2, axis2=-1) - 1) / 2, -1.0, 1.0))


def _two_bone(H: np.ndarray, K: np.ndarray, A: np.ndarray, D: np.ndarray, knee_fwd: np.ndarray):
    """Rotations (world) of thigh and shin that put the ankle at D keeping the knee's bend plane."""
    l1 = np.linalg.norm(K - H, axis=-1)
    l2 = np.linalg.norm(A - K, axis=-1)
    hd = D - H
    d = np.clip(np.linalg.norm(hd, axis=-1), np.abs(l1 - l2) + 1e-4, l1 + l2 - 1e-4)
    u = _unit(hd)
    cos_a = np.clip((l1 * l1 + d * d - l2 * l2) / (2 * l1 * d), -1.0, 1.0)
    pole = (K - H) - ((K - H) * u).sum(-1, keepdims=True) * u
    straight = np.linalg.norm(pole, axis=-1) < 1e-3 * l1
    alt = knee_fwd - (knee_fwd * u).sum(-1, keepdims=True) * u
    pole = _unit(np.where(straight[:, None], alt, pole))
    K2 = H + l1[:, None] * (cos_a[:, None] * u + np.sqrt(1 - cos_a * cos_a)[:, None] * pole)
    D2 = H + u * d[:, None]
    return shortest_rotation(K - H, K2 - H), shortest_rotation(A - K, D2 - K2)


def _smooth(x: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average (edges padded with the end values)."""
    if window < 2 or len(x) < 2:
        return x
    half = window // 2
    pad = np.pad(x, (half, half), mode="edge")
    kernel = np.ones(2 * half + 1) / (2 * half + 1)
    return np.convolve(pad, kernel, mode="valid")


def _positions(glob: np.ndarray, trans: np.ndarray) -> np.ndarray:
    """Joint positions (F, 24, 3) from global rotations (numpy; cheaper than a torch FK here)."""
    pos = np.empty(glob.shape[:2] + (3,))
    pos[:, 0] = trans
    for j in range(1, NUM_JOINTS):
        p = PARENTS[j]
        pos[:, j] = pos[:, p] + glob[:, p] @ REST_OFFSETS[j]
    return pos


def _rest_calibration(m: Mapping, role: str, rest_w: np.ndarray) -> np.ndarray:
    """Constant rotation from the source joint's frame to SMPL's, read off the rest pose (the shared
    rule of `vmclip_protocol.rig_roles.rest_calibration`)."""
    return rest_calibration(role, REST_OFFSETS, rest_w)
