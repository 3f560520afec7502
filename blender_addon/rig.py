"""The armature side: build the SMPL-24 rig and its proxy body, key a motion onto a new Action, and read
the evaluated pose back for baking."""

from __future__ import annotations

import math

import bpy
import numpy as np
from mathutils import Vector

from . import compat, smpl

ARMATURE_NAME = "VMCLIP_Armature"
BODY_NAME = "VMCLIP_Body"

# Proxy-body thickness per bone (radius at head, radius at tail), metres; by name without the side.
_RADII = {
    "pelvis": (0.13, 0.12),
    "spine1": (0.12, 0.12),
    "spine2": (0.12, 0.13),
    "spine3": (0.13, 0.07),
    "neck": (0.05, 0.05),
    "head": (0.075, 0.09),
    "collar": (0.05, 0.05),
    "shoulder": (0.05, 0.042),
    "elbow": (0.04, 0.032),
    "wrist": (0.03, 0.03),
    "hand": (0.028, 0.02),
    "hip": (0.08, 0.055),
    "knee": (0.055, 0.042),
    "ankle": (0.04, 0.035),
    "foot": (0.035, 0.03),
}


def _side_free(name: str) -> str:
    return name.split("_", 1)[1] if name.startswith(("left_", "right_")) else name


def is_smpl_armature(obj) -> bool:
    return obj is not None and obj.type == "ARMATURE" and all(n in obj.data.bones for n in smpl.JOINT_NAMES)


def _tails(sk: smpl.Skeleton, heads: np.ndarray) -> np.ndarray:
    """Bone tails (Blender frame): towards the child on the centre line, else along the limb."""
    tails = np.zeros_like(heads)
    up, fwd = smpl.C @ np.array([0.0, 1.0, 0.0]), smpl.C @ np.array([0.0, 0.0, 1.0])
    for j, name in enumerate(sk.names):
        kids = sk.children(j)
        centre = [k for k in kids if not sk.names[k].startswith(("left_", "right_"))]
        if kids:
            tails[j] = heads[(centre or kids)[0]]
        elif "head" in name:
            tails[j] = heads[j] + up * 0.2
        elif "foot" in name:
            tails[j] = heads[j] + fwd * 0.1
        else:  # hands and any other leaf: carry on along the parent bone
            d = heads[j] - heads[sk.parents[j]]
            tails[j] = heads[j] + d / max(np.linalg.norm(d), 1e-6) * 0.08
        if np.linalg.norm(tails[j] - heads[j]) < 0.02:  # Blender drops zero-length bones
            tails[j] = heads[j] + up * 0.05
    return tails


def _ensure_object_mode(context) -> None:
    if context.object is not None and context.object.mode != "OBJECT":
        bpy.ops.object.mode_set(mode="OBJECT")


def create_armature(context, sk: smpl.Skeleton, name: str = ARMATURE_NAME) -> bpy.types.Object:
    """A new armature object in the T-pose rest, standing on the floor at the 3D cursor's origin."""
    _ensure_object_mode(context)
    data = bpy.data.armatures.new(name)
    obj = bpy.data.objects.new(name, data)
    context.scene.collection.objects.link(obj)
    obj.show_in_front = True
    heads = (smpl.C @ sk.rest_positions().T).T + np.array([0.0, 0.0, sk.pelvis_height()])
    tails = _tails(sk, heads)
    view_layer = context.view_layer
    previous = view_layer.objects.active
    view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    bones = []
    for j, bone_name in enumerate(sk.names):
        eb = data.edit_bones.new(bone_name)
        eb.head, eb.tail, eb.roll = Vector(heads[j]), Vector(tails[j]), 0.0
        if sk.parents[j] >= 0:
            eb.parent = bones[sk.parents[j]]
            eb.use_connect = False
        bones.append(eb)
    bpy.ops.object.mode_set(mode="OBJECT")
    for pb in obj.pose.bones:
        pb.rotation_mode = "QUATERNION"
    if previous is not None:
        view_layer.objects.active = previous
    obj["vmclip_skeleton"] = True
    return obj


