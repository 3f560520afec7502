"""Constraints met on any decoded motion (model-independent).

A generator hands its decoded motion (any rate, any model) and the user's `MotionConstraints` to
`finish_motion`, which makes the held frames exact and the frames around them agree:

1. Placement: the motion is turned about the vertical and moved over the floor as one rigid body so
   it best fits the held root path (2-D Procrustes), or the held facing when no path is held.
2. Root path: the differences between held and generated pelvis positions are spread over the free
   frames by a smoothing spline under tension (`smooth_offsets`): exact at held frames, C1 across
   them, constant beyond the first and last key (no drift, no speed spike).
3. Heading: where the root path changed the direction of travel, the body turns with it (the yaw
   between the generated and the new travel direction, weighted by speed and smoothed), so a walk
   bent onto a circle faces along the circle instead of crabbing.
4. Rotations: each held joint's correction rotation (target x generated^-1, as a rotation vector) is
   spread the same way, decaying to nothing BLEND_SECONDS away from the keys, so the motion's own
   content returns between sparse keys (motion warping, Witkin & Popovic 1995).

`finish_motion` runs these, the clean-up (feet, floor), then steps 2 and 4 again, because the
clean-up moves the root and the legs a little, and pins the planted feet again by leg IK.
`candidate_cost` scores decoded candidates against the constraints (heading- and position-free),
for models that choose among latents or samples.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from scipy.linalg import solveh_banded
from scipy.ndimage import gaussian_filter1d
from scipy.spatial.transform import Rotation

from vmclip.errors import InputError
from vmclip.motion import Motion
from vmclip.motion import rotations as R
from vmclip.motion.constraints import ROOT_COLUMN, MotionConstraints
from vmclip.motion.contact import lock_feet
from vmclip.motion.kinematics import forward_kinematics
from vmclip.motion.skeleton import NUM_JOINTS, PARENTS

# A held rotation's correction fades out over about this long on either side of its key: long
# enough that a keyed arm moves there at a natural speed, short enough that the motion's own
# content returns between keys a second apart.
BLEND_SECONDS = 0.5
# The root path's correction is a spline under this tension: between keys it bends smoothly, beyond
# the last key it settles to a constant offset within about this time.
PATH_TENSION_SECONDS = 0.5
KEY_WEIGHT = 1e8  # penalty holding the spline at keyed frames (exact to ~1e-8 of the offset)
MOVING_SPEED = 0.3  # m/s: a travel direction is trusted above this speed
HEADING_SMOOTH_SECONDS = 0.2
MIN_SPREAD = 0.05  # m: a held path that spreads less than this does not fix the facing


def prepare(constraints: object, num_frames: int, fps: float) -> MotionConstraints | None:
    """The constraints a generator must meet for a `num_frames` motion at `fps`, or None when they
    hold nothing; `InputError` when they do not fit the motion or cannot be met."""
    if constraints is None:
        return None
    if not isinstance(constraints, MotionConstraints):
        raise InputError(
            "constraints must be vmclip.motion.constraints.MotionConstraints, "
            f"not {type(constraints).__name__}"
        )
    if constraints.num_frames != num_frames:
        raise InputError(
            f"constraints cover {constraints.num_frames} frames but the motion has {num_frames} "
            f"(seconds x {fps:g} fps); give one row per output frame"
        )
    constraints.check_reachable(fps)
    return constraints if constraints.any else None


# --- the smoothing spline ---------------------------------------------------------------------------


def _banded_system(num: int, tension: float, decay: float) -> np.ndarray:
    """Upper banded form (3, T) of a*D2'D2 + tension*D1'D1 + decay*I (a = 1)."""
    ab = np.zeros((3, num))
    if num >= 3:
        diag = np.full(num, 6.0)
        diag[[0, -1]] = 1.0
        diag[[1, -2]] = 5.0
        if num == 3:
            diag = np.array([1.0, 4.0, 1.0])
        off1 = np.full(num - 1, -4.0)
        off1[[0, -1]] = -2.0
        ab[2] += diag
        ab[1, 1:] += off1
        ab[0, 2:] += 1.0
    if num >= 2:
        d1 = np.full(num, 2.0)
        d1[[0, -1]] = 1.0
        ab[2] += tension * d1
        ab[1, 1:] -= tension
    ab[2] += decay
    return ab


def smooth_offsets(values: np.ndarray, held: np.ndarray, tension: float, decay: float) -> np.ndarray:
    """Offsets (T, C) known at `held` frames (T,) -> offsets at every frame minimising the
    second-difference energy + tension x first-difference energy + decay x size (per frame units)."""
    num = len(held)
    if not held.any():
        return np.zeros_like(values)
    ab = _banded_system(num, tension, decay)
    ab[2] += KEY_WEIGHT * held
    rhs = KEY_WEIGHT * np.where(held[:, None], values, 0.0)
    out = solveh_banded(ab, rhs, lower=False, check_finite=False)
    out[held] = values[held]
    return out


def _spread(values: np.ndarray, held: np.ndarray, fps: float, seconds: float, decaying: bool) -> np.ndarray:
    """`smooth_offsets` with its time constants given in seconds. Decaying: a key's offset falls
    smoothly to about 3 % at `seconds` from it (tension 1/s^2 and decay 16/s^4 in frames, s = seconds
    / 1.7); otherwise a tension spline that settles within about `seconds` beyond the keys."""
    if decaying:
        scale = max(1.0, seconds * fps / 1.7)
        return smooth_offsets(values, held, 1.0 / scale**2, 16.0 / scale**4)
    scale = max(1.0, seconds * fps)
    return smooth_offsets(values, held, 1.0 / scale**2, 0.0)


# --- placement, path, heading, rotations -------------------------------------------------------


def _rot_y(angle: np.ndarray) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    z, o = np.zeros_like(c), np.ones_like(c)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2)


def _yaw(mats: np.ndarray) -> np.ndarray:
    """Facing angle about +Y of rotation matrices (..., 3, 3): where the body's +Z points."""
    return np.arctan2(mats[..., 0, 2], mats[..., 2, 2])


