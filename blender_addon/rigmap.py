"""Any humanoid armature as the target: which bone plays which SMPL-24 role, the rest calibration, and
the maths that keys a motion on the rig's own bones and reads the rig's pose back as SMPL-24.

The name rules and the rest calibration are the backend retargeter's (`vmclip_protocol.rig_roles`,
vendored into the add-on). A rig bone j takes the SMPL joint's world rotation G_j corrected by the
constant rotation Q_j between SMPL's T-pose bone and the rig's rest bone (T- or A-pose alike):
its armature-space change from rest is D_j = W G_j Q_j^T W^T (W: SMPL axes -> the rig's), so the rig
bone points where SMPL's bone points whatever its roll. Bones between mapped ones keep their rest
pose and follow rigidly. The root path is scaled by leg length and lifted so the clip's lowest foot
point stands on the rig's floor. Planted feet (the backend's contact rules on the SMPL motion) are
pinned on the rig and put on its floor by turning its thigh and shin (`plant_feet`): the rig's other
proportions would otherwise make them slide.

Rigs with controls (Rigify's generated rigs, Auto-Rig Pro's `c_*` controls) measure on their deform
bones and key their FK controls (the IK/FK switches go to FK); a few evaluations per frame correct
for the control rig's mechanics.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field

import numpy as np

from . import smpl

try:  # the copy vendored by build_addon.py into the add-on package
    from .vmclip_protocol import contact, rig_roles
except ImportError:  # a source checkout: the package beside the backend
    from vmclip_protocol import contact, rig_roles

ROLES = smpl.JOINT_NAMES
ROLE_INDEX = {n: i for i, n in enumerate(ROLES)}
# A rig needs these (the retargeter's required roles, plus neck and head to aim the trunk).
REQUIRED = tuple(rig_roles.REQUIRED_ROLES) + ("neck", "head")
# Fewer deform bones than a humanoid has: the rig does not flag them, so every bone may take a role.
MIN_DEFORM_BONES = 12
# A rig whose body (pelvis to neck to head) is more than MAX_BODY_TO_LEG times as long as its legs (hip
# to knee to ankle) and whose arms (shoulder to elbow to wrist) more than MAX_ARM_TO_LEG times is built
# like a four-legged animal (Rigify's cat metarig: 2.05 and 1.12); people measure 0.59-0.79 and
# 0.52-0.62 (every rig family of the tests, both BVH rigs of ../shared).
# and whose spine (pelvis to neck) is not roughly opposite its legs (hips to ankles): a person's
# spine stands above the legs in any standing rest pose (cosine -1.0 on Rigify's human metarigs), a
# four-legged animal's runs across them (-0.32 on the cat). The direction test keeps a stylised
# person with short legs (a big-headed cartoon character) from being refused on proportions alone.
MAX_BODY_TO_LEG = 1.5
MAX_ARM_TO_LEG = 0.9
MAX_SPINE_LEG_COSINE = -0.7
# Control rigs: evaluations per frame that correct the keyed controls, and when to stop (degrees).
MAX_CORRECTIONS = 8
CORRECTION_TOLERANCE_DEG = 0.05
# Planted feet: the lift onto the floor is smoothed over this long (s) and stays this close (m).
LIFT_SMOOTH_S = 0.05
LIFT_SLACK_M = 0.006
# Where a planted leg cannot reach, the hips come down smoothly over this long (s) either side.
DROP_SMOOTH_S = 1.0
MAP_PROPERTY = "vmclip_rig_map"  # the armature's custom property holding the map used for its keys


class RigProblem(ValueError):
    """A rig the add-on cannot animate, in one line for the panel."""


@dataclass
class RigMap:
    """How a rig takes a motion: role -> bone that shows it (deform), role -> bone that gets the keys."""

    bones: dict[str, str]
    drive: dict[str, str]
    ends: dict[str, str] = field(default_factory=dict)  # role -> bone whose tail marks it (no bone)
    kind: str = "deform bones"
    unsure: list[str] = field(default_factory=list)  # roles found by a structural rule, not a name
    root: str = ""  # the bone whose location carries the path (default: the pelvis's keyed bone)
    points: dict[str, str] = field(default_factory=dict)  # role -> bone whose head marks the joint

    def point(self, role: str) -> str | None:
        return self.points.get(role) or self.bones.get(role)

    @property
    def root_bone(self) -> str:
        return self.root or self.drive["pelvis"]


# --- mapping ------------------------------------------------------------------------------------


def _lowest_common_ancestor(arm, a: str, b: str) -> str | None:
    chain, bone = [], arm.data.bones[a]
    while bone is not None:
        chain.append(bone.name)
        bone = bone.parent
    bone = arm.data.bones[b]
    while bone is not None:
        if bone.name in chain:
            return bone.name
        bone = bone.parent
    return None


def _between(arm, top: str, below: str) -> list[str]:
    """Bones strictly between `top` and its descendant `below`, top first; RigProblem if not above."""
    chain, bone = [], arm.data.bones[below].parent
    while bone is not None and bone.name != top:
        chain.append(bone.name)
        bone = bone.parent
    if bone is None:
        raise RigProblem(f"'{arm.name}': the neck bone '{below}' is not below the pelvis bone '{top}'")
    return chain[::-1]


def _assign_spine(arm, pelvis: str, neck: str) -> dict[str, str]:
    """SMPL's spine1..3 onto the bones between pelvis and neck, nearest to SMPL's length fractions."""
    chain = _between(arm, pelvis, neck)
    if not chain:
        return {}
    heads = [np.array(arm.data.bones[n].head_local) for n in [pelvis, *chain, neck]]
    cum = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(heads, axis=0), axis=-1))])
    where = cum[1:-1] / max(cum[-1], 1e-9)
    k = min(len(chain), 3)
    best, pick = np.inf, None
    for roles in itertools.combinations(range(3), k):
        for bones in itertools.combinations(range(len(chain)), k):
            cost = sum(
                abs(where[b] - rig_roles.SPINE_FRACTIONS[r]) for r, b in zip(roles, bones, strict=True)
            )
            if cost < best:
                best, pick = cost, (roles, bones)
    return {rig_roles.SPINE_ROLES[r]: chain[b] for r, b in zip(*pick, strict=True)}


def _is_rigify(arm) -> bool:
    bones = arm.data.bones
    return "torso" in bones and "DEF-spine" in bones and any(b.name.startswith("ORG-") for b in bones)


def _rigify_control(arm, role: str, deform: str) -> str | None:
    """Rigify's FK control for a DEF- bone: thigh.L -> thigh_fk.L, spine.001 -> spine_fk.001."""
    # Rigify's trunk hangs on the torso control: the hips as a reversed FK chain (spine_fk.001 turns
    # the waist about spine.002's head, spine_fk the pelvis below it), the chest above (spine_fk.002,
    # .003).
    trunk = {"pelvis": "spine_fk", "spine1": "spine_fk.001", "neck": "neck", "head": "head"}
    if role in trunk:
        return trunk[role] if trunk[role] in arm.data.bones else None
    base = deform.removeprefix("DEF-").removeprefix("ORG-")  # (a table may name either)
    stem, dot, suffix = base.partition(".")
    for name in (f"{stem}_fk{dot}{suffix}", base):
        bone = arm.data.bones.get(name)
        if bone is not None and not bone.use_deform:
            return name
    return None


