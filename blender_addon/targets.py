"""The panel's rig: the mapping table (automatic map, artist's fixes, presets), keying a motion on any
rig as a new take, and reading the rig's evaluated pose back as SMPL-24 for Bake Video."""

from __future__ import annotations

import json
import os

import bpy
import numpy as np

from . import keying, rig, rigmap, smpl

PRESET_FOLDER = "presets/vmclip_rig_maps"


def table_overrides(settings, arm) -> dict[str, str]:
    """The artist's mapping table as overrides, when it was made for this rig ({} otherwise)."""
    if arm is None or settings.bone_map_rig != arm.name:
        return {}
    return {row.role: row.bone for row in settings.bone_map}


def fill_table(settings, arm, rm: rigmap.RigMap) -> None:
    settings.bone_map.clear()
    for role in smpl.JOINT_NAMES:
        row = settings.bone_map.add()
        row.role = role
        row.bone = rm.bones.get(role, "")
        row.unsure = role in rm.unsure
    settings.bone_map_rig = arm.name


def auto_table(settings, arm) -> rigmap.RigMap:
    """Fill the table with the automatic map of `arm` (partial when roles are missing). RigProblem, the
    table untouched, for a rig whose complete map is built like no person (rigmap.check_proportions)."""
    rm = rigmap.map_armature(arm, strict=False)
    if all(r in rm.bones for r in rigmap.REQUIRED):
        rigmap.check_proportions(arm, rm.bones)
    fill_table(settings, arm, rm)
    return rm


def map_target(settings, arm) -> rigmap.RigMap:
    """The map Generate uses for `arm`: automatic, with the table's rows for this rig on top."""
    return rigmap.map_armature(arm, table_overrides(settings, arm))


def preset_dir(create: bool = False) -> str:
    return bpy.utils.user_resource("SCRIPTS", path=PRESET_FOLDER, create=create)


def save_preset(settings, name: str) -> str:
    name = "".join(c for c in name if c.isalnum() or c in " _-").strip()
    if not name:
        raise ValueError("give the preset a name (letters, digits, spaces, - or _)")
    if not len(settings.bone_map):
        raise ValueError("the mapping table is empty: press Map Bones first")
    path = os.path.join(preset_dir(create=True), f"{name}.json")
    table = {row.role: row.bone for row in settings.bone_map}
    with open(path + ".part", "w", encoding="utf-8") as fh:
        json.dump({"vmclip_rig_map": 1, "roles": table}, fh, indent=1)
    os.replace(path + ".part", path)
    return path


