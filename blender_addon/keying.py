"""Keys an artist can edit: a motion goes onto a new action as sparse Bezier keys within a tolerance,
that action becomes a take on an NLA track (the base layer), and the active action is an additive
tweak layer on top (Combine blending: locations add, rotations multiply) that no take overwrites."""

from __future__ import annotations

import bpy
import numpy as np

from . import compat, fitting, rigmap, smpl
from .rigmap import contact

TAKE_TRACK_PREFIX = "VMCLIP Take"
TWEAK_ACTION_PREFIX = "VMCLIP Tweaks"
# The feet's budget halves a bone's tolerance around a frame where its thinning moves a planted foot
# too much, down to this fraction of it (then the frame is left as it is).
MIN_TIGHTENING = 1e-3
FEET_BUDGET = 0.5


def scene_frames(scene, n: int, fps: float) -> np.ndarray:
    scene_fps = scene.render.fps / scene.render.fps_base
    return scene.frame_start + np.arange(n) * (scene_fps / float(fps))


def write_action(arm, name: str, channels: dict[tuple[str, int, str], np.ndarray], frames: np.ndarray):
    """A new action on `arm` with one key per frame on every channel {(data path, index, group):
    values}. The action is assigned to the armature (layered actions key its slot)."""
    action = bpy.data.actions.new(name)
    action.use_fake_user = True
    compat.assign_action(arm, action)
    for (path, index, group), values in channels.items():
        fc = compat.ensure_fcurve(action, arm, path, index, group)
        fc.keyframe_points.add(len(values))
        fc.keyframe_points.foreach_set("co", np.stack([frames, values], -1).ravel().astype(np.float32))
        fc.update()
    return action


def _write(fcs, frames: np.ndarray, group: tuple, kind: str, unit: float) -> np.ndarray:
    """Key a channel group's curves at the frames `group` (fcs, values, keep, tol) keeps, values and
    slopes fitted to the dense values (fitting.fit), aligned Bezier handles; returns the fit's
    per-frame error."""
    _, values, keep, tol = group
    keys = np.flatnonzero(keep)
    key_values, slopes, err = fitting.fit(frames, values, keys, kind, unit, tol)
    at, n = frames[keys], len(keys)
    for k, fc in enumerate(fcs):
        left, right = fitting.handles(at, slopes[:, k], key_values[:, k])
        fc.keyframe_points.clear()
        fc.keyframe_points.add(n)
        fc.keyframe_points.foreach_set("co", np.stack([at, key_values[:, k]], -1).ravel().astype(np.float32))
        for kp in fc.keyframe_points:  # (Blender 3.4's foreach_set leaves enums as they were)
            kp.interpolation, kp.handle_left_type, kp.handle_right_type = "BEZIER", "ALIGNED", "ALIGNED"
        fc.keyframe_points.foreach_set("handle_left", left.ravel().astype(np.float32))
        fc.keyframe_points.foreach_set("handle_right", right.ravel().astype(np.float32))
        fc.update()
    return err


def _evaluate(fc, frames: np.ndarray) -> np.ndarray:
    return np.array([fc.evaluate(float(f)) for f in frames])


def planted_frames(arm, action, n: int) -> dict:
    """For a rig (mapped, or the SMPL-24 rig) whose take pinned planted feet: "bones" {keyed bone of the
    pelvis and legs: side ("left", "right", "both")}, "masks" {side: (n,) frames its foot is planted},
    "weights" {side: (n,) how much its pin holds}, "points" {side: (bone, "head" or "tail") of its
    pinned points (heel, ball) and its toe tip}, "legs" {side: its keyed thigh, shin and foot}; {} when
    the take pinned none."""
    stored = rigmap.stored(arm)
    planted = action.get("vmclip_planted")
    if not planted:
        return {}
    if stored is None:  # the SMPL-24 rig: its bones are the roles
        if not all(n in arm.data.bones for n in smpl.JOINT_NAMES):
            return {}
        stored = (rigmap.RigMap({n: n for n in smpl.JOINT_NAMES}, {n: n for n in smpl.JOINT_NAMES}), None)
    sides = {k: np.asarray(v, dtype=bool)[:n] for k, v in planted.items()}
    if len(sides) < 2 or any(len(v) != n for v in sides.values()):
        return {}
    sides["both"] = sides["left"] | sides["right"]
    rm = stored[0]
    return {
        "bones": {b: side for b, (_, side) in rigmap.leg_reaches(arm, rm).items()},
        "masks": {s: sides[s] for s in ("left", "right")},
        "weights": {s: np.asarray(planted[s], dtype=float)[:n] for s in ("left", "right")},
        # (heel and ball, and the toe tip: the lowest point of a foot rolling onto its toes)
        "points": {
            s: [(rm.point(r), end) for r, end in ends if r in rm.bones]
            for s in ("left", "right")
            for ends in [((f"{s}_ankle", "head"), (f"{s}_foot", "head"), (f"{s}_foot", "tail"))]
        },
        "legs": {
            s: [rm.drive[f"{s}_{j}"] for j in ("hip", "knee", "ankle")]
            for s in ("left", "right")
            if all(f"{s}_{j}" in rm.drive for j in ("hip", "knee", "ankle"))
        },
    }


