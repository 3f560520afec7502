"""Motion stage: the SMPL-24 motion format, rotations, kinematics, mocap import and export.

Public API: `Motion`, `load_npz`, `forward_kinematics`, the skeleton constants, `load_mocap`,
`write_bvh` / `read_smpl_bvh`, `write_preview`, and the training data `build_dataset` / `load_split`.
"""

from vmclip.motion.bvh_write import read_smpl_bvh, write_bvh
from vmclip.motion.dataset import build_dataset, load_split
from vmclip.motion.format import Motion, load_npz, mirror_text
from vmclip.motion.kinematics import forward_kinematics, global_to_local
from vmclip.motion.mocap import load_mocap
from vmclip.motion.preview import write_preview
from vmclip.motion.skeleton import FPS, JOINT_INDEX, JOINT_NAMES, NUM_JOINTS, PARENTS, REST_OFFSETS

__all__ = [
    "FPS",
    "JOINT_INDEX",
    "JOINT_NAMES",
    "NUM_JOINTS",
    "PARENTS",
    "REST_OFFSETS",
    "Motion",
    "forward_kinematics",
    "global_to_local",
    "load_npz",
    "mirror_text",
    "write_bvh",
    "write_preview",
    "load_mocap",
    "read_smpl_bvh",
    "build_dataset",
    "load_split",
]