# Small rotation conversions go through scipy: torch's per-call overhead dominates at these sizes.
def _rotvec_to_matrix(vecs: np.ndarray) -> np.ndarray:
    flat = vecs.reshape(-1, 3).astype(np.float64)
    return Rotation.from_rotvec(flat).as_matrix().reshape(*vecs.shape[:-1], 3, 3)


def _matrix_to_rotvec(mats: np.ndarray) -> np.ndarray:
    return Rotation.from_matrix(mats.reshape(-1, 3, 3)).as_rotvec().reshape(*mats.shape[:-2], 3)


def _target_matrices(c: MotionConstraints) -> np.ndarray:
    return _rotvec_to_matrix(c.poses)


def rigid_placement(local: np.ndarray, trans: np.ndarray, c: MotionConstraints) -> tuple[float, np.ndarray]:
    """Yaw (rad) and ground shift (x, z) that place the motion best on the held root path and facing."""
    root = c.frames_with_root()
    q = c.trans[root][:, [0, 2]].astype(np.float64)
    p = trans[root][:, [0, 2]]
    yaw = None
    if len(root) >= 2 and q.std(0).sum() > MIN_SPREAD and p.std(0).sum() > MIN_SPREAD:
        pc, qc = p - p.mean(0), q - q.mean(0)
        # Ry(yaw) maps (x, z) to (c x + s z, -s x + c z); the best yaw maximises sum q . Ry p.
        yaw = float(np.arctan2((qc[:, 0] * pc[:, 1] - qc[:, 1] * pc[:, 0]).sum(), (qc * pc).sum()))
    if yaw is None:
        facing = _facing_frames(c)
        if len(facing):
            target = _yaw(_target_matrices(c)[facing, 0])
            diff = target - _yaw(local[facing, 0])
            yaw = float(np.arctan2(np.sin(diff).mean(), np.cos(diff).mean()))
    yaw = 0.0 if yaw is None else yaw
    if not len(root):
        return yaw, np.zeros(2)
    ry = _rot_y(np.array(yaw))[[0, 2]][:, [0, 2]]
    return yaw, q.mean(0) - p.mean(0) @ ry.T