def _prism(head, tail, r0: float, r1: float, sides: int = 10):
    """Vertices and faces of a closed tapered tube from head to tail."""
    head, tail = Vector(head), Vector(tail)
    axis = tail - head
    length = axis.length
    z = axis.normalized()
    x = z.orthogonal().normalized()
    y = z.cross(x)
    verts = []
    # Rings slightly beyond both ends, so neighbouring limbs overlap at the joints.
    rings = ((head - z * r0 * 0.5, r0 * 0.6), (head, r0), (tail, r1), (tail + z * min(r1, length), r1 * 0.6))
    for centre, r in rings:
        for k in range(sides):
            a = 2 * math.pi * k / sides
            verts.append(centre + (x * math.cos(a) + y * math.sin(a)) * r)
    faces = []
    for ring in range(3):
        for k in range(sides):
            a, b = ring * sides + k, ring * sides + (k + 1) % sides
            faces.append((a, b, b + sides, a + sides))
    faces.append(tuple(reversed(range(sides))))
    faces.append(tuple(range(3 * sides, 4 * sides)))
    return verts, faces


# Rest heights (armature units) of a person the mannequin's radii fit as they are; a rig outside them
# (centimetres, a toy) gets radii in proportion to its height.
_PERSON_HEIGHTS = (0.8, 2.4)
_PERSON_HEIGHT = 1.6  # head-to-foot span of a rig's bone heads, metres, for an adult


def _body_size(arm_obj) -> float:
    heights = [b.head_local.z for b in arm_obj.data.bones]
    span = max(heights) - min(heights) if heights else _PERSON_HEIGHT
    return 1.0 if _PERSON_HEIGHTS[0] < span < _PERSON_HEIGHTS[1] else max(span, 1e-6) / _PERSON_HEIGHT


def create_proxy_body(context, arm_obj: bpy.types.Object) -> bpy.types.Object:
    """A mannequin of tapered tubes, one per bone, rigidly skinned: it shows the motion in the viewport
    and gives FBX a skinned mesh, hence a bind pose."""
    verts, faces, groups = [], [], []
    size = _body_size(arm_obj)
    bones = arm_obj.data.bones

    def drawn(bone) -> bool:
        if not bone.use_deform:  # a control rig's handles are not part of the body
            return False
        # (a placement root, a BVH's or Unreal's, under the hips: a tube from the floor to them)
        return not (bone.parent is None and len(bone.children) == 1 and len(bones) > 12)

    def tube(name: str, head, tail, r0: float, r1: float) -> None:
        v, f = _prism(head, tail, r0, r1)
        base = len(verts)
        verts.extend(v)
        faces.extend(tuple(i + base for i in face) for face in f)
        groups.append((name, range(base, base + len(v))))

    radii = {b.name: [r * size for r in _RADII.get(_side_free(b.name), (0.04, 0.035))] for b in bones}
    for bone in bones:
        if not drawn(bone):
            continue
        tube(bone.name, bone.head_local, bone.tail_local, *radii[bone.name])
        parent = bone.parent
        # A bone that starts away from its parent's end (a thigh beside the hips' bone, a collar beside
        # the spine) is joined to its parent's head by a tube of the parent's: a BVH's hips bone is a
        # short stub and its thighs hung apart from it.
        if parent is not None and drawn(parent):
            reach = min(radii[parent.name][1], radii[bone.name][0])
            if (bone.head_local - parent.tail_local).length > reach:
                tube(parent.name, parent.head_local, bone.head_local, reach, reach)
    mesh = bpy.data.meshes.new(BODY_NAME)
    mesh.from_pydata([tuple(v) for v in verts], [], faces)
    mesh.update()
    for poly in mesh.polygons:
        poly.use_smooth = True
    body = bpy.data.objects.new(BODY_NAME, mesh)
    context.scene.collection.objects.link(body)
    members: dict[str, list[int]] = {}
    for name, ids in groups:  # (a bone's own tube and the joins hung on it: one vertex group)
        members.setdefault(name, []).extend(ids)
    for name, ids in members.items():
        body.vertex_groups.new(name=name).add(ids, 1.0, "REPLACE")
    body.parent = arm_obj
    mod = body.modifiers.new("Armature", "ARMATURE")
    mod.object = arm_obj
    mat = bpy.data.materials.get("VMCLIP_Body") or bpy.data.materials.new("VMCLIP_Body")
    mat.diffuse_color = (0.8, 0.62, 0.5, 1.0)
    mesh.materials.append(mat)
    body["vmclip_body"] = True
    return body