def _rigify_deform(arm, name: str) -> str:
    """The DEF- bone a Rigify FK control drives (spine_fk.001 -> DEF-spine.001), else `name`. A table
    or preset naming the control maps the role to the deform bone, as the automatic map does: the
    joint is that bone's head (the hips' FK controls are reversed, spine_fk.001's head is the waist:
    taken as spine1's joint it coincided with spine2's and left spine1 without a direction)."""
    stem, dot, suffix = name.partition(".")
    deform = f"DEF-{stem.removesuffix('_fk')}{dot}{suffix}"
    return deform if stem.endswith("_fk") and deform in arm.data.bones else name


def _is_auto_rig_pro(arm) -> bool:
    """Auto-Rig Pro's control rig: its master controls and FK limb controls (`c_thigh_fk.l`)."""
    bones = arm.data.bones
    return ("c_traj" in bones or "c_root_master.x" in bones) and any(
        b.name.startswith("c_") and "_fk." in b.name for b in bones
    )


def _arp_control(arm, deform: str) -> str | None:
    """Auto-Rig Pro's FK control for a deform bone: thigh_stretch.l -> c_thigh_fk.l, root.x -> c_root.x,
    toes_01.l -> c_toes_fk.l."""
    stem, dot, suffix = deform.partition(".")
    stem = stem.removesuffix("_stretch")
    for name in (
        f"c_{stem}_fk{dot}{suffix}",
        f"c_{stem.split('_')[0]}_fk{dot}{suffix}",
        f"c_{stem}{dot}{suffix}",
    ):
        bone = arm.data.bones.get(name)
        if bone is not None and not bone.use_deform:
            return name
    return None


def _org(arm, deform: str) -> str:
    org = "ORG-" + deform.removeprefix("DEF-")
    return org if org in arm.data.bones else deform


def map_armature(arm, overrides: dict[str, str] | None = None, *, strict: bool = True) -> RigMap:
    """Map the armature's bones to SMPL-24 roles by the shared name rules (plus structural rules
    where names say nothing), then apply the artist's `overrides` (role -> bone, "" to unmap).
    RigProblem when a required role has no bone; with `strict=False` the partial map is returned
    instead (for the panel's table), its missing roles listed as unsure."""
    if arm is None or arm.type != "ARMATURE":
        raise RigProblem(f"'{getattr(arm, 'name', arm)}' is not an armature")
    bones = list(arm.data.bones)
    names = [b.name for b in bones]
    deform = [b.use_deform for b in bones]
    only_deform = sum(deform) >= MIN_DEFORM_BONES
    found = rig_roles.match_names(
        names, has_end=lambda i: len(bones[i].children) == 0, usable=lambda i: deform[i] or not only_deform
    )
    roles = {r: names[i] for r, (i, end) in found.items() if not end}
    ends = {r: names[i] for r, (i, end) in found.items() if end}
    unsure = []
    if "pelvis" not in roles and {"left_hip", "right_hip"} <= set(roles):
        pelvis = _lowest_common_ancestor(arm, roles["left_hip"], roles["right_hip"])
        if pelvis is not None:
            roles["pelvis"], unsure = pelvis, ["pelvis"]
    overrides = {k: v for k, v in (overrides or {}).items() if k in ROLE_INDEX}
    if _is_rigify(arm):  # (the table shows the spine's FK controls, which are measured: see below)
        overrides = {k: _rigify_deform(arm, v) for k, v in overrides.items()}
    for role, name in overrides.items():
        if name and name not in arm.data.bones:
            raise RigProblem(f"'{arm.name}' has no bone '{name}' (mapped to {role})")
        roles.pop(role, None)
        ends.pop(role, None)
        if name:
            roles[role] = name
    missing = [r for r in REQUIRED if r not in roles]
    if missing and not strict:
        return RigMap(roles, {}, ends, "unmapped", [r for r in ROLES if r not in roles and r not in ends])
    if missing:
        raise RigProblem(
            f"'{arm.name}' is not a humanoid rig the add-on can map: no bone for {', '.join(missing)} "
            "(set them in the mapping table)"
        )
    check_proportions(arm, roles)
    if not any(r in overrides for r in rig_roles.SPINE_ROLES):
        for r in rig_roles.SPINE_ROLES:
            roles.pop(r, None)
        roles.update(_assign_spine(arm, roles["pelvis"], roles["neck"]))
    if _is_rigify(arm):
        drive = {r: _rigify_control(arm, r, b) for r, b in roles.items()}
        kind = "Rigify FK controls (IK/FK switches set to FK)"
        # Measured on the ORG- bones the controls drive directly: the DEF- bones add Rigify's tweak
        # mechanics (a stretch-to spine whose aim hangs on the next control), same rest pose.
        roles = {r: _org(arm, b) for r, b in roles.items()}
        points = dict(roles)
        # The spine's ORG- bones hang on blending pivots and tweaks; its segments turn with the FK
        # controls themselves, so those are measured (the joints stay the ORG- bones' heads).
        for r in ("spine1", "spine2", "spine3"):
            if r in roles and drive.get(r):
                roles[r] = drive[r]
    elif _is_auto_rig_pro(arm):  # its deform bones follow the controls: measured on them directly
        drive = {r: _arp_control(arm, b) for r, b in roles.items()}
        if "c_root_master.x" in arm.data.bones:  # the spine hangs on the root master, not on c_root.x:
            drive["pelvis"] = "c_root_master.x"  # it turns the whole body, c_root.x stays at rest
        kind, points = "Auto-Rig Pro FK controls (IK/FK switches set to FK)", {}
    else:
        drive, kind, points = dict(roles), "deform bones", {}
    drive = {r: b for r, b in drive.items() if b is not None}
    for role in REQUIRED:
        if role not in drive:
            raise RigProblem(f"'{arm.name}': no bone to key for {role} (bone '{roles[role]}' has no control)")
    unsure += [r for r in ROLES if r not in roles and r not in ends]
    root = ""  # the master control carries the path: Rigify's torso, Auto-Rig Pro's root master
    if _is_rigify(arm):
        root = "torso"
    elif kind.startswith("Auto-Rig Pro"):
        root = drive["pelvis"]
    return RigMap(roles, drive, ends, kind, unsure, root, points)


