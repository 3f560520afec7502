"""Forward kinematics on the SMPL-24 skeleton (torch, differentiable; numpy in, numpy out)."""

from __future__ import annotations

import numpy as np
import torch

from vmclip.motion.skeleton import JOINT_INDEX, NUM_JOINTS, PARENTS, REST_OFFSETS

_LEGS = [[JOINT_INDEX[f"{side}_{j}"] for j in ("hip", "knee", "ankle")] for side in ("left", "right")]


def forward_kinematics(
    local_rot: torch.Tensor | np.ndarray,
    trans: torch.Tensor | np.ndarray,
    offsets: torch.Tensor | np.ndarray | None = None,
    parents: tuple[int, ...] = PARENTS,
) -> tuple:
    """Local rotation matrices (..., J, 3, 3) and root translation (..., 3) to global joint positions
    (..., J, 3) and global rotations (..., J, 3, 3). `offsets` (J, 3) or (..., J, 3) default to ours."""
    as_numpy = isinstance(local_rot, np.ndarray)
    rot = torch.as_tensor(local_rot)
    dtype = rot.dtype if rot.is_floating_point() else torch.float64
    rot = rot.to(dtype)
    tr = torch.as_tensor(trans, dtype=dtype, device=rot.device)
    off = np.array(REST_OFFSETS) if offsets is None else offsets
    off = torch.as_tensor(off, dtype=dtype, device=rot.device)
    num = rot.shape[-3]
    glob_rot: list[torch.Tensor] = [rot[..., 0, :, :]]
    glob_pos: list[torch.Tensor] = [tr]
    for j in range(1, num):
        p = parents[j]
        glob_rot.append(glob_rot[p] @ rot[..., j, :, :])
        glob_pos.append(glob_pos[p] + (glob_rot[p] @ off[..., j, :, None])[..., 0])
    pos = torch.stack(glob_pos, dim=-2)
    grot = torch.stack(glob_rot, dim=-3)
    if as_numpy:
        return pos.numpy(), grot.numpy()
    return pos, grot


def global_to_local(global_rot: np.ndarray, parents: tuple[int, ...] = PARENTS) -> np.ndarray:
    """Global rotation matrices (..., J, 3, 3) to local ones (inverse of the chain in FK)."""
    local = np.empty_like(global_rot)
    local[..., 0, :, :] = global_rot[..., 0, :, :]
    for j in range(1, global_rot.shape[-3]):
        parent = global_rot[..., parents[j], :, :]
        local[..., j, :, :] = np.swapaxes(parent, -1, -2) @ global_rot[..., j, :, :]
    return local


assert len(PARENTS) == NUM_JOINTS


def leg_length(joints: np.ndarray) -> float:
    """Hip-to-ankle chain length of a (24, 3) skeleton (rest or posed), the mean of both legs: the
    ratio of two skeletons' leg lengths scales a motion's travel from one to the other."""
    joints = np.asarray(joints, dtype=np.float64)
    return float(
        np.mean(
            [
                np.linalg.norm(joints[k] - joints[h]) + np.linalg.norm(joints[a] - joints[k])
                for h, k, a in _LEGS
            ]
        )
    )


def motion_leg_length() -> float:
    """Leg length of the motion format's rest skeleton."""
    return float(
        np.linalg.norm(REST_OFFSETS[JOINT_INDEX["left_knee"]])
        + np.linalg.norm(REST_OFFSETS[JOINT_INDEX["left_ankle"]])
    )
