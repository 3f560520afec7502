"""Constraints on a generated motion: the agreed hand-off between an editor and the generator.

Frames and joints that an artist keyed (or a whole range to keep) are given per output frame; the
generator must meet them and make the motion around them agree (in-betweening, regenerating a range,
following a root path). The same three arrays travel in `keys.npz` files, on the wire (frames
`constraint_poses`, `constraint_trans`, `constraint_mask`) and from the Blender add-on.

* `poses` (T, 24, 3) float32: local joint rotations, axis-angle, SMPL-24 order (root = world orientation).
* `trans` (T, 3) float32: pelvis position, metres, Y up.
* `mask` (T, 25) bool: column j < 24 holds joint j's rotation at that frame; column 24 holds the root
  position's ground path (x, z); `trans_y` and `heading` below widen what column 24 holds.

T is the output length (seconds x fps; 30 fps unless a request names another rate). A (T,) mask
means whole frames (every joint and the root).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vmclip.errors import InputError
from vmclip.motion.skeleton import NUM_JOINTS

ROOT_COLUMN = NUM_JOINTS  # mask column of the root's ground path
MASK_COLUMNS = NUM_JOINTS + 1
MAX_ROT_RADIANS = 4 * np.pi  # axis-angle larger than this is not a rotation anyone keyed
MAX_TRANS_METRES = 1000.0
# A held root path faster than this over the ground cannot be met by a person: sprinters peak at
# 10-12 m/s for a second or two (Bolt 12.4 m/s); a path any faster is a mistake in its units or keys.
MAX_PATH_SPEED = 10.0


@dataclass(frozen=True)
class MotionConstraints:
    poses: np.ndarray  # (T, 24, 3) float32 axis-angle
    trans: np.ndarray  # (T, 3) float32 metres
    mask: np.ndarray  # (T, 25) bool
    trans_y: bool = True  # a masked root also holds the pelvis height
    heading: bool = False  # a masked root also holds the facing (from poses[:, 0]) where joint 0 is unmasked

    @property
    def num_frames(self) -> int:
        return int(self.mask.shape[0])

    @property
    def any(self) -> bool:
        return bool(self.mask.any())

    def frames_with_pose(self) -> np.ndarray:
        """Indices of frames where any joint rotation is held."""
        return np.flatnonzero(self.mask[:, :NUM_JOINTS].any(axis=1))

    def frames_with_root(self) -> np.ndarray:
        return np.flatnonzero(self.mask[:, ROOT_COLUMN])

    @classmethod
    def create(
        cls,
        poses: object,
        trans: object,
        mask: object,
        num_frames: int | None = None,
        where: str = "constraints",
        **flags: bool,
    ) -> MotionConstraints:
        """Validate and normalise; every problem is an `InputError` naming `where` and the field."""
        mask_arr = _array(mask, where, "mask")
        if mask_arr.dtype != np.bool_:
            if mask_arr.dtype.kind not in "biu" or not np.isin(mask_arr, (0, 1)).all():
                raise InputError(f"{where}: mask must be boolean (or 0/1), not {mask_arr.dtype}")
            mask_arr = mask_arr.astype(bool)
        if mask_arr.ndim == 1:
            mask_arr = np.repeat(mask_arr[:, None], MASK_COLUMNS, axis=1)
        if mask_arr.ndim != 2 or mask_arr.shape[1] != MASK_COLUMNS:
            raise InputError(
                f"{where}: mask must have shape (T,) or (T, {MASK_COLUMNS}), not {mask_arr.shape}"
            )
        t = mask_arr.shape[0]
        if num_frames is not None and t != num_frames:
            raise InputError(
                f"{where}: mask covers {t} frames but the motion has {num_frames} "
                f"(seconds x frames per second); give one row per output frame"
            )
        poses_arr = _float_array(poses, where, "poses")
        if poses_arr.shape == (t, NUM_JOINTS * 3):
            poses_arr = poses_arr.reshape(t, NUM_JOINTS, 3)
        if poses_arr.shape != (t, NUM_JOINTS, 3):
            raise InputError(f"{where}: poses must have shape ({t}, {NUM_JOINTS}, 3), not {poses_arr.shape}")
        trans_arr = _float_array(trans, where, "trans")
        if trans_arr.shape != (t, 3):
            raise InputError(f"{where}: trans must have shape ({t}, 3), not {trans_arr.shape}")
        held_rot = mask_arr[:, :NUM_JOINTS]
        if (
            not np.isfinite(poses_arr[held_rot]).all()
            or not np.isfinite(trans_arr[mask_arr[:, ROOT_COLUMN]]).all()
        ):
            raise InputError(f"{where}: held values contain NaN or infinity")
        if (np.linalg.norm(poses_arr[held_rot], axis=-1) > MAX_ROT_RADIANS).any():
            raise InputError(
                f"{where}: a held rotation is larger than {MAX_ROT_RADIANS:.1f} rad; poses are axis-angle"
            )
        if (np.abs(trans_arr[mask_arr[:, ROOT_COLUMN]]) > MAX_TRANS_METRES).any():
            raise InputError(
                f"{where}: a held root position is over {MAX_TRANS_METRES:.0f} m away; trans is in metres"
            )
        # Values at frames that hold nothing are never read: zero them so NaN padding is harmless.
        poses_arr = np.where(held_rot[..., None], poses_arr, 0.0).astype(np.float32)
        trans_arr = np.where(mask_arr[:, ROOT_COLUMN, None], trans_arr, 0.0).astype(np.float32)
        return cls(poses_arr, trans_arr, mask_arr, **flags)

    @classmethod
    def load_npz(cls, path: str | Path, num_frames: int | None = None) -> MotionConstraints:
        """Read `keys.npz` (`poses`, `trans`, `mask`); bad files are one-line `InputError`s."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                missing = [k for k in ("poses", "trans", "mask") if k not in data.files]
                if missing:
                    raise InputError(
                        f"{path}: constraints file lacks {', '.join(missing)} "
                        "(needs poses (T,24,3), trans (T,3), mask (T,) or (T,25))"
                    )
                arrays = {k: data[k] for k in ("poses", "trans", "mask")}
        except InputError:
            raise
        except (OSError, ValueError, EOFError) as exc:
            raise InputError(f"{path}: not a readable .npz file ({type(exc).__name__})") from None
        return cls.create(arrays["poses"], arrays["trans"], arrays["mask"], num_frames, where=str(path))

    def check_reachable(self, fps: float, where: str = "constraints") -> None:
        """`InputError` when the held root path is faster than a person can run (MAX_PATH_SPEED)
        between any two successive held root frames at `fps` frames per second."""
        frames = self.frames_with_root()
        if len(frames) < 2:
            return
        step = np.linalg.norm(np.diff(self.trans[frames][:, [0, 2]].astype(np.float64), axis=0), axis=-1)
        speed = step * fps / np.diff(frames)
        worst = int(np.argmax(speed))
        if speed[worst] > MAX_PATH_SPEED:
            raise InputError(
                f"{where}: the root path moves {step[worst]:.2f} m between frames {frames[worst]} and "
                f"{frames[worst + 1]} ({speed[worst]:.1f} m/s), faster than a sprint (at most "
                f"{MAX_PATH_SPEED:g} m/s at {fps:g} fps); check the path's units and frames"
            )

    def save_npz(self, path: str | Path) -> None:
        np.savez(path, poses=self.poses, trans=self.trans, mask=self.mask)


def _array(value: object, where: str, name: str) -> np.ndarray:
    try:
        arr = np.asarray(value)
    except Exception:
        raise InputError(f"{where}: {name} is not an array") from None
    if arr.dtype.kind not in "biuf":
        raise InputError(f"{where}: {name} must be numeric, not {arr.dtype}")
    return arr


def _float_array(value: object, where: str, name: str) -> np.ndarray:
    return _array(value, where, name).astype(np.float64)