def _facing_frames(c: MotionConstraints) -> np.ndarray:
    """Frames whose root orientation's facing is held: joint 0 held, or the root with `heading`."""
    held = c.mask[:, 0].copy()
    if c.heading:
        held |= c.mask[:, ROOT_COLUMN]
    return np.flatnonzero(held)


def _place(local: np.ndarray, trans: np.ndarray, yaw: float, shift: np.ndarray) -> None:
    ry = _rot_y(np.array(yaw))
    local[:, 0] = ry @ local[:, 0]
    trans[:] = trans @ ry.T
    trans[:, [0, 2]] += shift


def warp_path(trans: np.ndarray, c: MotionConstraints, fps: float) -> np.ndarray:
    """New pelvis path: exact at held root frames, the differences spread smoothly (see module doc)."""
    held = c.mask[:, ROOT_COLUMN]
    if not held.any():
        return trans
    cols = [0, 1, 2] if c.trans_y else [0, 2]
    diff = np.zeros((len(trans), len(cols)))
    diff[held] = c.trans[held][:, cols] - trans[held][:, cols]
    out = trans.copy()
    out[:, cols] += _spread(diff, held, fps, PATH_TENSION_SECONDS, decaying=False)
    return out


def _travel(trans: np.ndarray, fps: float) -> np.ndarray:
    xz = gaussian_filter1d(trans[:, [0, 2]], 2.0, axis=0, mode="nearest")
    return np.gradient(xz, axis=0) * fps if len(xz) > 1 else np.zeros_like(xz)


def heading_turn(old: np.ndarray, new: np.ndarray, fps: float) -> np.ndarray:
    """(T,) yaw turning the old travel direction onto the new one, trusted where both paths move."""
    vo, vn = _travel(old, fps), _travel(new, fps)
    so, sn = np.linalg.norm(vo, axis=-1), np.linalg.norm(vn, axis=-1)
    w = np.clip(np.minimum(so, sn) / MOVING_SPEED, 0.0, 1.0)
    delta = np.arctan2(vn[:, 0], vn[:, 1]) - np.arctan2(vo[:, 0], vo[:, 1])
    sigma = max(1.0, HEADING_SMOOTH_SECONDS * fps)
    # Normalised convolution of unit vectors (no wrap-around trouble); frames that never move keep
    # the nearest trusted turn (a wide second pass), and with no trusted frame at all, no turn.
    unit = np.stack([np.cos(delta), np.sin(delta)], -1) * w[:, None]
    near = gaussian_filter1d(unit, sigma, axis=0, mode="nearest")
    wide = gaussian_filter1d(unit, 6 * sigma, axis=0, mode="nearest")
    weight = gaussian_filter1d(w, sigma, mode="nearest")[:, None]
    vec = np.where(weight > 0.2, near, wide) + np.array([1e-6, 0.0])
    return np.arctan2(vec[:, 1], vec[:, 0])


def _continuous(vecs: np.ndarray) -> np.ndarray:
    """Rotation vectors (N, 3) of held frames in time order, each taking the equivalent form
    (v - 2 pi v/|v|) nearer its predecessor, so no spline runs the long way round."""
    out = vecs.copy()
    for i in range(1, len(out)):
        angle = np.linalg.norm(out[i])
        if angle > 1e-9:
            alt = out[i] - 2 * np.pi * out[i] / angle
            if np.linalg.norm(alt - out[i - 1]) < np.linalg.norm(out[i] - out[i - 1]):
                out[i] = alt
    return out