def check_proportions(arm, roles: dict[str, str]) -> None:
    """RigProblem when the rig is built like a four-legged animal although its bones carry human names
    (Rigify's cat metarig: thigh, shin, forearm, spine.006): its body (pelvis to neck to head) much
    longer than its legs, its arms as long as them, and its spine across the legs rather than above them.
    Lengths and one angle between joints, so the rig's placement in the scene changes nothing."""
    at = {r: np.array(arm.data.bones[b].head_local) for r, b in roles.items()}

    def chain(*names: str) -> float:
        return sum(float(np.linalg.norm(at[b] - at[a])) for a, b in itertools.pairwise(names))

    leg = sum(chain(f"{s}_hip", f"{s}_knee", f"{s}_ankle") for s in ("left", "right")) / 2
    fore = sum(chain(f"{s}_shoulder", f"{s}_elbow", f"{s}_wrist") for s in ("left", "right")) / 2
    body, fore = chain("pelvis", "neck", "head") / max(leg, 1e-12), fore / max(leg, 1e-12)
    spine = at["neck"] - at["pelvis"]
    legs = (at["left_ankle"] + at["right_ankle"] - at["left_hip"] - at["right_hip"]) / 2
    cosine = float(spine @ legs) / max(float(np.linalg.norm(spine) * np.linalg.norm(legs)), 1e-12)
    if body > MAX_BODY_TO_LEG and fore > MAX_ARM_TO_LEG and cosine > MAX_SPINE_LEG_COSINE:
        raise RigProblem(
            f"'{arm.name}' is not a humanoid rig: it is built like a four-legged animal (body {body:.1f} "
            f"and arms {fore:.1f} times as long as the legs; a person's about 0.8 and 0.6)"
        )


# --- the rig's rest geometry ----------------------------------------------------------------------


@dataclass
class RigFrame:
    """The rig's rest geometry in the terms of a motion: axes, calibration, scale and floor."""

    world: np.ndarray  # (3, 3) SMPL axes -> armature axes
    rest: np.ndarray  # (24, 3) rest point of each role, armature space (NaN where none)
    cal: np.ndarray  # (24, 3, 3) rest calibration Q_j (SMPL axes)
    scale: float  # armature units per SMPL metre (leg length ratio)
    floor: float  # height of the rig's soles along its up axis (armature units)
    origin: np.ndarray  # (3,) SMPL axes: where the motion's origin lands, in armature units

    def to_json(self) -> str:
        return json.dumps({k: np.asarray(v).tolist() for k, v in self.__dict__.items()})

    @classmethod
    def from_json(cls, text: str) -> RigFrame:
        d = json.loads(text)
        return cls(**{k: np.asarray(v, dtype=np.float64) if isinstance(v, list) else v for k, v in d.items()})


def _snap(v: np.ndarray) -> np.ndarray:
    k = int(np.argmax(np.abs(v)))
    out = np.zeros(3)
    out[k] = np.sign(v[k])
    return out


def _rest_axes(rest: np.ndarray) -> tuple[np.ndarray, bool]:
    """(SMPL axes -> armature axes, whether the rest pose stands): read off a standing rest pose (up =
    pelvis to neck, left = right hip to left hip, legs hanging below the hips); Blender's convention
    (Z up, facing -Y) for a rest pose that is not a person standing."""
    j = ROLE_INDEX
    up = rest[j["neck"]] - rest[j["pelvis"]]
    left = rest[j["left_hip"]] - rest[j["right_hip"]]
    leg = rest[j["left_ankle"]] - rest[j["left_hip"]]
    unit = [v / max(np.linalg.norm(v), 1e-12) for v in (up, left, leg)]
    standing = unit[2] @ unit[0] < -0.8 and abs(unit[1] @ unit[0]) < 0.3
    if standing:
        up_s, left_s = _snap(up), _snap(left)
        if abs(up_s @ left_s) < 0.5:
            return np.stack([left_s, up_s, np.cross(left_s, up_s)], axis=1), True
    return smpl.C.copy(), False