def load_preset(settings, arm, path: str) -> int:
    """Apply a saved table to `arm`'s table; returns how many roles it set. ValueError if unusable."""
    try:
        with open(path, encoding="utf-8") as fh:
            table = json.load(fh)["roles"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{os.path.basename(path)} is not a rig map preset ({exc})") from None
    missing = [b for b in table.values() if b and b not in arm.data.bones]
    if missing:
        raise ValueError(f"'{arm.name}' has no bones {', '.join(missing[:4])} named in the preset")
    rm = rigmap.map_armature(arm, {r: b for r, b in table.items() if r in smpl.JOINT_NAMES})
    fill_table(settings, arm, rm)
    return len(table)


def presets() -> list[str]:
    folder = preset_dir()
    if not folder or not os.path.isdir(folder):
        return []
    return sorted(f[:-5] for f in os.listdir(folder) if f.endswith(".json"))


def key_motion(context, arm, rm: rigmap.RigMap, motion, name: str, *, plant: bool = True, hold=None):
    """Key `motion` on the mapped rig as a new action (one key per frame), planted feet pinned unless
    `plant` is off; `hold` (T,) bool: frames an earlier take of this rig holds (Regenerate): placed as
    it was and not planted again. Returns (action, note)."""
    offsets = getattr(motion, "rest_offsets", None)
    rf = rigmap.rig_frame(arm, rm, smpl.Skeleton(offsets=offsets))
    before = rigmap.stored(arm) if hold is not None else None
    channels, worst, planting = keying.retarget_channels(
        context,
        arm,
        rm,
        rf,
        motion,
        offsets=offsets,
        plant=plant,
        hold=hold,
        origin=before[1].origin if before else None,
    )
    frames = keying.scene_frames(context.scene, len(motion.poses), motion.fps)
    for pb in arm.pose.bones:  # keyed bones start from rest; the rest of the rig keeps its pose
        if pb.name in rm.drive.values():
            pb.rotation_mode = "QUATERNION"
    for bone in _between_mapped(arm, rm):  # unkeyed links of the chain must follow rigidly: at rest
        pb = arm.pose.bones[bone]
        pb.location, pb.rotation_quaternion, pb.rotation_euler, pb.scale = (
            (0, 0, 0),
            (1, 0, 0, 0),
            (0, 0, 0),
            (1, 1, 1),
        )
    if rm.kind != "deform bones":
        rigmap.set_fk(arm)
    action = keying.write_action(arm, name, channels, frames)
    rigmap.store(arm, rm, rf)
    note = f"keyed on the rig's {rm.kind}"
    if planting is not None:
        action["vmclip_planted"] = planting.planted  # (make_take keeps these feet still as it thins)
    if planting is not None:
        note += f"; feet planted on {planting.runs} contacts"
        metres = rigmap.metres_per_unit(arm, rf)
        if planting.drop * metres > 0.005:
            note += (
                f" (the hips come down by up to {planting.drop * metres * 100:.0f} cm for the legs to reach)"
            )
        if planting.unreached * metres > 0.01:
            note += f" (a leg fell {planting.unreached * metres * 100:.0f} cm short of its pin)"
    if worst > 1.0:
        note += f" (the control rig leaves up to {worst:.1f} degrees on its deform bones)"
    context.scene.frame_end = int(round(frames[-1]))
    return action, note


def planted_on_smpl_rig(arm, motion, hold=None):
    """(poses, trans, Planting) of `motion` with its planted feet pinned on the SMPL-24 rig `arm`
    (its own rest pose: a rig fitted to a person has other proportions than the motion's skeleton),
    for rig.apply_motion; the legs change, nothing else. `hold`: frames kept exactly (Regenerate)."""
    names = list(smpl.JOINT_NAMES)
    rm = rigmap.RigMap({n: n for n in names}, {n: n for n in names})
    offsets = getattr(motion, "rest_offsets", None)
    sk = smpl.Skeleton(offsets=offsets)
    rf = rigmap.rig_frame(arm, rm, sk)
    glob = rigmap.smpl_globals(smpl.axis_angle_to_matrix(np.asarray(motion.poses, dtype=np.float64)))
    deltas = rigmap.rig_deltas(glob, rf)
    w = rf.world
    scale, lift = rig.trans_mapping(arm)  # (apply_motion keys scale * trans + lift: the rig's path)
    path = (np.asarray(motion.trans, dtype=np.float64) * scale + np.array([0.0, lift, 0.0])) @ w.T
    deltas, path, planting = rigmap.plant_feet(
        deltas, path, rf, arm, rm, glob, motion.trans, sk.offsets, float(motion.fps), hold
    )
    glob = w.T[None, None] @ deltas @ w[None, None] @ rf.cal[None]  # (unchanged joints: exactly as before)
    local = np.empty_like(glob)
    for j, p in enumerate(smpl.PARENTS):
        local[:, j] = glob[:, j] if p < 0 else np.swapaxes(glob[:, p], -1, -2) @ glob[:, j]
    trans = (path @ w - np.array([0.0, lift, 0.0])) / scale
    poses = smpl.matrix_to_axis_angle(local)
    if hold is not None:  # (exactly the given values, not their round trip)
        poses[hold], trans[hold] = np.asarray(motion.poses)[hold], np.asarray(motion.trans)[hold]
    return poses, trans, planting


def _between_mapped(arm, rm: rigmap.RigMap) -> set[str]:
    """Unkeyed bones on the chains from the rig's root to its keyed bones (a BVH's twist bones, say)."""
    keyed = set(rm.drive.values())
    out = set()
    for name in keyed | set(rm.bones.values()):
        bone = arm.data.bones[name].parent
        while bone is not None and bone.name not in out:
            if bone.name not in keyed:
                out.add(bone.name)
            bone = bone.parent
    return out if rm.kind == "deform bones" else set()  # (a control rig's mechanism bones stay as they are)


def is_mapped(arm) -> bool:
    return arm is not None and arm.type == "ARMATURE" and rigmap.stored(arm) is not None


def sample_rig(context, arm, frame_start: int, frame_end: int, *, world: bool = False):
    """The mapped rig's evaluated pose at every frame as SMPL-24 (axis-angle (T, 24, 3), pelvis path).
    `world`: as the scene shows it, the armature object's own transform (animated too) included:
    its rotation turns the body and its location moves the path; its scale is the character's size,
    so distances are divided by it (the video's person keeps the photographed size and walks the
    same path relative to a scaled rig's own stride). Otherwise in armature space, as the rig's
    keys are (what Regenerate sends). The SMPL-24 rig is always read in world space."""
    if rig.is_smpl_armature(arm):
        return rig.sample_motion(context, arm, frame_start, frame_end)
    rm, rf = rigmap.stored(arm)
    scene = context.scene
    bones = list(rm.bones.values())
    n = frame_end - frame_start + 1
    posed = {b: np.empty((n, 3, 3)) for b in bones}
    heads = np.empty((n, 3))
    current = scene.frame_current
    try:
        for t, frame in enumerate(range(frame_start, frame_end + 1)):
            scene.frame_set(frame)
            ev = arm.evaluated_get(context.evaluated_depsgraph_get())
            turn, size, at = np.eye(3), 1.0, np.zeros(3)
            if world:
                loc, rot, scale = ev.matrix_world.decompose()
                turn, size, at = np.array(rot.to_matrix()), float(np.mean(scale)), np.array(loc)
            for b in bones:
                posed[b][t] = turn @ np.array(ev.pose.bones[b].matrix.to_3x3())
            heads[t] = turn @ np.array(ev.pose.bones[rm.point("pelvis")].head) + at / size
    finally:
        scene.frame_set(current)
    local, trans = rigmap.pose_to_smpl(posed, heads, rm, rf, arm)
    names = list(smpl.JOINT_NAMES)
    return smpl.matrix_to_axis_angle(local).astype(np.float32), trans.astype(np.float32), names
