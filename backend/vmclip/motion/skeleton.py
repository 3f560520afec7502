"""The SMPL 24-joint skeleton every motion in the project uses (see `vmclip_protocol.skeleton`, the
one copy shared with the wire format and the Blender add-on), and the project's motion frame rate.

Conventions: Y up, metres, the body faces +Z and its left is +X (SMPL's); the rest pose is a T-pose.
"""

from __future__ import annotations

from vmclip_protocol.skeleton import (
    JOINT_INDEX,
    JOINT_NAMES,
    MIRROR_INDEX,
    NUM_JOINTS,
    PARENTS,
    REST_OFFSETS,
    SOLE_BELOW_FOOT_JOINT,
    pelvis_height,
    rest_positions,
)

FPS = 30.0

__all__ = [
    "FPS",
    "JOINT_INDEX",
    "JOINT_NAMES",
    "MIRROR_INDEX",
    "NUM_JOINTS",
    "PARENTS",
    "REST_OFFSETS",
    "SOLE_BELOW_FOOT_JOINT",
    "pelvis_height",
    "rest_positions",
]