def refresh_proxy_body(context, arm_obj: bpy.types.Object) -> bpy.types.Object:
    """Rebuild the mannequin for the rig's current rest pose (after its bones moved)."""
    for child in list(arm_obj.children):
        if child.get("vmclip_body") and not child.get("vmclip_fitted_body"):
            mesh = child.data
            bpy.data.objects.remove(child)
            if mesh.users == 0:
                bpy.data.meshes.remove(mesh)
    return create_proxy_body(context, arm_obj)


def body_of(arm_obj: bpy.types.Object):
    """The rig's skinned mesh: the fitted body when there is one, else the mannequin."""
    children = sorted(arm_obj.children, key=lambda c: not c.get("vmclip_fitted_body"))
    for child in children:
        skinned = any(m.type == "ARMATURE" and m.object == arm_obj for m in child.modifiers)
        if child.type == "MESH" and skinned:
            return child
    return None


def ensure_armature(context, sk: smpl.Skeleton, existing=None) -> bpy.types.Object:
    """Reuse `existing` when it carries every SMPL-24 bone, else build a new rig with its body."""
    if is_smpl_armature(existing):
        return existing
    obj = create_armature(context, sk)
    create_proxy_body(context, obj)
    return obj


def trans_mapping(arm_obj) -> tuple[float, float]:
    """(scale, lift): a motion's pelvis path is keyed as scale * trans + lift (up), so a motion made for
    the default skeleton strides and stands like the fitted person (legs longer by `scale`; lift puts
    the soles on the floor). (1, 0) for a rig that was never fitted to a person."""
    return float(arm_obj.get("vmclip_trans_scale", 1.0)), float(arm_obj.get("vmclip_trans_lift", 0.0))


def fit_rest_to_person(context, arm_obj, joints: np.ndarray, floor_offset: float, trans_scale: float) -> bool:
    """Move the rig's rest pose onto the person's rest joints ((24, 3), motion frame, pelvis at the
    origin; the pelvis stands `floor_offset` above the floor), so that skinning the person's body is
    exact. Every bone keeps its rest orientation, so rotation keys on earlier actions keep their
    meaning (only where the joints pivot changes); their pelvis location keys stay relative to the
    old rest height. Returns whether any bone moved."""
    joints = np.asarray(joints, dtype=np.float64)
    names = list(smpl.JOINT_NAMES)
    offsets = joints - joints[[max(p, 0) for p in smpl.PARENTS]]
    person = smpl.Skeleton(offsets=offsets)
    heads = (smpl.C @ person.rest_positions().T).T + np.array([0.0, 0.0, float(floor_offset)])
    lengths = np.linalg.norm(_tails(person, heads) - heads, axis=1)
    current = np.array([np.array(arm_obj.data.bones[n].head_local) for n in names])
    changed = bool(np.abs(current - heads).max() > 1e-5)
    if changed:
        view_layer = context.view_layer
        previous, mode = view_layer.objects.active, context.mode
        _ensure_object_mode(context)
        view_layer.objects.active = arm_obj
        bpy.ops.object.mode_set(mode="EDIT")
        try:
            for j, name in enumerate(names):
                eb = arm_obj.data.edit_bones[name]
                m = eb.matrix.copy()
                m.translation = Vector(heads[j])
                eb.matrix = m
                eb.length = float(max(lengths[j], 0.02))
        finally:
            bpy.ops.object.mode_set(mode="OBJECT")
            if previous is not None:
                view_layer.objects.active = previous
            if mode == "POSE" and previous is arm_obj:
                bpy.ops.object.mode_set(mode="POSE")
    arm_obj["vmclip_trans_scale"] = float(trans_scale)
    arm_obj["vmclip_trans_lift"] = float(floor_offset) - float(trans_scale) * smpl.Skeleton().pelvis_height()
    return changed


def bone_rest(arm_obj, names) -> np.ndarray:
    return np.array([np.array(arm_obj.data.bones[n].matrix_local.to_3x3()) for n in names])


def bone_parents(arm_obj, names) -> list[int]:
    index = {n: i for i, n in enumerate(names)}
    out = []
    for n in names:
        parent = arm_obj.data.bones[n].parent
        out.append(index.get(parent.name, -1) if parent is not None else -1)
    return out


def rig_joint_names(arm_obj) -> list[str]:
    """The armature's bones in SMPL order (SMPL names first, any extra bones are ignored)."""
    return [n for n in smpl.JOINT_NAMES if n in arm_obj.data.bones]


