"""Regenerate around the artist's edits: the constraint arrays a `generate_motion` request carries
(`vmclip.motion.constraints.MotionConstraints`' shape: poses (T,24,3), trans (T,3), mask (T,25), column
24 = the root's ground path), built from what the rig shows, and the splice that keeps the frames
outside a regenerated range exactly. Pure numpy, except where it reads the scene."""

from __future__ import annotations

import numpy as np

from . import compat, keying, rig, rigmap, targets

ROOT_COLUMN = 24
MIN_PATH_POINTS = 2


class EditProblem(ValueError):
    """A range, key set or path the operator cannot use, in one line for the panel."""


def range_constraints(poses, trans, first: int, last: int, pinned=()) -> dict:
    """Hold every frame outside [first, last] (indices) and the pinned frames inside it."""
    n = len(poses)
    if not (0 <= first <= last < n):
        raise EditProblem(f"the range {first}..{last} is empty or outside the motion (0..{n - 1})")
    mask = np.ones((n, ROOT_COLUMN + 1), bool)
    mask[first : last + 1] = False
    for t in pinned:
        if first <= t <= last:
            mask[t] = True
    return {"poses": np.asarray(poses, np.float32), "trans": np.asarray(trans, np.float32), "mask": mask}


def key_constraints(poses, trans, keys) -> dict:
    """In-between: hold the artist's key poses (frame indices) and let the motion between be new."""
    keys = sorted({int(t) for t in keys if 0 <= t < len(poses)})
    if len(keys) < 2:
        raise EditProblem("In-between needs at least two key poses on the tweak layer")
    mask = np.zeros((len(poses), ROOT_COLUMN + 1), bool)
    mask[keys] = True
    return {"poses": np.asarray(poses, np.float32), "trans": np.asarray(trans, np.float32), "mask": mask}


def path_constraints(n: int, ground: np.ndarray) -> dict:
    """Follow Path: the root's ground path (x, z in the motion's axes) spread evenly, by arc length,
    over the motion's n frames; nothing else held."""
    ground = np.asarray(ground, dtype=np.float64)
    if len(ground) < MIN_PATH_POINTS:
        raise EditProblem("the path curve has fewer than two points")
    seg = np.linalg.norm(np.diff(ground, axis=0), axis=-1)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    if cum[-1] < 1e-6:
        raise EditProblem("the path curve has no length")
    s = np.linspace(0.0, cum[-1], n)
    trans = np.zeros((n, 3), np.float32)
    trans[:, 0] = np.interp(s, cum, ground[:, 0])
    trans[:, 2] = np.interp(s, cum, ground[:, 1])
    mask = np.zeros((n, ROOT_COLUMN + 1), bool)
    mask[:, ROOT_COLUMN] = True
    return {"poses": np.zeros((n, 24, 3), np.float32), "trans": trans, "mask": mask}


def splice(new_poses, new_trans, old_poses, old_trans, keep: np.ndarray):
    """The regenerated motion with the kept frames (bool (T,)) taken from the old one, exactly."""
    poses, trans = np.array(new_poses, np.float32), np.array(new_trans, np.float32)
    poses[keep], trans[keep] = np.asarray(old_poses)[keep], np.asarray(old_trans)[keep]
    return poses, trans


# --- reading the scene -------------------------------------------------------------------------------


def scene_range(scene) -> tuple[int, int]:
    return scene.frame_start, scene.frame_end


def sample(context, arm, *, with_tweaks: bool = True):
    """The rig's motion over the scene range as SMPL-24 (poses, trans); without the tweak layer when
    `with_tweaks` is False (the base take alone)."""
    ad = arm.animation_data
    saved = ad.action if ad is not None else None
    if not with_tweaks and ad is not None:
        ad.action = None
    try:
        start, end = scene_range(context.scene)
        poses, trans, _ = targets.sample_rig(context, arm, start, end)
    finally:
        if not with_tweaks and ad is not None:
            ad.action = saved
    return poses, trans


def tweak_frames(arm) -> list[int]:
    """Frames where the tweak layer has keys (the artist's key poses)."""
    ad = arm.animation_data
    if ad is None or ad.action is None or not ad.action.get("vmclip_tweak"):
        return []
    frames = set()
    for fc in compat.action_fcurves(ad.action, arm):
        frames.update(int(round(k.co[0])) for k in fc.keyframe_points)
    return sorted(frames)


def selected_key_range(arm) -> tuple[int, int] | None:
    """The frame span of the selected keys on the rig's take and tweak layer, or None."""
    frames = []
    actions = [keying.current_take(arm)]
    if arm.animation_data is not None:
        actions.append(arm.animation_data.action)
    for action in actions:
        for fc in compat.action_fcurves(action, arm) if action is not None else []:
            frames += [k.co[0] for k in fc.keyframe_points if k.select_control_point]
    if not frames:
        return None
    return int(np.floor(min(frames))), int(np.ceil(max(frames)))


def edit_range(context, arm) -> tuple[int, int]:
    """Regenerate Range's frames: the preview range when it is on, else the selected keys' span."""
    scene = context.scene
    if scene.use_preview_range:
        first, last = scene.frame_preview_start, scene.frame_preview_end
    else:
        span = selected_key_range(arm)
        if span is None:
            raise EditProblem("Regenerate Range: turn on the preview range or select keys to set the range")
        first, last = span
    start, end = scene_range(scene)
    first, last = max(first, start), min(last, end)
    if first > last:
        raise EditProblem(f"Regenerate Range: the range is empty within the scene's frames {start}-{end}")
    if first == start and last == end:
        raise EditProblem("Regenerate Range: the range covers the whole motion (use Generate Motion)")
    return first, last


def curve_ground_path(context, curve, arm) -> np.ndarray:
    """The curve's points (evaluated, in order) as the root's ground path in the motion's axes and
    units (what the rig's keys map back from)."""
    if curve is None or curve.type != "CURVE":
        raise EditProblem("Follow Path: pick a curve object as the path")
    points = sum((len(s.bezier_points) or len(s.points) for s in curve.data.splines), 0)
    if points < MIN_PATH_POINTS:
        raise EditProblem(
            f"Follow Path: the curve '{curve.name}' has {points} point(s); it needs two or more"
        )
    ev = curve.evaluated_get(context.evaluated_depsgraph_get())
    mesh = ev.to_mesh()
    try:
        world = np.array([tuple(curve.matrix_world @ v.co) for v in mesh.vertices])
    finally:
        ev.to_mesh_clear()
    if len(world) < MIN_PATH_POINTS:
        raise EditProblem(f"Follow Path: the curve '{curve.name}' has no length")
    to_arm = np.array(arm.matrix_world.inverted())
    local = world @ to_arm[:3, :3].T + to_arm[:3, 3]
    return armature_to_ground(arm, local)


def armature_to_ground(arm, points: np.ndarray) -> np.ndarray:
    """Armature-space points -> the motion's ground coordinates (x, z) of the pelvis path."""
    stored = rigmap.stored(arm)
    if stored is not None and not rig.is_smpl_armature(arm):
        _, rf = stored
        motion = (points @ rf.world - rf.origin) / rf.scale
    else:
        scale, _ = rig.trans_mapping(arm)
        motion = (points @ rig.smpl.C) / scale  # (C maps motion -> Blender; C^T back)
    return motion[:, [0, 2]]