def rest_points(arm, rm: RigMap) -> np.ndarray:
    pts = np.full((len(ROLES), 3), np.nan)
    for role in rm.bones:
        pts[ROLE_INDEX[role]] = np.array(arm.data.bones[rm.point(role)].head_local)
    for role, bone in rm.ends.items():
        pts[ROLE_INDEX[role]] = np.array(arm.data.bones[bone].tail_local)
    return pts


def _foot_rest_points(arm, rm: RigMap) -> list[tuple[int, np.ndarray]]:
    """(role, rest point) of every point of the feet: heads and tails of the ankle and toe bones and
    their children (toe tips, heels)."""
    out = []
    for side in ("left", "right"):
        for role in (f"{side}_ankle", f"{side}_foot"):
            bone = arm.data.bones.get(rm.bones.get(role, ""))
            if bone is None:
                continue
            for b in [bone, *bone.children_recursive]:
                out += [
                    (ROLE_INDEX[role], np.array(b.head_local)),
                    (ROLE_INDEX[role], np.array(b.tail_local)),
                ]
    return out


def _frame(up: np.ndarray, left: np.ndarray) -> np.ndarray:
    """Orthonormal columns (left, up, forward) from an up direction and a roughly lateral one."""
    u = up / np.linalg.norm(up)
    lat = left - (left @ u) * u
    lat = lat / np.linalg.norm(lat)
    return np.stack([lat, u, np.cross(lat, u)], axis=1)


def _pelvis_calibration(smpl_rest: np.ndarray, rest: np.ndarray) -> np.ndarray | None:
    """The pelvis's rest calibration from two directions, up its spine (to the lowest mapped spine
    role) and the line from the right hip to the left (SMPL axes), or None when the rig lacks them.
    The shortest rotation onto one bone leaves the turn about it free, and a rig without spine1 (a
    BVH's Hips -> Spine -> Chest) gets none at all: on a rest pose that does not stand (BVH files with
    baked joint orients) the hips then sit out of place and one foot floats."""
    j = ROLE_INDEX
    above = [j[r] for r in ("spine1", "spine2", "spine3", "neck") if np.all(np.isfinite(rest[j[r]]))]
    pts = [j["pelvis"], j["left_hip"], j["right_hip"]]
    if not above or not np.all(np.isfinite(rest[pts])):
        return None
    frames = []
    for p in (smpl_rest, rest):
        up, left = p[above[0]] - p[j["pelvis"]], p[j["left_hip"]] - p[j["right_hip"]]
        if np.linalg.norm(np.cross(up, left)) < 1e-6 * np.linalg.norm(up) * np.linalg.norm(left):
            return None
        frames.append(_frame(up, left))
    return frames[1] @ frames[0].T


def rig_frame(arm, rm: RigMap, sk: smpl.Skeleton) -> RigFrame:
    """Axes (read off the rest pose: up = pelvis to neck, left = right hip to left hip), rest
    calibration, leg-length scale and floor of the rig."""
    rest = rest_points(arm, rm)
    j = ROLE_INDEX
    world, standing = _rest_axes(rest)
    rest_smpl = rest @ world  # armature -> SMPL axes (world is orthonormal)
    offsets = sk.offsets
    cal = np.stack([rig_roles.rest_calibration(r, offsets, rest_smpl) for r in ROLES])
    pelvis_cal = _pelvis_calibration(sk.rest_positions(), rest_smpl)
    if pelvis_cal is not None:
        cal[j["pelvis"]] = pelvis_cal
    legs = [
        np.linalg.norm(rest[j[f"{s}_knee"]] - rest[j[f"{s}_hip"]])
        + np.linalg.norm(rest[j[f"{s}_ankle"]] - rest[j[f"{s}_knee"]])
        for s in ("left", "right")
    ]
    smpl_rest = sk.rest_positions()
    smpl_legs = [
        np.linalg.norm(smpl_rest[j[f"{s}_knee"]] - smpl_rest[j[f"{s}_hip"]])
        + np.linalg.norm(smpl_rest[j[f"{s}_ankle"]] - smpl_rest[j[f"{s}_knee"]])
        for s in ("left", "right")
    ]
    scale = float(np.mean(legs) / np.mean(smpl_legs))
    feet = _foot_rest_points(arm, rm)
    up = world[:, 1]
    # (a rest pose that is not a standing person, as BVH files with baked joint orients have, gives
    # no floor: the armature's ground plane then)
    floor = float(min(p @ up for _, p in feet)) if feet and standing else 0.0
    pelvis = rest_smpl[j["pelvis"]]
    origin = np.array([pelvis[0], 0.0, pelvis[2]])
    return RigFrame(world, rest, cal, scale, floor, origin)


def metres_per_unit(arm, rf: RigFrame | None) -> float:
    """Metres per armature unit, for tolerances stated in metres: the armature's world scale times the
    scene's unit scale; and where that makes the rig's legs no person's (`rf.scale`, the retarget's
    leg-length ratio, outside 0.2-5 in metres), the power of ten that does: a rig in centimetres left
    at scale 1, as Blender imports a BVH, is a person to the tolerances, not a 170-m figure."""
    scenes = arm.users_scene
    unit = float(np.mean(arm.matrix_world.to_scale()))
    unit *= float(scenes[0].unit_settings.scale_length) if scenes else 1.0
    if rf is not None and rf.scale > 0:
        size = rf.scale * unit  # the rig's legs over SMPL's, both in metres
        if not 0.2 < size < 5.0:
            unit *= 10.0 ** -round(float(np.log10(size)))
    return unit


