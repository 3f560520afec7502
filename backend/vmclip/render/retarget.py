"""Retarget a motion onto the photographed person's body and place it in the photo's world.

The motion's local joint rotations are applied unchanged to the person's own rest skeleton (the
body model's joints for the fitted shape). The root is re-oriented so that the first frame faces the
way the person faces in the photo (a turn about the vertical only, so a tilt of the fit is not
copied into every frame), its travel is scaled by the ratio of leg lengths, and every frame is set on
the photo's ground line (the soles of the fitted body) at the height the motion itself is above its
floor (jumps), scaled likewise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vmclip.geometry import leg_length, motion_leg_length
from vmclip.motion import Motion
from vmclip.motion.contact import foot_contacts, joint_heights, lock_feet


def to_numpy(x) -> np.ndarray:
    """Tensor or array -> float64 numpy (body models may hand back torch tensors)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def yaw_matrix(rot: np.ndarray) -> np.ndarray:
    """The rotation about +Y that turns +Z to the horizontal part of `rot`'s forward (+Z) axis."""
    fwd = rot[..., :, 2]
    angle = np.arctan2(fwd[..., 0], fwd[..., 2])
    c, s = np.cos(angle), np.sin(angle)
    out = np.zeros(angle.shape + (3, 3))
    out[..., 0, 0], out[..., 0, 2], out[..., 1, 1], out[..., 2, 0], out[..., 2, 2] = c, s, 1.0, -s, c
    return out


@dataclass
class PlacedMotion:
    local_rot: np.ndarray  # (T, 24, 3, 3) on the person's skeleton, root in the photo's world
    trans: np.ndarray  # (T, 3) pelvis positions in the photo's world
    vertices: np.ndarray  # (T, V, 3) posed body
    ground_y: float  # height of the photo's ground line (soles of the fitted body)
    travel_scale: float = 1.0  # share of the motion's horizontal travel kept (see scale_travel)


def scale_travel(motion: Motion, factor: float) -> Motion:
    """The motion with its horizontal travel (from frame 0) scaled by `factor`, planted feet pinned
    again: shortening the path alone would leave the steps as long as before, so the feet would
    slide backwards (a moonwalk); pinned, the same leg motion reads as shorter steps."""
    # Contacts come from the original: in the shortened one the planted feet slide, too fast to count.
    # Heights from the motion's own floor (a motion file may stand at any height).
    pos = motion.joint_positions().astype(np.float64)
    pos[..., 1] -= np.percentile(joint_heights(pos).min(axis=1), 2)
    contact = foot_contacts(pos, motion.fps)
    trans = motion.trans.astype(np.float64).copy()
    start = trans[:1].copy()
    trans[:, [0, 2]] = start[:, [0, 2]] + factor * (trans[:, [0, 2]] - start[:, [0, 2]])
    return lock_feet(Motion(motion.rot6d, trans, motion.fps, motion.texts, motion.betas), contact=contact)


def place_motion(
    body,
    shape,
    motion: Motion,
    source_pose: np.ndarray,
    source_trans: np.ndarray,
    source_vertices: np.ndarray | None = None,
    ground_y: float | None = None,
) -> PlacedMotion:
    """Pose `body` (a BodyModel) with `motion` so that frame 0 starts where and facing the way the
    person stands in the photo (fitted `source_pose` (24,3,3) local, `source_trans` (3,) pelvis),
    on the floor at height `ground_y` (default: the fitted soles)."""
    mats = motion.matrices()
    source_pose = np.asarray(source_pose, dtype=np.float64)
    source_trans = np.asarray(source_trans, dtype=np.float64)
    if source_vertices is None:
        source_vertices = to_numpy(body.pose_vertices(shape, source_pose[None], source_trans[None]))[0]
    ground_y = float(source_vertices[:, 1].min()) if ground_y is None else float(ground_y)

    align = yaw_matrix(source_pose[0]) @ yaw_matrix(mats[0, 0]).T
    local = mats.copy()
    local[:, 0] = align @ mats[:, 0]
    scale = leg_length(to_numpy(body.rest_joints(shape))) / motion_leg_length()
    travel = (motion.trans.astype(np.float64) - motion.trans[:1].astype(np.float64)) * scale
    trans = source_trans + travel @ align.T
    verts = to_numpy(body.pose_vertices(shape, local, trans))
    # Height per frame from the motion's own contact with its floor, not from its root height (which
    # drifts in mocap and differs between skeletons): the motion's lowest joint above its usual
    # contact level (a low percentile over the clip), scaled to the person, is where the person's
    # lowest point goes above the photo's ground line. Feet stay on the floor; jumps stay jumps.
    lowest = motion.joint_positions()[..., 1].min(axis=1)
    contact = float(np.percentile(lowest, 10))
    above = np.clip(lowest - contact, 0.0, None) * scale
    lift = ground_y + above - verts[..., 1].min(axis=1)
    verts[..., 1] += lift[:, None]
    trans[:, 1] += lift
    return PlacedMotion(local_rot=local, trans=trans, vertices=verts.astype(np.float32), ground_y=ground_y)
