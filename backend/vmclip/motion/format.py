"""The motion format: the contract between every stage.

In memory a `Motion` holds local joint rotations as MotionCLIP's 6D (T, 24, 6), the pelvis
translation (T, 3) in metres (Y up), the frame rate (30 fps by default), the texts describing it and
optionally SMPL body shape `betas`. On disk it is an AMASS-style `.npz` (`poses` (T, 72) axis-angle,
`trans` (T, 3), `mocap_framerate`, optional `betas`, plus `text`), which SMPL tools read directly.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from vmclip.errors import InputError
from vmclip.fileio import atomic_output
from vmclip.motion import rotations as R
from vmclip.motion.kinematics import forward_kinematics
from vmclip.motion.skeleton import FPS, MIRROR_INDEX, NUM_JOINTS

_LEFT_RIGHT_WORDS = {
    "left": "right",
    "right": "left",
    "Left": "Right",
    "Right": "Left",
    "LEFT": "RIGHT",
    "RIGHT": "LEFT",
    "clockwise": "counterclockwise",
    "counterclockwise": "clockwise",
    "counter-clockwise": "clockwise",
}


@dataclass
class Motion:
    rot6d: np.ndarray  # (T, 24, 6) local rotations, 6D
    trans: np.ndarray  # (T, 3) pelvis position, metres, Y up
    fps: float = FPS
    texts: list[str] = field(default_factory=list)
    betas: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.rot6d = np.asarray(self.rot6d, dtype=np.float32)
        self.trans = np.asarray(self.trans, dtype=np.float32)
        validate_arrays(self.rot6d, self.trans, self.fps, where="motion", rot_kind="6d")

    # --- construction -------------------------------------------------------------------------
    @classmethod
    def from_axis_angle(
        cls,
        poses: np.ndarray,
        trans: np.ndarray,
        fps: float = FPS,
        texts: list[str] | None = None,
        betas: np.ndarray | None = None,
    ) -> Motion:
        poses = np.asarray(poses, dtype=np.float64).reshape(len(poses), NUM_JOINTS, 3)
        return cls(R.axis_angle_to_rotation_6d(poses), trans, fps, list(texts or []), betas)

    @classmethod
    def from_matrices(
        cls,
        mats: np.ndarray,
        trans: np.ndarray,
        fps: float = FPS,
        texts: list[str] | None = None,
        betas: np.ndarray | None = None,
    ) -> Motion:
        return cls(
            R.matrix_to_rotation_6d(np.asarray(mats, dtype=np.float64)), trans, fps, list(texts or []), betas
        )

    # --- views ----------------------------------------------------------------------------------
    @property
    def num_frames(self) -> int:
        return int(self.rot6d.shape[0])

    @property
    def seconds(self) -> float:
        return self.num_frames / self.fps

    @property
    def text(self) -> str:
        return self.texts[0] if self.texts else ""

    def matrices(self) -> np.ndarray:
        return R.rotation_6d_to_matrix(self.rot6d.astype(np.float64))

    def axis_angle(self) -> np.ndarray:
        return R.matrix_to_axis_angle(self.matrices())

    def joint_positions(self, offsets: np.ndarray | None = None) -> np.ndarray:
        """Global joint positions (T, 24, 3) in metres."""
        return forward_kinematics(self.matrices(), self.trans.astype(np.float64), offsets)[0]

    # --- edits ----------------------------------------------------------------------------------
    def slice(self, start: int, stop: int) -> Motion:
        return replace(self, rot6d=self.rot6d[start:stop], trans=self.trans[start:stop])

    def resample(self, fps: float = FPS) -> Motion:
        """Resample to `fps`: quaternion slerp for rotations, linear for translation."""
        if abs(fps - self.fps) < 1e-6:
            return replace(self)
        duration = (self.num_frames - 1) / self.fps
        n_out = max(1, int(round(duration * fps)) + 1)
        t_out = np.arange(n_out) / fps * self.fps  # in source frames
        i0 = np.clip(np.floor(t_out).astype(int), 0, self.num_frames - 1)
        i1 = np.clip(i0 + 1, 0, self.num_frames - 1)
        w = (t_out - i0)[:, None]
        q = R.matrix_to_quaternion(self.matrices())
        q0, q1 = q[i0], q[i1]
        dot = (q0 * q1).sum(-1, keepdims=True)
        q1 = np.where(dot < 0, -q1, q1)
        dot = np.abs(dot)
        theta = np.arccos(np.clip(dot, -1, 1))
        sin_t = np.sin(theta)
        wj = w[:, None, :]
        lin = sin_t < 1e-6
        a = np.where(lin, 1 - wj, np.sin((1 - wj) * theta) / np.where(lin, 1, sin_t))
        b = np.where(lin, wj, np.sin(wj * theta) / np.where(lin, 1, sin_t))
        qi = a * q0 + b * q1
        trans = self.trans[i0] * (1 - w) + self.trans[i1] * w
        return Motion.from_matrices(R.quaternion_to_matrix(qi), trans, fps, self.texts, self.betas)

    def mirrored(self) -> Motion:
        """Left/right mirror across the body's sagittal (YZ) plane; texts swap left/right words."""
        mats = self.matrices()[:, list(MIRROR_INDEX)]
        flip = np.diag([-1.0, 1.0, 1.0])
        mats = flip @ mats @ flip
        trans = self.trans * np.array([-1.0, 1.0, 1.0], dtype=np.float32)
        return Motion.from_matrices(mats, trans, self.fps, [mirror_text(t) for t in self.texts], self.betas)

    # --- disk -----------------------------------------------------------------------------------
    def save_npz(self, path: str | Path) -> Path:
        path = Path(path)
        if path.suffix.lower() != ".npz":
            raise InputError(f"{path}: motion files must end in .npz")
        data = {
            "poses": self.axis_angle().reshape(self.num_frames, NUM_JOINTS * 3).astype(np.float32),
            "trans": self.trans.astype(np.float32),
            "mocap_framerate": np.float64(self.fps),
            "text": np.asarray(" | ".join(self.texts)),
            "gender": np.asarray("neutral"),
        }
        if self.betas is not None:
            data["betas"] = np.asarray(self.betas, dtype=np.float32)
        with atomic_output(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **data)
        return path