# --- motion -> rig ------------------------------------------------------------------------------


def smpl_globals(local: np.ndarray) -> np.ndarray:
    """SMPL local rotations (T, 24, 3, 3) -> global ones."""
    glob = np.empty_like(local)
    for j, p in enumerate(smpl.PARENTS):
        glob[:, j] = local[:, j] if p < 0 else glob[:, p] @ local[:, j]
    return glob


def rig_deltas(glob: np.ndarray, rf: RigFrame) -> np.ndarray:
    """(T, 24, 3, 3) armature-space change from rest of every role: D = W G Q^T W^T."""
    w = rf.world
    return w[None, None] @ glob @ np.swapaxes(rf.cal, -1, -2)[None] @ w.T[None, None]


def _parent_role(j: int, mapped: set[int]) -> int:
    p = smpl.PARENTS[j]
    while p >= 0 and p not in mapped:
        p = smpl.PARENTS[p]
    return p


def rig_positions(deltas: np.ndarray, rf: RigFrame, pelvis: np.ndarray, points) -> np.ndarray:
    """Armature positions (T, N) of rest `points` [(role, rest point)] carried by their role's bone,
    the chain from the pelvis (at `pelvis`, (T, 3)) following each mapped bone's change."""
    mapped = {j for j in range(len(ROLES)) if np.all(np.isfinite(rf.rest[j]))}
    heads = {0: pelvis}

    def head(j: int) -> np.ndarray:
        if j not in heads:
            p = _parent_role(j, mapped)
            heads[j] = head(p) + deltas[:, p] @ (rf.rest[j] - rf.rest[p])
        return heads[j]

    return np.stack([head(j) + deltas[:, j] @ (pt - rf.rest[j]) for j, pt in points], axis=1)


def pelvis_path(trans: np.ndarray, deltas: np.ndarray, rf: RigFrame, arm, rm: RigMap) -> np.ndarray:
    """(T, 3) armature positions of the pelvis: the motion's path scaled by leg length, lifted so the
    clip's lowest foot point stands on the rig's floor. Sets rf.origin's height to that lift."""
    w = rf.world
    path = (np.asarray(trans, dtype=np.float64) * rf.scale + rf.origin) @ w.T
    feet = _foot_rest_points(arm, rm)
    if feet:
        low = (rig_positions(deltas, rf, path, feet) @ w[:, 1]).min()
        lift = rf.floor - low
        rf.origin = rf.origin + np.array([0.0, lift, 0.0])
        path = path + w[:, 1] * lift
    return path


def motion_to_rig(poses: np.ndarray, trans: np.ndarray, rf: RigFrame, arm, rm: RigMap, origin=None):
    """SMPL motion -> (deltas (T, 24, 3, 3), pelvis head path (T, 3)) in the rig's armature space.
    `origin`: place the path as an earlier take was (its stored origin) instead of lifting it anew
    (a regenerated take whose held frames must land where they were)."""
    local = smpl.axis_angle_to_matrix(np.asarray(poses, dtype=np.float64))
    deltas = rig_deltas(smpl_globals(local), rf)
    if origin is None:
        return deltas, pelvis_path(trans, deltas, rf, arm, rm)
    rf.origin = np.asarray(origin, dtype=np.float64)
    return deltas, (np.asarray(trans, dtype=np.float64) * rf.scale + rf.origin) @ rf.world.T