def reduce_keys(
    action, arm, frames: np.ndarray, tol_deg: float, tol_m: float, planted: dict | None = None
) -> tuple[int, int]:
    """Thin every bone's keys to a Bezier set within tolerance (rotation: `tol_deg` per bone; location:
    `tol_m` metres, in the rig's units by rigmap.metres_per_unit): start from the first and last frame,
    then add the worst frame of every stretch between keys still out of tolerance until none is. `planted`
    (see planted_frames): then keys are added on the shins and feet (on the pelvis and legs of a rig whose
    legs are not re-aimed) until thinning moves no planted foot by more than `tol_m` (see
    _hold_planted_feet). Returns (keys before, keys after)."""
    groups: dict[tuple[str, str], list] = {}
    for fc in compat.action_fcurves(action, arm):
        bone_path, kind = fc.data_path.rsplit(".", 1)
        groups.setdefault((bone_path.removeprefix('pose.bones["').removesuffix('"]'), kind), []).append(fc)
    stored = rigmap.stored(arm)
    unit = rigmap.metres_per_unit(arm, stored[1] if stored else None)  # (the tolerances are in metres)
    geometry = _pose_series(arm, frames, planted, groups) if planted else None
    legs = {(b, "rotation_quaternion") for leg in (planted or {}).get("legs", {}).values() for b in leg}
    thinned = {}
    before = 0
    step = {b: i for leg in (planted or {}).get("legs", {}).values() for i, b in enumerate(leg)}
    # (the legs last, thighs, shins, then feet: each is re-aimed to take up the thinning of what it
    # hangs on, then thinned itself)
    for g in sorted(groups, key=lambda g: (g in legs, step.get(g[0], 0))):
        if g in legs and not any(step.get(b) == step[g[0]] for b, _ in thinned):
            _reaim_legs(arm, frames, planted, geometry, groups, unit, step[g[0]])
        fcs = sorted(groups[g], key=lambda f: f.array_index)
        values = np.stack([_values(fc) for fc in fcs], -1)
        if g[1] == "rotation_quaternion":
            values = fitting.same_hemisphere(values)
        before += values.size
        tol = np.full(len(frames), tol_deg if g[1] == "rotation_quaternion" else tol_m)
        if g[1] == "location" and planted:
            # (a leg stretched to its planted foot cannot take up the hips rising: they keep the feet's
            # budget while a foot is planted; with 5 mm a landing heel stood 4.7 mm high)
            tol[planted["masks"]["left"] | planted["masks"]["right"]] = tol_m * FEET_BUDGET
        if g in legs and step[g[0]] == 0:
            tol = np.minimum(tol, _thigh_tolerance(planted, geometry, g[0], tol_m * FEET_BUDGET / unit))
        thinned[g] = (fcs, values, fitting.select_keys(frames, values, g[1], unit, tol), tol)
        _write(fcs, frames, thinned[g], g[1], unit)
    if geometry:
        # (half the root tolerance at every frame: the pinned point's spread over a contact stays within it)
        _hold_planted_feet(thinned, frames, tol_m * FEET_BUDGET / unit, planted, geometry, legs, unit)
    _verify(thinned, frames, unit)
    return before, sum(int(keep.sum()) * len(fcs) for fcs, _, keep, _ in thinned.values())