def apply_motion(
    context, arm_obj, poses: np.ndarray, trans: np.ndarray, fps: float, joint_names, action_name: str
) -> bpy.types.Action:
    """Key the motion onto a NEW action of `arm_obj`: quaternion rotations for every bone, location
    for the root (the pelvis path mapped to the rig's person, see trans_mapping), one key per motion
    frame at the scene's frame rate, starting at the scene's first frame. The previous action keeps a
    fake user so nothing edited earlier is lost."""
    scene = context.scene
    names = [n for n in joint_names if n in arm_obj.data.bones]
    if smpl.JOINT_NAMES[0] not in names:
        raise ValueError("the motion has no pelvis joint to drive the armature's root")
    cols = [list(joint_names).index(n) for n in names]
    local = smpl.axis_angle_to_matrix(np.asarray(poses, dtype=np.float64)[:, cols])
    rest = bone_rest(arm_obj, names)
    quats = smpl.motion_to_bone_quaternions(local, rest)
    root = arm_obj.data.bones[names[0]]
    scale, lift = trans_mapping(arm_obj)
    keyed = np.asarray(trans, dtype=np.float64) * scale + np.array([0.0, lift, 0.0])
    loc = smpl.root_location(keyed, rest[0], np.array(root.head_local))

    old = arm_obj.animation_data.action if arm_obj.animation_data else None
    if old is not None:
        old.use_fake_user = True
    action = bpy.data.actions.new(action_name)
    action.use_fake_user = True
    compat.assign_action(arm_obj, action)
    for pb in arm_obj.pose.bones:  # a fresh action starts from the rest pose, not from stale edits
        pb.rotation_mode = "QUATERNION"
        pb.location, pb.rotation_quaternion, pb.scale = (0, 0, 0), (1, 0, 0, 0), (1, 1, 1)

    scene_fps = scene.render.fps / scene.render.fps_base
    start = scene.frame_start
    frames = start + np.arange(len(quats)) * (scene_fps / float(fps))

    def put(path: str, index: int, group: str, values: np.ndarray) -> None:
        fc = compat.ensure_fcurve(action, arm_obj, path, index, group)
        fc.keyframe_points.add(len(values))
        fc.keyframe_points.foreach_set("co", np.stack([frames, values], -1).ravel().astype(np.float32))
        fc.update()

    for j, name in enumerate(names):
        path = f'pose.bones["{name}"].rotation_quaternion'
        for k in range(4):
            put(path, k, name, quats[:, j, k])
    for k in range(3):
        put(f'pose.bones["{names[0]}"].location', k, names[0], loc[:, k])
    scene.frame_end = int(round(frames[-1]))
    scene.frame_set(start)
    return action


def sample_motion(context, arm_obj, frame_start: int, frame_end: int):
    """The armature's evaluated pose at every frame (edited keys, interpolation, constraints and the
    object's own transform all count), as SMPL local axis-angle rotations (T, J, 3) and pelvis
    positions (T, 3) in the motion frame."""
    scene = context.scene
    names = rig_joint_names(arm_obj)
    rest = bone_rest(arm_obj, names)
    parents = bone_parents(arm_obj, names)
    n = frame_end - frame_start + 1
    posed = np.empty((n, len(names), 3, 3))
    world = np.empty((n, 3, 3))
    heads = np.empty((n, 3))
    current = scene.frame_current
    try:
        for t, frame in enumerate(range(frame_start, frame_end + 1)):
            scene.frame_set(frame)
            ev = arm_obj.evaluated_get(context.evaluated_depsgraph_get())
            mw = ev.matrix_world
            world[t] = np.array(mw.to_3x3().normalized())
            for j, name in enumerate(names):
                pb = ev.pose.bones[name]
                posed[t, j] = np.array(pb.matrix.to_3x3())
            heads[t] = np.array(mw @ ev.pose.bones[names[0]].head)
    finally:
        scene.frame_set(current)
    local = smpl.pose_to_motion(posed, rest, parents, world)
    scale, lift = trans_mapping(arm_obj)  # back to the motion's own scale (see apply_motion)
    trans = ((smpl.C.T @ heads.T).T - np.array([0.0, lift, 0.0])) / scale
    return smpl.matrix_to_axis_angle(local).astype(np.float32), trans.astype(np.float32), names