def smpl_positions(glob: np.ndarray, trans: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """SMPL joint positions (T, 24, 3) from global rotations, pelvis path and rest offsets."""
    pos = np.empty(glob.shape[:2] + (3,))
    pos[:, 0] = trans
    for j, p in enumerate(smpl.PARENTS[1:], start=1):
        pos[:, j] = pos[:, p] + glob[:, p] @ offsets[j]
    return pos


@dataclass
class Planting:
    """What `plant_feet` did: contact runs pinned, the most the pelvis came down, and the farthest a
    pinned ankle stayed from its spot (armature units)."""

    runs: int = 0
    drop: float = 0.0
    unreached: float = 0.0  # (during contact runs; a landing foot may fall short of its pin's fade)
    planted: dict[str, list[float]] = field(default_factory=dict)  # side -> how much a pin holds per frame


def _nearest_in_runs(x: np.ndarray, runs: list[tuple[int, int]]) -> np.ndarray:
    """`x` inside the runs, and at every other frame its value at the nearest frame of a run: the
    foot's lift onto the floor fades out from where contact ends (a foot still in the air is not
    pulled down ahead of its landing)."""
    if not runs:
        return np.zeros_like(x)
    inside = np.concatenate([np.arange(a, b) for a, b in runs])
    nearest = inside[np.abs(np.arange(len(x))[:, None] - inside[None]).argmin(1)]
    return x[nearest]


def _lowest(deltas, path, rf: RigFrame, feet: list, side: str, fallback: np.ndarray) -> np.ndarray:
    """(T,) height of one foot's lowest point (`feet`: every foot point; `fallback`: the ankle)."""
    mine = [(r, p) for r, p in feet if ROLES[r].startswith(side)]
    return (rig_positions(deltas, rf, path, mine) @ rf.world[:, 1]).min(1) if mine else fallback[:, 1]


def _contact_lift(deltas, path, rf: RigFrame, arm, rm: RigMap, contacts) -> float:
    """How far the path goes up (down, negative) so planted feet stand on the floor: the median over
    the contact frames of both feet. (The clip's lowest point, which places the path before, can be a
    toe end pitched down at push-off and leave every planted foot in the air on another rig's feet.)"""
    feet = _foot_rest_points(arm, rm)
    gaps = []
    for s, (side, (_, _, ankle, _)) in enumerate(contact.LEGS.items()):
        if not np.all(np.isfinite(rf.rest[ankle])):
            continue
        a = rig_positions(deltas, rf, path, [(ankle, rf.rest[ankle])])[:, 0] @ rf.world
        on = contacts[:, 2 * s] | contacts[:, 2 * s + 1]
        gaps.append((rf.floor - _lowest(deltas, path, rf, feet, side, a))[on])
    gaps = np.concatenate(gaps) if gaps else np.zeros(0)
    return float(np.median(gaps)) if len(gaps) else 0.0


def _eased_lift(need: np.ndarray, fps: float, scale: float) -> np.ndarray:
    """The lift (T,) that puts a planted foot's lowest point on the floor, smoothed over LIFT_SMOOTH_S
    and kept within LIFT_SLACK_M (`scale`: armature units per metre) of the exact one: the lowest
    point switches between heel, ball and toe tip as the foot rolls, and a per-frame lift follows each
    switch with a kink that the legs' keys would have to trace."""
    sigma = LIFT_SMOOTH_S * fps
    r = int(3 * sigma) + 1
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    smooth = np.convolve(np.pad(need, r, mode="edge"), k / k.sum(), "valid")
    return np.clip(smooth, need - LIFT_SLACK_M * scale, need + LIFT_SLACK_M * scale)


def _leg_targets(deltas, path, rf: RigFrame, arm, rm: RigMap, contacts, fps: float) -> dict:
    """Per side with a mapped leg: (hip, knee, ankle roles, ankle targets (T, 3) in SMPL axes, runs):
    the ankle where the motion puts it, moved during each contact run so the pinned point (heel or
    toes) stays put and the foot's lowest point is on the floor, faded in and out."""
    w = rf.world
    feet = _foot_rest_points(arm, rm)
    out = {}
    for s, (side, (hip, knee, ankle, toe)) in enumerate(contact.LEGS.items()):
        if not np.all(np.isfinite(rf.rest[[hip, knee, ankle]])):
            continue
        toe = toe if np.all(np.isfinite(rf.rest[toe])) else ankle
        a, t = np.moveaxis(rig_positions(deltas, rf, path, [(j, rf.rest[j]) for j in (ankle, toe)]) @ w, 1, 0)
        low = _lowest(deltas, path, rf, feet, side, a)
        heel_on, toe_on = contacts[:, 2 * s], contacts[:, 2 * s + 1]
        move, weight = contact.pin_offsets(
            a[:, ::2], t[:, ::2], heel_on, toe_on, contact.blend_frames(fps), eased=True
        )
        runs = contact.contact_runs(heel_on | toe_on)
        target = a.copy()
        target[:, [0, 2]] += move
        need = _eased_lift(_nearest_in_runs(rf.floor - low, runs), fps, 1.0 / metres_per_unit(arm, rf))
        target[:, 1] += weight * need
        out[side] = (hip, knee, ankle, target, len(runs), weight)
    return out


def _drop_for_reach(deltas, path, rf: RigFrame, legs: dict, blend: int) -> np.ndarray:
    """(T,) how far the pelvis comes down so every planted leg reaches its ankle target during its
    contact runs (a leg is never stretched past 99.9 % of its length), widened and smoothed over
    `blend` frames either side so it never pops."""
    w = rf.world
    need = np.zeros(len(path))
    for hip, knee, ankle, target, _, weight in legs.values():
        h = rig_positions(deltas, rf, path, [(hip, rf.rest[hip])])[:, 0] @ w
        length = np.linalg.norm(rf.rest[knee] - rf.rest[hip]) + np.linalg.norm(rf.rest[ankle] - rf.rest[knee])
        r = target - h
        flat = np.minimum(np.linalg.norm(r[:, ::2], axis=-1), 0.999 * length)
        short = -r[:, 1] - np.sqrt((0.999 * length) ** 2 - flat**2)
        # (only where the pin holds whole: a landing foot pulled ahead to its spot may fall short)
        need = np.maximum(need, np.where(weight > 1 - 1e-9, short, 0.0))
    pad = np.pad(need, blend, mode="edge")
    wide = np.lib.stride_tricks.sliding_window_view(pad, 2 * blend + 1).max(-1)
    # (any weighted mean of a max-filter over the same window is still at least the need at every
    # frame; a raised-cosine one has no kinks where the window's ends pass a contact)
    k = np.hanning(2 * blend + 3)[1:-1]
    return np.convolve(np.pad(wide, blend, mode="edge"), k / k.sum(), "valid")


def plant_feet(deltas, path, rf: RigFrame, arm, rm: RigMap, glob, trans, offsets, fps: float, hold=None):
    """Pin the rig's planted feet: contacts found on the SMPL motion (global rotations `glob`, path
    `trans`, rest `offsets`) by the backend's rules; during each run of contact frames the rig's heel
    (or toes) stays where it stands on average and the foot's lowest point is on the rig's floor,
    faded in and out as the backend does. Where a leg cannot reach, the pelvis comes down (smoothly).
    Thigh and shin turn (two-bone IK, the knee in its own bending plane); every other frame's ankle
    stays where it was; the ankle keeps its change, so the sole does not tilt. `hold` (T,) bool:
    frames kept exactly as given (an earlier take's, already planted) and no new lift of the path.
    Returns new deltas, pelvis path and a Planting."""
    fk = smpl_positions(glob, np.asarray(trans, dtype=np.float64), np.asarray(offsets, dtype=np.float64))
    contacts = contact.foot_contacts(fk, fps)
    w = rf.world
    given = path
    if hold is None:
        lift = _contact_lift(deltas, path, rf, arm, rm, contacts)
        path = path + lift * w[:, 1]
        rf.origin = rf.origin + np.array([0.0, lift, 0.0])  # (read back by Bake Video)
    legs = _leg_targets(deltas, path, rf, arm, rm, contacts, fps)
    # (smoothed over DROP_SMOOTH_S rather than the pins' fade: the legs' thinned keys trace it)
    wide = max(contact.blend_frames(fps), int(round(DROP_SMOOTH_S * fps)))
    drop = np.maximum(_drop_for_reach(deltas, path, rf, legs, wide), 0.0)
    if hold is not None:
        drop[hold] = 0.0
    path = path - drop[:, None] * w[:, 1]
    out = deltas.copy()
    done = Planting(drop=float(drop.max()))
    facing = (w.T @ deltas[:, 0] @ w)[:, :, 2]  # the pelvis's facing, SMPL axes: where a straight leg bends
    for side, (hip, knee, ankle, target, runs, weight) in legs.items():
        h, k, a = np.moveaxis(
            rig_positions(deltas, rf, path, [(j, rf.rest[j]) for j in (hip, knee, ankle)]) @ w, 1, 0
        )
        # (in SMPL metres: the solve's clamps are absolute, and a rig in centimetres must solve alike)
        turn_hip, turn_knee = contact.two_bone(*(x / rf.scale for x in (h, k, a, target)), facing)
        out[:, hip] = w @ turn_hip @ w.T @ deltas[:, hip]
        out[:, knee] = w @ turn_knee @ w.T @ deltas[:, knee]
        reached = rig_positions(out, rf, path, [(ankle, rf.rest[ankle])])[:, 0] @ w
        miss = np.linalg.norm(reached - target, axis=-1)[weight > 1 - 1e-9]
        done.unreached = max(done.unreached, float(miss.max(initial=0.0)))
        done.runs += runs
        done.planted[side] = np.round(weight, 3).tolist()
    if hold is not None:
        out[hold], path[hold] = deltas[hold], given[hold]
    return out, path, done


def leg_reaches(arm, rm: RigMap) -> dict[str, tuple[float, str]]:
    """{keyed bone: (rest distance from its joint to the farthest point of its foot, side)} for the
    pelvis (side "both") and the hip, knee and ankle roles: a rotation error of e radians on that
    bone moves the foot by up to e times it."""
    out: dict[str, tuple[float, str]] = {}
    for side in ("left", "right"):
        feet = [p for r, p in _foot_rest_points(arm, rm) if ROLES[r].startswith(side)]
        trunk = ("pelvis",) if rm.kind == "deform bones" else ("pelvis", "spine1")  # (Rigify's hips hang
        # on its reversed lower spine: spine_fk.001 turns them about the waist)
        for role in (*trunk, f"{side}_hip", f"{side}_knee", f"{side}_ankle"):
            if role in rm.drive and role in rm.bones and feet:
                head = np.array(arm.data.bones[rm.point(role)].head_local)
                reach = float(max(np.linalg.norm(p - head) for p in feet))
                bone = rm.drive[role]
                out[bone] = (max(out.get(bone, (0.0, ""))[0], reach), "both" if role in trunk else side)
    return out


# --- keys: basis rotations of the keyed bones -----------------------------------------------------


def _rest3(arm, name: str) -> np.ndarray:
    return smpl.orthonormalize(np.array(arm.data.bones[name].matrix_local.to_3x3()))


def drive_parent(arm, rm: RigMap, role: str) -> int:
    """The role whose keyed bone is the nearest ancestor of `role`'s keyed bone (the bones between
    follow it), or -1: what a keyed bone's rotation is relative to, whatever the rig's hierarchy
    (Rigify's lower spine hangs the pelvis below spine1)."""
    roles_of = {b: ROLE_INDEX[r] for r, b in rm.drive.items()}
    b = arm.data.bones[rm.drive[role]].parent
    while b is not None:
        if b.name in roles_of:
            return roles_of[b.name]
        b = b.parent
    return -1


def basis_from_deltas(arm, rm: RigMap, rf: RigFrame, deltas: np.ndarray, path: np.ndarray):
    """Pose-bone basis rotations {bone: (T, 3, 3)} and the pelvis bone's basis location (T, 3) that
    give each keyed bone the change `deltas` of its role: L = B^T D_parent^T D B (B: the bone's rest
    matrix); exact where the keyed bone is the deform bone, a first guess for control rigs."""
    direct = rm.kind == "deform bones"
    eye = np.broadcast_to(np.eye(3), deltas.shape[:1] + (3, 3))
    out = {}
    for role, bone in rm.drive.items():
        j = ROLE_INDEX[role]
        p = drive_parent(arm, rm, role)
        parent = deltas[:, p] if p >= 0 else eye
        b = _rest3(arm, bone)
        out[bone] = b.T[None] @ np.swapaxes(parent, -1, -2) @ deltas[:, j] @ b[None]
    root = rm.root_bone
    b = _rest3(arm, root)
    start = np.array(
        arm.data.bones[root].head_local if direct else arm.data.bones[rm.point("pelvis")].head_local
    )
    loc = (path - start) @ b  # into the bone's rest axes (its ancestors stay at rest)
    return out, loc


def _set_pose(arm, basis: dict, loc: np.ndarray, root: str, t: int) -> None:
    pb = arm.pose.bones[root]
    pb.rotation_mode = "QUATERNION"
    pb.rotation_quaternion = (1.0, 0.0, 0.0, 0.0)  # a root that is not a role's keyed bone stays level
    for bone, mats in basis.items():
        pb = arm.pose.bones[bone]
        pb.rotation_mode = "QUATERNION"
        pb.rotation_quaternion = smpl.matrix_to_quaternion(mats[t])
    arm.pose.bones[root].location = loc[t]


FK_SWITCHES = ("IK_FK", "ik_fk_switch")  # Rigify's and Auto-Rig Pro's IK/FK sliders (1.0 = FK in both)


def set_fk(arm) -> list[str]:
    """Switch every IK/FK slider of a control rig to FK (1.0); returns the bones that carry one."""
    switched = []
    for pb in arm.pose.bones:
        for key in FK_SWITCHES:
            if key in pb.keys():
                pb[key] = 1.0
                switched.append(pb.name)
    return switched


def correct_controls(context, arm, rm: RigMap, deltas, path, basis: dict, loc: np.ndarray) -> float:
    """Control rigs: evaluate each frame and correct the keyed controls until the deform bones show
    the wanted change. Each step turns every control, in armature space, by the rotation its deform
    bone still lacks relative to its parent role (what the parent's own step adds is taken out), so
    whatever the controls' mechanics (stretch-to spines, follow switches) a rigid follower converges.
    Updates `basis`/`loc` in place; returns the largest remaining error (degrees)."""
    roles = [r for r in rm.drive if r in rm.bones]
    idx = [ROLE_INDEX[r] for r in roles]
    parents = [drive_parent(arm, rm, r) for r in roles]
    rest_meas = np.stack([_rest3(arm, rm.bones[r]) for r in roles])
    root, pelvis = rm.root_bone, rm.point("pelvis")
    reach = max(1.0, float(np.abs(path).max()))
    worst = 0.0
    offset: dict[str, np.ndarray] = {}  # each control's correction at the last frame: the next one's start
    loc_offset = np.zeros(3)
    for t in range(len(path)):
        first = {b: m[t].copy() for b, m in basis.items()}
        for b, off in offset.items():
            basis[b][t] = basis[b][t] @ off
        loc[t] = loc[t] + loc_offset
        start_loc = loc[t] - loc_offset
        for _ in range(MAX_CORRECTIONS + 1):
            _set_pose(arm, basis, loc, root, t)
            context.view_layer.update()
            ev = arm.evaluated_get(context.evaluated_depsgraph_get())
            act = np.stack([np.array(ev.pose.bones[rm.bones[r]].matrix.to_3x3()) for r in roles])
            act = smpl.orthonormalize(act) @ np.swapaxes(rest_meas, -1, -2)
            want = deltas[t, idx]
            err = float(np.degrees(_angle(np.swapaxes(act, -1, -2) @ want)).max())
            pos_err = path[t] - np.array(ev.pose.bones[pelvis].head)
            if err < CORRECTION_TOLERANCE_DEG and np.linalg.norm(pos_err) < 1e-4 * reach:
                break
            drive_now = {
                r: smpl.orthonormalize(np.array(ev.pose.bones[rm.drive[r]].matrix.to_3x3())) for r in roles
            }
            for k, (r, p) in enumerate(zip(roles, parents, strict=True)):
                x = want[k] @ act[k].T
                if p >= 0:
                    kp = idx.index(p)
                    x = act[kp] @ want[kp].T @ x
                m = drive_now[r]
                basis[rm.drive[r]][t] = basis[rm.drive[r]][t] @ m.T @ x @ m
            root_now = smpl.orthonormalize(np.array(ev.pose.bones[root].matrix.to_3x3()))
            if root in basis:
                root_now = root_now @ basis[root][t].T
            loc[t] = loc[t] + pos_err @ root_now
        worst = max(worst, err)
        offset = {b: first[b].T @ basis[b][t] for b in basis}
        loc_offset = loc[t] - start_loc
    return worst


def _angle(rot: np.ndarray) -> np.ndarray:
    return np.arccos(np.clip((np.trace(rot, axis1=-2, axis2=-1) - 1) / 2, -1.0, 1.0))


# --- rig -> SMPL (Bake Video) ---------------------------------------------------------------------


def store(arm, rm: RigMap, rf: RigFrame) -> None:
    """Keep the map and rest frame on the armature: Bake Video reads the rig back with them."""
    arm[MAP_PROPERTY] = json.dumps(
        {
            "bones": rm.bones,
            "drive": rm.drive,
            "ends": rm.ends,
            "kind": rm.kind,
            "root": rm.root,
            "points": rm.points,
            "frame": rf.to_json(),
        }
    )


def stored(arm) -> tuple[RigMap, RigFrame] | None:
    text = arm.get(MAP_PROPERTY)
    if not text:
        return None
    d = json.loads(text)
    return RigMap(
        d["bones"], d["drive"], d["ends"], d["kind"], root=d["root"], points=d["points"]
    ), RigFrame.from_json(d["frame"])


def pose_to_smpl(posed: dict[str, np.ndarray], heads: np.ndarray, rm: RigMap, rf: RigFrame, arm):
    """The rig's posed deform bones {bone: (T, 3, 3) armature rotation} and pelvis heads (T, 3) ->
    SMPL local rotations (T, 24, 3, 3) and pelvis path (T, 3): the inverse of `motion_to_rig`.
    Roles the rig lacks keep their parent's orientation."""
    n = len(heads)
    glob = np.empty((n, len(ROLES), 3, 3))
    w = rf.world
    for j, role in enumerate(ROLES):
        bone = rm.bones.get(role)
        if bone is None:
            p = smpl.PARENTS[j]
            glob[:, j] = glob[:, p] if p >= 0 else np.eye(3)
            continue
        d = smpl.orthonormalize(posed[bone]) @ _rest3(arm, bone).T
        glob[:, j] = w.T[None] @ d @ w[None] @ rf.cal[j][None]
    local = np.empty_like(glob)
    for j, p in enumerate(smpl.PARENTS):
        local[:, j] = glob[:, j] if p < 0 else np.swapaxes(glob[:, p], -1, -2) @ glob[:, j]
    trans = (heads @ w - rf.origin) / rf.scale
    return local, trans