def warp_rotations(local: np.ndarray, c: MotionConstraints, fps: float) -> np.ndarray:
    """Held joints take their rotations; the corrections fade smoothly into the free frames."""
    held = c.mask[:, :NUM_JOINTS].copy()
    target = _target_matrices(c)
    if c.heading:  # the root's facing is held where only the root position is
        only_path = c.mask[:, ROOT_COLUMN] & ~c.mask[:, 0]
        turn = _yaw(target[only_path, 0]) - _yaw(local[only_path, 0])
        target[only_path, 0] = _rot_y(turn) @ local[only_path, 0]
        held[:, 0] |= only_path
    out = local.copy()
    for j in np.flatnonzero(held.any(0)):
        frames = np.flatnonzero(held[:, j])
        offset = target[frames, j] @ np.swapaxes(local[frames, j], -1, -2)
        vecs = np.zeros((len(local), 3))
        vecs[frames] = _continuous(_matrix_to_rotvec(offset))
        spread = _spread(vecs, held[:, j], fps, BLEND_SECONDS, decaying=True)
        out[:, j] = _rotvec_to_matrix(spread) @ local[:, j]
        out[frames, j] = target[frames, j]
    return out


def apply_constraints(motion: Motion, c: MotionConstraints, place: bool = True) -> Motion:
    """Steps 1-4 of the module doc on one motion (same length as the constraints)."""
    if motion.num_frames != c.num_frames:
        raise ValueError(f"motion has {motion.num_frames} frames, constraints {c.num_frames}")
    local = motion.matrices().astype(np.float64)
    trans = motion.trans.astype(np.float64).copy()
    if place:
        yaw, shift = rigid_placement(local, trans, c)
        _place(local, trans, yaw, shift)
    new_trans = warp_path(trans, c, motion.fps)
    if place and len(c.frames_with_root()) >= 2:
        turn = heading_turn(trans, new_trans, motion.fps)
        local[:, 0] = _rot_y(turn) @ local[:, 0]
    local = warp_rotations(local, c, motion.fps)
    return Motion.from_matrices(local, new_trans, motion.fps, motion.texts, motion.betas)


def finish_motion(
    motion: Motion, c: MotionConstraints | None, clean: Callable[[Motion], Motion] | None
) -> Motion:
    """Constraints met, then `clean` (e.g. `clean_motion`), then the held values restored smoothly."""
    if c is None or not c.any:
        return clean(motion) if clean else motion
    out = apply_constraints(motion, c)
    if clean is None:
        return out
    return _repin(apply_constraints(clean(out), c, place=False), c)


def _repin(motion: Motion, c: MotionConstraints) -> Motion:
    """Planted feet pinned again by leg IK after the path was restored (a path a little faster than
    the steps would make them slide); held leg rotations stay exactly as held."""
    pinned = lock_feet(motion)
    local = pinned.matrices()
    held = c.mask[:, :NUM_JOINTS]
    local[held] = _target_matrices(c)[held]
    return Motion.from_matrices(local, motion.trans, motion.fps, motion.texts, motion.betas)


# --- measuring and choosing -------------------------------------------------------------------------


def _descendants() -> list[list[int]]:
    kids: list[list[int]] = [[j] for j in range(NUM_JOINTS)]
    for j in range(NUM_JOINTS - 1, 0, -1):
        kids[PARENTS[j]] = kids[PARENTS[j]] + kids[j]
    return kids


_DESCENDANTS = _descendants()


def constraint_error_mm(motion: Motion, c: MotionConstraints, offsets: np.ndarray | None = None) -> float:
    """Mean joint position error (mm) at constrained frames: the motion against itself with the held
    rotations and root put in, over the joints those holds move (every joint for a held root)."""
    frames = np.flatnonzero(c.mask.any(1))
    if not len(frames):
        return 0.0
    local = motion.matrices()[frames].astype(np.float64)
    trans = motion.trans[frames].astype(np.float64)
    want_local, want_trans = local.copy(), trans.copy()
    mask = c.mask[frames]
    target = _target_matrices(c)[frames]
    want_local[mask[:, :NUM_JOINTS]] = target[mask[:, :NUM_JOINTS]]
    cols = [0, 1, 2] if c.trans_y else [0, 2]
    root = mask[:, ROOT_COLUMN]
    want_trans[np.ix_(root, cols)] = c.trans[frames][np.ix_(root, cols)]
    got = forward_kinematics(local, trans, offsets)[0]
    want = forward_kinematics(want_local, want_trans, offsets)[0]
    err = np.linalg.norm(got - want, axis=-1)  # (F, 24)
    moved = np.zeros_like(err, dtype=bool)
    for j in range(NUM_JOINTS):
        moved[np.ix_(mask[:, j], _DESCENDANTS[j])] = True
    moved[root] = True
    return float(1000 * err[moved].mean())


