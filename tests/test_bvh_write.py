"""BVH export: the file re-opens in bvhio, in Blender's importer and in our own reader with the same
rotations (< 1e-4 rad) and positions."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation as SciRot
from vmclip.errors import InputError
from vmclip.motion import JOINT_NAMES, REST_OFFSETS, Motion, forward_kinematics, global_to_local
from vmclip.motion import rotations as R
from vmclip.motion.bvh_write import read_smpl_bvh, smpl_bvh_joint_names, write_bvh


def _angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle (rad) between rotation matrices, precise for small angles (unlike arccos of the trace)."""
    rel = np.swapaxes(a, -1, -2) @ b
    return SciRot.from_matrix(rel.reshape(-1, 3, 3)).magnitude().reshape(rel.shape[:-2])


def _random_motion(seed: int, frames: int = 24, fps: float = 30.0) -> Motion:
    rng = np.random.default_rng(seed)
    # Large angles on purpose, including some near the Euler singularity of the ZXY order (X = +-90 deg).
    aa = rng.normal(size=(frames, 24, 3)) * 1.2
    eul = np.zeros((3, 24, 3))
    eul[:, :, 1] = np.radians([90.0, -90.0, 89.99])[:, None]
    eul[:, :, 0] = 0.7
    mats = np.concatenate([R.axis_angle_to_matrix(aa), R.euler_to_matrix(eul, "ZXY")])
    trans = rng.normal(size=(len(mats), 3)) + [0, 0.9, 0]
    return Motion.from_matrices(mats, trans, fps, ["a test motion"])


def _read_with_bvhio(path: Path) -> tuple[np.ndarray, np.ndarray, float]:
    import bvhio

    bvh = bvhio.readAsBvh(str(path))
    mats = np.zeros((bvh.FrameCount, 24, 3, 3))
    for joint, _, _ in bvh.Root.layout():
        j = JOINT_NAMES.index(joint.Name)
        q = np.array([[k.Rotation.w, k.Rotation.x, k.Rotation.y, k.Rotation.z] for k in joint.Keyframes])
        mats[:, j] = R.quaternion_to_matrix(q.astype(np.float64))
    trans = np.array([[k.Position.x, k.Position.y, k.Position.z] for k in bvh.Root.Keyframes])
    return mats, trans, 1.0 / bvh.FrameTime


def test_round_trip_bvhio(tmp_path: Path) -> None:
    motion = _random_motion(0)
    path = write_bvh(motion, tmp_path / "m.bvh")
    mats, trans, fps = _read_with_bvhio(path)
    assert mats.shape[0] == motion.num_frames
    assert _angle(motion.matrices(), mats).max() < 1e-4
    assert np.abs(trans - motion.trans).max() < 1e-5
    assert abs(fps - 30.0) < 1e-4


def test_centimetres_and_custom_offsets(tmp_path: Path) -> None:
    import bvhio

    motion = _random_motion(1, frames=3)
    offsets = np.array(REST_OFFSETS) * 1.1
    path = write_bvh(motion, tmp_path / "cm.bvh", offsets=offsets, units="cm")
    bvh = bvhio.readAsBvh(str(path))
    knee = next(j for j, _, _ in bvh.Root.layout() if j.Name == "left_knee")
    assert np.allclose([knee.Offset.x, knee.Offset.y, knee.Offset.z], offsets[4] * 100, atol=1e-4)
    root = np.array([[k.Position.x, k.Position.y, k.Position.z] for k in bvh.Root.Keyframes])
    assert np.allclose(root, motion.trans * 100, atol=1e-3)


@pytest.mark.parametrize("units", ["m", "cm"])
def test_round_trip_own_reader(tmp_path: Path, units: str) -> None:
    """Our reader of SMPL-24 BVH files (what `vmclip motion convert` uses for them) gives the rotations,
    translation and frame rate back."""
    motion = _random_motion(2)
    path = write_bvh(motion, tmp_path / "own.bvh", units=units)
    assert smpl_bvh_joint_names(path.read_text()) is not None
    back = read_smpl_bvh(path)
    assert back.num_frames == motion.num_frames and back.fps == 30.0
    assert _angle(motion.matrices(), back.matrices()).max() < 1e-4
    assert np.abs(back.trans - motion.trans).max() < 1e-5


def test_other_skeletons_are_not_taken_for_smpl(tmp_path: Path) -> None:
    text = write_bvh(_random_motion(6, frames=2), tmp_path / "a.bvh").read_text()
    # Same names, but the head hangs off spine3 instead of the neck: a different tree.
    lines = text.splitlines()
    assert smpl_bvh_joint_names(text.replace("JOINT left_knee", "JOINT knee_l")) is None
    assert smpl_bvh_joint_names("\n".join(lines[:3])) is None
    with pytest.raises(InputError, match="not an SMPL-24 BVH"):
        read_smpl_bvh(tmp_path / "x.bvh", data=text.replace("JOINT neck", "JOINT collar").encode())


_BLENDER_PROBE = r"""
import sys
import bpy
import numpy as np

path, out = sys.argv[1], sys.argv[2]
bpy.ops.wm.read_factory_settings(use_empty=True)
bpy.ops.import_anim.bvh(filepath=path, axis_forward="Y", axis_up="Z", rotate_mode="NATIVE")
arm = next(o for o in bpy.context.scene.objects if o.type == "ARMATURE")
first, last = (int(round(x)) for x in arm.animation_data.action.frame_range)
pos, rot = [], []
for frame in range(first, last + 1):
    bpy.context.scene.frame_set(frame)
    p, r = [], []
    for pb in arm.pose.bones:
        posed = arm.matrix_world @ pb.matrix
        rest = arm.matrix_world @ pb.bone.matrix_local
        p.append(list(posed.translation))
        r.append([list(row) for row in posed.to_3x3() @ rest.to_3x3().inverted()])
    pos.append(p)
    rot.append(r)
np.savez(out, names=np.array([pb.name for pb in arm.pose.bones]), pos=np.array(pos), rot=np.array(rot))
"""


def test_round_trip_blender(tmp_path: Path) -> None:
    """Blender's own BVH importer (bpy, in a subprocess so bpy stays out of the test process)."""
    pytest.importorskip("bpy", reason="bpy not installed")  # the import spec only; cheap
    motion = _random_motion(3, frames=12)
    path = write_bvh(motion, tmp_path / "blender.bvh")
    out = tmp_path / "probe.npz"
    proc = subprocess.run(
        [sys.executable, "-c", _BLENDER_PROBE, str(path), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = np.load(out)
    names = list(data["names"])
    assert sorted(names) == sorted(JOINT_NAMES)
    idx = [names.index(n) for n in JOINT_NAMES]
    pos, glob = forward_kinematics(motion.matrices(), motion.trans.astype(np.float64))
    assert data["pos"].shape[0] == motion.num_frames
    assert np.abs(data["pos"][:, idx] - pos).max() < 1e-4  # metres
    blender_glob = data["rot"][:, idx].astype(np.float64)
    assert _angle(glob, blender_glob).max() < 1e-4
    assert _angle(motion.matrices(), global_to_local(blender_glob)).max() < 1e-4


@pytest.mark.parametrize("name", ["m.txt", "m.npz", "m"])
def test_wrong_extension(tmp_path: Path, name: str) -> None:
    with pytest.raises(InputError, match=r"\.bvh"):
        write_bvh(_random_motion(4, frames=2), tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def test_unwritable_folder_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        write_bvh(_random_motion(5, frames=2), tmp_path / "missing" / "m.bvh")
    assert list(tmp_path.iterdir()) == []
