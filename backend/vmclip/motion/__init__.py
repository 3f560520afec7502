"""Motion stage: the SMPL-24 motion format, rotations, kinematics, mocap import and export.

Public API: `Motion`, `load_npz`, `forward_kinematics`, the skeleton constants, `load_mocap`,
`write_bvh` / `read_smpl_bvh`, `write_preview`, and the training data `build_dataset` / `load_split`.
"""

import importlib

# Loaded on first use (PEP 562): importing a submodule such as `vmclip.motion.cli` runs this file, and
# the CLI's parser must not pay for torch (`vmclip --help` took 3.7 s).
_WHERE = {
    "read_smpl_bvh": "bvh_write",
    "write_bvh": "bvh_write",
    "build_dataset": "dataset",
    "load_split": "dataset",
    "Motion": "format",
    "load_npz": "format",
    "mirror_text": "format",
    "forward_kinematics": "kinematics",
    "global_to_local": "kinematics",
    "load_mocap": "mocap",
    "write_preview": "preview",
    "FPS": "skeleton",
    "JOINT_INDEX": "skeleton",
    "JOINT_NAMES": "skeleton",
    "NUM_JOINTS": "skeleton",
    "PARENTS": "skeleton",
    "REST_OFFSETS": "skeleton",
}


def __getattr__(name: str) -> object:
    if name not in _WHERE:
        raise AttributeError(f"module 'vmclip.motion' has no attribute {name!r}")
    return getattr(importlib.import_module(f"vmclip.motion.{_WHERE[name]}"), name)


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