def candidate_cost(
    rot6d: torch.Tensor, trans: torch.Tensor, c: MotionConstraints, start: int, fps: float, out_fps: float
) -> torch.Tensor:
    """(N,) mismatch of N decoded candidates (N, F, 24, 6), (N, F, 3) at `fps`, whose first frame is
    output frame `start` (constraints at `out_fps`), with the constraints: held joint rotations (the
    root by its tilt only), held pelvis heights and the held path's speed; free of heading and place."""
    n, frames = rot6d.shape[:2]
    cost = torch.zeros(n, dtype=rot6d.dtype, device=rot6d.device)
    out_frames = np.flatnonzero(c.mask.any(1))
    model = np.round((out_frames - start) * fps / out_fps).astype(int)
    keep = (model >= 0) & (model < frames)
    out_frames, model = out_frames[keep], model[keep]
    if not len(out_frames):
        return cost
    mask = torch.from_numpy(c.mask[out_frames]).to(rot6d.device)
    target = torch.from_numpy(_target_matrices(c)[out_frames]).to(rot6d)
    got = R.rotation_6d_to_matrix(rot6d[:, model])  # (N, K, 24, 3, 3)
    joints = mask[:, 1:NUM_JOINTS].to(rot6d.dtype)
    if joints.sum() > 0:
        d = ((got[:, :, 1:] - target[None, :, 1:]) ** 2).sum((-1, -2))  # (N, K, 23)
        cost = cost + (d * joints).sum((1, 2)) / joints.sum()
    tilt = mask[:, 0].to(rot6d.dtype)
    if tilt.sum() > 0:
        d = ((got[:, :, 0, 1, :] - target[None, :, 0, 1, :]) ** 2).sum(-1)
        cost = cost + (d * tilt).sum(1) / tilt.sum()
    root = c.mask[out_frames, ROOT_COLUMN]
    if root.any():
        held_t = torch.from_numpy(c.trans[out_frames[root]]).to(trans)
        got_t = trans[:, model[root]]
        if c.trans_y:
            cost = cost + 10 * ((got_t[..., 1] - held_t[:, 1]) ** 2).mean(1)
        if root.sum() >= 2:  # the path's speed between successive keys (m/s), squared difference
            dt = torch.from_numpy(np.diff(out_frames[root]) / out_fps).to(trans)
            step_t = (held_t[1:, [0, 2]] - held_t[:-1, [0, 2]]).norm(dim=-1) / dt
            step_g = (got_t[:, 1:][..., [0, 2]] - got_t[:, :-1][..., [0, 2]]).norm(dim=-1) / dt
            cost = cost + 0.25 * ((step_g - step_t) ** 2).mean(1)
    return cost


def boundary_frames(c: MotionConstraints) -> np.ndarray:
    """Free frames next to a held one (where a constrained motion hands over to a generated one)."""
    held = c.mask.any(1)
    near = np.zeros_like(held)
    near[1:] |= held[:-1]
    near[:-1] |= held[1:]
    return np.flatnonzero(near & ~held)


def speed_spike(
    motion: Motion, frames: np.ndarray, radius: int = 2, offsets: np.ndarray | None = None
) -> float:
    """Fastest joint speed within `radius` frames of `frames`, over the motion's own 95th percentile
    of per-frame fastest joint speeds (1 or less: nothing there moves faster than the motion does)."""
    pos = motion.joint_positions(offsets)
    step = np.linalg.norm(np.diff(pos, axis=0), axis=-1).max(1) * motion.fps  # (T-1,) m/s
    if not len(frames) or not len(step):
        return 0.0
    near = np.zeros(len(step), dtype=bool)
    for f in frames:
        near[max(0, f - radius - 1) : min(len(step), f + radius + 1)] = True
    return float(step[near].max() / max(np.percentile(step, 95), 1e-6))