def _verify(thinned: dict, frames: np.ndarray, unit: float) -> None:
    """Evaluate every thinned curve as Blender does on every frame until each group is within its
    tolerance of the values it thins: where it is not, the fit is held closer there and a key added
    to each stretch out of tolerance; every frame keyed when that does not do."""
    for (_, kind), group in thinned.items():
        fcs, values, keep, tol = group
        for _ in range(fitting.MAX_PASSES):
            err = fitting.group_error(kind, values, np.stack([_evaluate(fc, frames) for fc in fcs], -1), unit)
            if not (err > tol).any():
                break
            tol[err > tol] *= 0.9  # (a fitted key need not pass through its value: its own frame too)
            fitting.split(keep, err - tol)
            _write(fcs, frames, group, kind, unit)
        else:
            keep[:] = True
            _write(fcs, frames, group, kind, unit)


def _reaim_legs(
    arm, frames: np.ndarray, planted: dict, dense: dict, groups: dict, unit: float, step: int = 0
) -> None:
    """Step 0: turn each leg's keyed thigh and shin (two-bone IK) so that its ankle is where the dense
    take has it on the thinned pelvis and path, and give its foot back the dense take's rotation: what
    thinning the hips moves a planted foot by is taken up by the leg, whose own keys are thinned next.
    Step 1 (the thighs thinned): turn the shins so the ankles point there again, feet as in step 0.
    Step 2 (the shins thinned): give the feet back their rotation. Where no pin holds the legs keep
    their curves; they are eased in and out with the pins. Bones already thinned are left alone."""
    now = _pose_series(arm, frames, planted, groups)
    t = np.swapaxes
    eye = np.broadcast_to(np.eye(3), (len(frames), 3, 3))
    for side, (thigh, shin, foot) in planted["legs"].items():
        h, k, a = (now["head"][b] for b in (thigh, shin, foot))
        if step == 0:
            turns = contact.two_bone(*(x * unit for x in (h, k, a, dense["head"][foot])), k - h)  # (metres)
        else:
            turns = (eye, contact.rotation_between(a - k, dense["head"][foot] - k) if step == 1 else eye)
        r = {b: now["rot"][b] for b in (thigh, shin, foot)}
        back = dense["rot"][foot] @ t(r[foot], -1, -2)  # (the foot's own turn back to the dense take)
        # (eased in and out with the pin: a swinging leg keeps its own curves)
        turn_hip, turn_knee, back = (_partial(m, planted["weights"][side]) for m in (*turns, back))
        change = {
            thigh: t(r[thigh], -1, -2) @ turn_hip @ r[thigh],
            shin: t(r[shin], -1, -2) @ t(turn_hip, -1, -2) @ turn_knee @ r[shin],
            foot: t(r[foot], -1, -2) @ t(turn_knee, -1, -2) @ back @ r[foot],
        }
        for bone, c in list(change.items())[step:]:
            fcs = sorted(groups[(bone, "rotation_quaternion")], key=lambda f: f.array_index)
            old = np.stack([_values(fc) for fc in fcs], -1)
            new = smpl.matrix_to_quaternion(smpl.quaternion_to_matrix(old) @ c)
            new *= np.sign((new * old).sum(-1, keepdims=True) + 1e-12)  # (the old curve's hemisphere)
            for i, fc in enumerate(fcs):
                fc.keyframe_points.foreach_set(
                    "co", np.stack([frames, new[:, i]], -1).ravel().astype(np.float32)
                )
                fc.update()


