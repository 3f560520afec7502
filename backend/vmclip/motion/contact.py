"""Foot contacts and foot locking on the SMPL-24 skeleton.

`foot_contacts` finds the frames where a foot rests on the floor (low and slow). `lock_feet` pins
each planted foot: each run of contact frames of one foot pins it where it stands on average during
the run (at the heel, or at the toes when mostly they touch); hip and knee are turned by two-bone
inverse kinematics (the knee stays in its own bending plane) so the ankle reaches the pinned spot, and
the ankle keeps its global orientation, so the sole does not tilt. Pins fade in and out over
LOCK_BLEND_SECONDS. Used by the text-to-motion clean-up and by the renderer when it shortens a walk.
"""

from __future__ import annotations

import numpy as np
from vmclip_protocol.contact import (
    ALL_FEET,
    CONTACT_HEIGHT,
    CONTACT_SPEED,
    FOOT_JOINTS,
    LEGS,
    LOCK_BLEND_SECONDS,
    blend_frames,
    foot_contacts,
    joint_heights,
    pin_offsets,
    two_bone,
)

from vmclip.motion.format import Motion
from vmclip.motion.kinematics import forward_kinematics

__all__ = [
    "ALL_FEET",
    "CONTACT_HEIGHT",
    "CONTACT_SPEED",
    "FOOT_JOINTS",
    "LEGS",
    "LOCK_BLEND_SECONDS",
    "foot_contacts",
    "joint_heights",
    "lock_feet",
    "pin_feet",
]


def lock_feet(motion: Motion, offsets: np.ndarray | None = None, contact: np.ndarray | None = None) -> Motion:
    """Pin each planted foot where it stands (two-bone IK in hip and knee; see the module doc).
    `contact` (T, 4) overrides the contacts found in `motion` itself (`foot_contacts` order)."""
    if motion.num_frames < 3:
        return motion
    local = motion.matrices().astype(np.float64)
    trans = motion.trans.astype(np.float64)
    pos, glob = forward_kinematics(local, trans, offsets)
    if contact is None:
        contact = foot_contacts(pos, motion.fps)  # (T, 4): left ankle, left foot, right ankle, right foot
    elif contact.shape != (motion.num_frames, len(ALL_FEET)):
        raise ValueError(f"contact must be ({motion.num_frames}, {len(ALL_FEET)}), not {contact.shape}")
    out = pin_feet(local, pos, glob, contact, motion.fps)
    return Motion.from_matrices(out, trans, motion.fps, motion.texts, motion.betas)


def pin_feet(
    local: np.ndarray, pos: np.ndarray, glob: np.ndarray, contact: np.ndarray, fps: float
) -> np.ndarray:
    """`lock_feet` on arrays: local rotations (T, 24, 3, 3) with their forward kinematics (joint
    positions, global rotations) and contacts (T, 4) -> new local rotations (legs changed only)."""
    blend = blend_frames(fps)
    out = local.copy()
    for s, (hip, knee, ankle, foot) in enumerate(LEGS.values()):
        move, _ = pin_offsets(
            pos[:, ankle, ::2], pos[:, foot, ::2], contact[:, 2 * s], contact[:, 2 * s + 1], blend
        )
        frames = np.flatnonzero(np.abs(move).sum(1) > 1e-6)
        if not len(frames):
            continue
        target = pos[frames, ankle].copy()
        target[:, [0, 2]] += move[frames]
        fallback = glob[frames, 0, :, 2]  # a straight leg bends forward (the pelvis's facing)
        turn_hip, turn_knee = two_bone(
            pos[frames, hip], pos[frames, knee], pos[frames, ankle], target, fallback
        )
        hip_glob = turn_hip @ glob[frames, hip]
        knee_glob = turn_knee @ glob[frames, knee]
        parent = glob[frames, 0]  # the hips hang from the pelvis
        out[frames, hip] = np.swapaxes(parent, -1, -2) @ hip_glob
        out[frames, knee] = np.swapaxes(hip_glob, -1, -2) @ knee_glob
        out[frames, ankle] = np.swapaxes(knee_glob, -1, -2) @ glob[frames, ankle]
    return out
