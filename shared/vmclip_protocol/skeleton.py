"""The SMPL 24-joint skeleton every motion in the project uses: names, parents and rest offsets.

The one copy: the backend (`vmclip.motion.skeleton`), the wire format (`JOINT_NAMES`) and the Blender
add-on (which vendors this package) import it. numpy only, no pyzmq, so the add-on's armature code
loads it where pyzmq is missing.

Conventions: Y up, metres, the body faces +Z and its left is +X (SMPL's). The rest pose is a T-pose:
zero local rotations give arms straight out along +-X. Rest offsets below are our own
anthropometric estimates for a 1.72 m adult (not SMPL's template, which is licensed); the shape of a
particular person comes from the body model, not from these numbers.
"""

from __future__ import annotations

import numpy as np

JOINT_NAMES: tuple[str, ...] = (
    "pelvis",
    "left_hip",
    "right_hip",
    "spine1",
    "left_knee",
    "right_knee",
    "spine2",
    "left_ankle",
    "right_ankle",
    "spine3",
    "left_foot",
    "right_foot",
    "neck",
    "left_collar",
    "right_collar",
    "head",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hand",
    "right_hand",
)
NUM_JOINTS = len(JOINT_NAMES)

# Parent of each joint (-1: the root); a parent always comes before its children.
PARENTS: tuple[int, ...] = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)
JOINT_INDEX: dict[str, int] = {name: i for i, name in enumerate(JOINT_NAMES)}

# Left/right partner of every joint (itself for the centre line): used for mirroring.
MIRROR_INDEX: tuple[int, ...] = tuple(
    JOINT_INDEX[n.replace("left_", "#").replace("right_", "left_").replace("#", "right_")]
    for n in JOINT_NAMES
)

# Offset of each joint from its parent in the rest T-pose (metres). Left side given; right mirrored in x.
_LEFT_AND_CENTRE = {
    "pelvis": (0.0, 0.0, 0.0),
    "left_hip": (0.065, -0.085, -0.010),
    "spine1": (0.0, 0.110, -0.015),
    "left_knee": (0.035, -0.385, 0.005),
    "spine2": (0.0, 0.135, 0.010),
    "left_ankle": (-0.010, -0.405, -0.040),
    "spine3": (0.0, 0.055, 0.005),
    "left_foot": (0.025, -0.060, 0.125),
    "neck": (0.0, 0.215, -0.030),
    "left_collar": (0.075, 0.115, -0.010),
    "head": (0.0, 0.085, 0.050),
    "left_shoulder": (0.120, 0.040, -0.010),
    "left_elbow": (0.255, -0.010, -0.020),
    "left_wrist": (0.250, 0.005, 0.000),
    "left_hand": (0.085, -0.010, -0.010),
}

# The foot/ankle joints sit above the sole; this is how far the sole is below the lowest foot joint.
SOLE_BELOW_FOOT_JOINT = 0.02


def _rest_offsets() -> np.ndarray:
    out = np.zeros((NUM_JOINTS, 3))
    for i, name in enumerate(JOINT_NAMES):
        if name.startswith("right_"):
            x, y, z = _LEFT_AND_CENTRE["left_" + name[len("right_") :]]
            out[i] = (-x, y, z)
        else:
            out[i] = _LEFT_AND_CENTRE[name]
    return out


REST_OFFSETS: np.ndarray = _rest_offsets()
REST_OFFSETS.setflags(write=False)


def rest_positions(offsets: np.ndarray | None = None, parents: tuple[int, ...] = PARENTS) -> np.ndarray:
    """Global joint positions of the rest pose (root at the origin)."""
    offsets = REST_OFFSETS if offsets is None else np.asarray(offsets, dtype=np.float64)
    pos = np.zeros_like(offsets, dtype=np.float64)
    for j in range(1, len(parents)):
        pos[j] = pos[parents[j]] + offsets[j]
    return pos


def pelvis_height(offsets: np.ndarray | None = None) -> float:
    """Height of the pelvis above the floor when standing in the rest pose (soles at y=0)."""
    pos = rest_positions(offsets)
    return float(-pos[[JOINT_INDEX["left_foot"], JOINT_INDEX["left_ankle"]], 1].min() + SOLE_BELOW_FOOT_JOINT)