def mirror_text(text: str) -> str:
    import re

    return re.sub(r"[A-Za-z-]+", lambda m: _LEFT_RIGHT_WORDS.get(m.group(0), m.group(0)), text)


def validate_arrays(rot: np.ndarray, trans: np.ndarray, fps: float, where: str, rot_kind: str) -> None:
    width = 6 if rot_kind == "6d" else 3
    if rot.ndim != 3 or rot.shape[1:] != (NUM_JOINTS, width):
        raise InputError(f"{where}: rotations have shape {rot.shape}, expected (T, {NUM_JOINTS}, {width})")
    if trans.shape != (rot.shape[0], 3):
        raise InputError(f"{where}: translation has shape {trans.shape}, expected ({rot.shape[0]}, 3)")
    if rot.shape[0] == 0:
        raise InputError(f"{where}: zero-length motion (no frames)")
    if not (np.isfinite(rot).all() and np.isfinite(trans).all()):
        raise InputError(f"{where}: motion contains NaN or infinite values")
    if not (np.isfinite(fps) and 1 <= fps <= 1000):
        raise InputError(f"{where}: frame rate {fps} is not in 1..1000 fps")


# Most numbers a motion file may hold in all, checked from the arrays' headers before any is read:
# a compressed .npz of zeros can unpack to gigabytes. 60M values = 10 h of SMPL-H (156 values per
# frame) at 30 fps, far beyond any real take.
MAX_NPZ_VALUES = 60_000_000


def _npz_values(path: Path) -> int:
    """How many values the .npz's arrays hold, from their .npy headers (no array is read)."""
    total = 0
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            with zf.open(info) as fh:
                version = np.lib.format.read_magic(fh)
                read = (
                    np.lib.format.read_array_header_1_0
                    if version == (1, 0)
                    else np.lib.format.read_array_header_2_0
                )
                shape, _, _ = read(fh)
            total += int(np.prod(shape, dtype=np.int64)) if shape else 1
    return total


def _numbers(arrays: dict[str, np.ndarray], key: str, path: Path) -> np.ndarray:
    """Field `key` as float64, or InputError when it holds text, objects or anything non-numeric."""
    value = arrays[key]
    if value.dtype.kind not in "biuf":
        raise InputError(f"{path}: {key} holds {value.dtype} data ({value.dtype.kind!r}), expected numbers")
    return np.asarray(value, dtype=np.float64)


def load_npz(path: str | Path, max_frames: int | None = None) -> Motion:
    """Read an AMASS-style motion file; SMPL-H/X files with more than 24 joints keep the body's 24.

    `max_frames` refuses longer motions (see vmclip.limits). Any malformed file (not a zip,
    fields missing, of the wrong type or shape, too large) raises InputError with one line."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        if (values := _npz_values(path)) > MAX_NPZ_VALUES:
            raise InputError(
                f"{path}: holds {values:,} values, more than a motion file can ({MAX_NPZ_VALUES:,})"
            )
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise InputError(f"{path}: not a readable .npz motion file ({exc})") from None
    missing = [k for k in ("poses", "trans") if k not in arrays]
    if missing:
        raise InputError(
            f"{path}: missing keys {missing} (found {sorted(arrays)}); expected AMASS-style "
            "poses (T,72), trans (T,3), mocap_framerate"
        )
    poses = _numbers(arrays, "poses", path)
    if poses.ndim != 2 or poses.shape[1] < NUM_JOINTS * 3 or poses.shape[1] % 3:
        raise InputError(f"{path}: poses has shape {poses.shape}, expected (T, 72)")
    if max_frames is not None and len(poses) > max_frames:
        raise InputError(f"{path}: motion has {len(poses)} frames, the limit is {max_frames}")
    poses = poses[:, : NUM_JOINTS * 3].reshape(-1, NUM_JOINTS, 3)
    trans = _numbers(arrays, "trans", path)
    fps_key = next((k for k in ("mocap_framerate", "mocap_frame_rate") if k in arrays), None)
    fps = FPS
    if fps_key is not None:
        rate = _numbers(arrays, fps_key, path)
        if rate.size != 1:
            raise InputError(f"{path}: {fps_key} has shape {rate.shape}, expected one number")
        fps = float(rate.reshape(()))
    validate_arrays(poses, trans, fps, where=str(path), rot_kind="aa")
    text = arrays.get("text")
    if text is not None and text.dtype.kind not in "US":
        raise InputError(f"{path}: text holds {text.dtype} data, expected a string")
    texts = [t.strip() for t in (str(text) if text is not None else "").split(" | ") if t.strip()]
    betas = None
    if "betas" in arrays:
        betas = arrays["betas"]  # (kept in its own dtype, as before)
        if betas.ndim > 2 or not np.isfinite(_numbers(arrays, "betas", path)).all():
            raise InputError(
                f"{path}: betas has shape {betas.shape} or non-finite values, expected (N,) numbers"
            )
    return Motion.from_axis_angle(poses, trans, fps, texts, betas)