def _partial(rot: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Rotations (T, 3, 3) turned `weight` (T,) of the way from none."""
    return smpl.axis_angle_to_matrix(smpl.matrix_to_axis_angle(rot) * weight[:, None])


def _pose_series(arm, frames: np.ndarray, planted: dict, groups: dict) -> dict:
    """Armature-space rotations (T, 3, 3) and heads (T, 3) of the keyed pelvis, root and leg bones,
    and the feet's pinned points {side: (T, P, 3)}, as the take being thinned poses them (alone)."""
    bones = {b for b, kind in groups if b in planted["bones"] or kind == "location"}
    bones |= {b for leg in planted.get("legs", {}).values() for b in leg}
    ad = arm.animation_data
    saved = (ad.use_nla, ad.action_blend_type, ad.action_influence, bpy.context.scene.frame_current)
    ad.use_nla, ad.action_blend_type, ad.action_influence = False, "REPLACE", 1.0
    rot = {b: np.empty((len(frames), 3, 3)) for b in bones}
    head = {b: np.empty((len(frames), 3)) for b in bones}
    points = {s: np.empty((len(frames), len(p), 3)) for s, p in planted["points"].items()}
    try:
        for t, f in enumerate(frames):
            bpy.context.scene.frame_set(int(np.floor(f)), subframe=float(f - np.floor(f)))
            for b in bones:
                m = np.array(arm.pose.bones[b].matrix)
                rot[b][t], head[b][t] = smpl.orthonormalize(m[:3, :3]), m[:3, 3]
            for s, names in planted["points"].items():
                points[s][t] = [np.array(getattr(arm.pose.bones[n], end)) for n, end in names]
    finally:
        ad.use_nla, ad.action_blend_type, ad.action_influence = saved[:3]
        bpy.context.scene.frame_set(saved[3])
    return {"rot": rot, "head": head, "points": points}


def _foot_moves(group, kind: str, frames: np.ndarray, rot, head, basis, points) -> np.ndarray:
    """(T, P, 3) how far thinning one bone's curve moves each pinned point (armature units, first
    order): its rotation error turns them about the bone's head; its location error (in the axes of
    the pose without the bone's own rotation `basis`, quaternions (T, 4)) moves them."""
    fcs, values = group[:2]
    got = np.stack([_evaluate(fc, frames) for fc in fcs], -1)
    if kind == "location":
        own = smpl.quaternion_to_matrix(basis) if basis is not None else np.eye(3)
        shift = rot @ np.swapaxes(own, -1, -2) @ (got - values)[..., None]
        return np.broadcast_to(shift[:, None, :, 0], points.shape)
    want = values / np.linalg.norm(values, axis=-1, keepdims=True)
    got = got / np.linalg.norm(got, axis=-1, keepdims=True)
    # E = want^-1 got (in the bone's posed axes); small angle: rotation vector 2 * vector part
    w0, v0 = want[:, :1], -want[:, 1:]
    w1, v1 = got[:, :1], got[:, 1:]
    vec = w0 * v1 + w1 * v0 + np.cross(v0, v1)
    vec *= np.sign(w0 * w1 - (v0 * v1).sum(-1, keepdims=True)) * 2
    turn = (rot @ vec[..., None])[..., 0]
    return np.cross(turn[:, None], points - head[:, None])


def _hold_planted_feet(
    thinned: dict, frames: np.ndarray, budget: float, planted: dict, geometry, legs, unit: float
) -> None:
    """Add keys until thinning moves no planted foot's pinned point (heel, ball) by more than `budget`
    (armature units) on a frame it is planted: the moves of the root's location and of the pelvis's
    and that leg's rotations, added up as vectors. The key goes on the bone that moves the point most
    at the worst frame, at the worst frame of its stretch between keys."""
    chain = {g: "both" if g[1] == "location" else planted["bones"].get(g[0]) for g in thinned}
    # (re-aimed legs take up what the hips' thinning moves a foot by: then only their own count)
    chain = {g: side for g, side in chain.items() if side and (g in legs or not legs)}
    # (the shins were re-aimed on the thinned thighs: what is left of a thigh's move is its knee's
    # move along the shin, counted, and the thighs' keys stay as they are)
    fixed = _thigh_residuals(thinned, frames, planted, geometry) if legs else {}
    chain = {g: side for g, side in chain.items() if g[0] not in {leg[0] for leg in planted["legs"].values()}}

    def moves(g):
        bone, kind = g
        basis = thinned.get((bone, "rotation_quaternion"), (None, None))[1] if kind == "location" else None
        pose = (geometry["rot"][bone], geometry["head"][bone], basis)
        sides = ("left", "right") if chain[g] == "both" else (chain[g],)
        return {s: _foot_moves(thinned[g], kind, frames, *pose, geometry["points"][s]) for s in sides}

    move = {g: moves(g) for g in chain}
    # (wherever a pin holds at all, fading in or out included, its foot is held as still as where it
    # holds whole: letting a fading pin's foot move more, by the weight, kept 15 % of a walk's keys
    # instead of 12 %, its tightenings wandering along the fade)
    masks = {s: planted["masks"][s].astype(float) for s in planted["weights"]}
    for _ in range(len(frames) * len(chain)):  # (each pass adds a key; all keys move nothing)
        worst, at, side = 0.0, -1, ""
        for s, mask in masks.items():
            total = sum((m[s] for m in move.values() if s in m), fixed.get(s, 0.0))
            total = np.linalg.norm(total, axis=-1).max(-1) * mask
            if total.max() - budget > worst:
                worst, at, side = total.max() - budget, int(total.argmax()), s
        if at < 0:
            break
        size = {g: np.linalg.norm(m[side], axis=-1).max(-1) for g, m in move.items() if side in m}
        g = max(size, key=lambda g: size[g][at])
        keep, tol = thinned[g][2], thinned[g][3]
        if size[g][at] == 0.0 or tol[at] < MIN_TIGHTENING * tol.max():  # (a thigh's residual alone, to
            # first order within the budget by _thigh_tolerance: nothing of these bones helps)
            masks[side][at] = 0.0
            continue
        idx = np.flatnonzero(keep)
        lo, hi = idx[np.searchsorted(idx, at) - 1], idx[np.searchsorted(idx, at)]
        if hi - lo >= 2:
            keep[lo + 1 + int(size[g][lo + 1 : hi].argmax())] = True
        # (a fitted curve need not pass through its keys' values: it is also held closer there)
        tol[max(at - 1, 0) : at + 2] *= 0.5
        _write(thinned[g][0], frames, thinned[g], g[1], unit)
        move[g] = moves(g)
    _prune_for_feet(thinned, frames, move, moves, lambda: _over(move, masks, budget, fixed), unit)


def _thigh_tolerance(planted: dict, geometry: dict, thigh: str, budget: float) -> np.ndarray:
    """(T,) degrees a thigh may be off where its foot is planted so that, once its shin is re-aimed,
    the knee's move along the shin (the angle times the thigh's lever across the shin) stays within
    `budget` (armature units), weighted by the pin."""
    side, (_, shin, foot) = next((s, leg) for s, leg in planted["legs"].items() if leg[0] == thigh)
    h, k, a = (geometry["head"][b] for b in (thigh, shin, foot))
    u = (a - k) / np.maximum(np.linalg.norm(a - k, axis=-1, keepdims=True), 1e-12)
    lever = np.linalg.norm(np.cross(k - h, u), axis=-1) * planted["weights"][side]
    return np.degrees(budget / np.maximum(lever, 1e-12))


def _thigh_residuals(thinned: dict, frames: np.ndarray, planted: dict, geometry: dict) -> dict:
    """{side: (T, P, 3)} how far each thinned thigh still moves the pinned points once the shin is
    re-aimed on it (first order): its knee's move along the shin."""
    out = {}
    for side, (thigh, shin, foot) in planted["legs"].items():
        g = (thigh, "rotation_quaternion")
        if g not in thinned:
            continue
        h, k, a = (geometry["head"][b] for b in (thigh, shin, foot))
        knee = _foot_moves(thinned[g], g[1], frames, geometry["rot"][thigh], h, None, k[:, None])[:, 0]
        u = (a - k) / np.maximum(np.linalg.norm(a - k, axis=-1, keepdims=True), 1e-12)
        along = (knee * u).sum(-1, keepdims=True) * u
        out[side] = np.broadcast_to(along[:, None], geometry["points"][side].shape)
    return out


def _over(move: dict, weights: dict, budget: float, fixed: dict) -> bool:
    """Whether a planted foot moves by more than `budget` on some frame (weighted by its pin)."""
    for s, weight in weights.items():
        total = sum((m[s] for m in move.values() if s in m), fixed.get(s, 0.0))
        total = np.linalg.norm(total, axis=-1).max(-1) * weight
        if total.max() > budget:
            return True
    return False


def _prune_for_feet(thinned: dict, frames: np.ndarray, move: dict, moves, over, unit: float) -> None:
    """Drop the keys the feet's budget added that a later one made redundant: each interior key of a
    bone in `move`, kept out when its refitted curve stays within its tolerance and no foot moves more."""
    for g in move:
        group = thinned[g]
        fcs, values, keep, tol = group
        for key in np.flatnonzero(keep)[1:-1]:
            keep[key] = False
            err = _write(fcs, frames, group, g[1], unit)
            before, move[g] = move[g], moves(g)
            if (err > tol).any() or over():
                keep[key], move[g] = True, before
        _write(fcs, frames, group, g[1], unit)


def _values(fc) -> np.ndarray:
    co = np.zeros(2 * len(fc.keyframe_points))
    fc.keyframe_points.foreach_get("co", co)
    return co[1::2].copy()


# --- NLA: takes and the tweak layer ------------------------------------------------------------------


def take_tracks(arm) -> list:
    ad = arm.animation_data
    return [t for t in ad.nla_tracks if t.name.startswith(TAKE_TRACK_PREFIX)] if ad else []


def current_take(arm):
    """The action of the newest un-muted take (the base layer), or None."""
    for track in reversed(take_tracks(arm)):
        if not track.mute and len(track.strips):
            return track.strips[0].action
    return None


def push_take(scene, arm, action, tweak_name: str = TWEAK_ACTION_PREFIX):
    """Put `action` on a new NLA track as the base layer, mute earlier takes (kept, never removed),
    and keep (or make) the additive tweak action active on top. Returns the tweak action."""
    ad = arm.animation_data or arm.animation_data_create()
    previous = [t for t in take_tracks(arm)]
    tweak = bpy.data.actions.get(arm.get("vmclip_tweak_action", ""))  # (write_action replaced ad.action)
    if tweak is None and ad.action is not None and ad.action.get("vmclip_tweak"):
        tweak = ad.action
    if ad.action is not None and ad.action is not tweak:
        ad.action.use_fake_user = True  # the rig's own animation (an imported BVH's) is kept
    ad.action = None
    track = ad.nla_tracks.new(prev=previous[-1] if previous else None)
    track.name = f"{TAKE_TRACK_PREFIX} {len(previous) + 1}"
    start = int(round(action.frame_range[0]))
    strip = track.strips.new(action.name, start, action)
    strip.blend_type = "REPLACE"
    for t in previous:
        t.mute = True
    if tweak is None:
        tweak = bpy.data.actions.new(f"{tweak_name} {arm.name}")
        tweak.use_fake_user = True
        tweak["vmclip_tweak"] = True
    arm["vmclip_tweak_action"] = tweak.name
    compat.assign_action(arm, tweak)
    ad.action_blend_type = "COMBINE"
    ad.use_nla = True
    return tweak


def retarget_channels(
    context, arm, rm, rf, motion, *, offsets=None, plant: bool = True, hold=None, origin=None
):
    """The keys that put a SMPL motion on `arm`: {(path, index, group): values (T,)} for the keyed bones'
    quaternions and the root control's location, the largest remaining error of control rigs
    (degrees; 0 for rigs keyed on their deform bones), and what planting the feet did (None: off).
    `hold`/`origin`: frames kept as they are and the earlier take's placement (Regenerate)."""
    deltas, path = rigmap.motion_to_rig(motion.poses, motion.trans, rf, arm, rm, origin)
    planting = None
    if plant:
        glob = rigmap.smpl_globals(smpl.axis_angle_to_matrix(np.asarray(motion.poses, dtype=np.float64)))
        offsets = smpl.Skeleton(offsets=offsets).offsets
        deltas, path, planting = rigmap.plant_feet(
            deltas, path, rf, arm, rm, glob, motion.trans, offsets, float(motion.fps), hold
        )
    basis, loc = rigmap.basis_from_deltas(arm, rm, rf, deltas, path)
    worst = 0.0
    if rm.kind != "deform bones":
        worst = _solve_controls(context, arm, rm, deltas, path, basis, loc)
    channels = {}
    for bone, mats in basis.items():
        q = smpl.continuous_quaternions(smpl.matrix_to_quaternion(mats))
        for k in range(4):
            channels[(f'pose.bones["{bone}"].rotation_quaternion', k, bone)] = q[:, k]
    root = rm.root_bone
    if root not in basis:  # a master control carrying the path keeps its rest rotation
        for k, v in enumerate((1.0, 0.0, 0.0, 0.0)):
            channels[(f'pose.bones["{root}"].rotation_quaternion', k, root)] = np.full(len(loc), v)
    for k in range(3):
        channels[(f'pose.bones["{root}"].location', k, root)] = loc[:, k]
    return channels, worst, planting


def _solve_controls(context, arm, rm, deltas, path, basis, loc) -> float:
    """Run the control-rig correction with the rig's animation switched off (it would override the
    pose being solved), then restore the animation and the pose."""
    ad = arm.animation_data
    saved = (ad.action, ad.use_nla) if ad else None
    pose = {
        pb.name: (pb.rotation_mode, tuple(pb.rotation_quaternion), tuple(pb.location))
        for pb in arm.pose.bones
    }
    if ad:
        ad.action, ad.use_nla = None, False
    try:
        rigmap.set_fk(arm)
        return rigmap.correct_controls(context, arm, rm, deltas, path, basis, loc)
    finally:
        if ad:
            ad.action, ad.use_nla = saved
        for name, (mode, q, l) in pose.items():
            pb = arm.pose.bones[name]
            pb.rotation_mode, pb.rotation_quaternion, pb.location = mode, q, l
