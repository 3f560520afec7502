"""A small procedural data set in the processed layout (for tests, smoke runs and benchmarks).

Five clearly different, labelled movements driven by sinusoids on the SMPL-24 skeleton: walking
forward, waving the right or left hand, jumping in place, raising both hands. Random phase, speed,
amplitude and heading per clip; written exactly as `vmclip data build` writes real data.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from vmclip.motion import JOINT_INDEX
from vmclip.motion import rotations as R
from vmclip.motion.skeleton import pelvis_height

J = JOINT_INDEX
LABELS = {
    "walk": ["a person walks forward", "walk"],
    "wave right hand": ["a person waves with the right hand", "wave right hand, normal style"],
    "wave left hand": ["a person waves with the left hand", "wave left hand, normal style"],
    "jump": ["a person jumps in place", "jumping"],
    "raise both hands": ["a person raises both hands", "raise up both hands, normal style"],
}


def _clip(kind: str, frames: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(frames) / 30.0
    f = rng.uniform(0.8, 1.2)
    ph = rng.uniform(0, 2 * np.pi)
    amp = rng.uniform(0.8, 1.2)
    aa = np.zeros((frames, 24, 3))
    # Arms down from the T-pose.
    aa[:, J["left_shoulder"], 2] = -1.2
    aa[:, J["right_shoulder"], 2] = 1.2
    trans = np.zeros((frames, 3))
    trans[:, 1] = pelvis_height()
    s = np.sin(2 * np.pi * f * t + ph)
    if kind == "walk":
        aa[:, J["left_hip"], 0] = 0.45 * amp * s
        aa[:, J["right_hip"], 0] = -0.45 * amp * s
        aa[:, J["left_knee"], 0] = 0.5 * amp * np.maximum(0, -s)
        aa[:, J["right_knee"], 0] = 0.5 * amp * np.maximum(0, s)
        aa[:, J["left_shoulder"], 0] = -0.3 * s
        aa[:, J["right_shoulder"], 0] = 0.3 * s
        trans[:, 2] = 1.2 * f * t
    elif kind in ("wave right hand", "wave left hand"):
        side, sign = ("right", 1) if kind.startswith("wave right") else ("left", -1)
        aa[:, J[f"{side}_shoulder"], 2] = -sign * 1.1
        aa[:, J[f"{side}_elbow"], 1] = sign * (1.2 + 0.5 * amp * np.sin(2 * np.pi * 2 * f * t + ph))
    elif kind == "jump":
        up = np.maximum(0, s)
        trans[:, 1] += 0.3 * amp * up
        aa[:, J["left_knee"], 0] = aa[:, J["right_knee"], 0] = 0.8 * np.maximum(0, -s)
        aa[:, J["left_hip"], 0] = aa[:, J["right_hip"], 0] = -0.5 * np.maximum(0, -s)
    elif kind == "raise both hands":
        lift = 0.5 - 0.5 * np.cos(np.clip(2 * np.pi * 0.4 * f * t, 0, np.pi))
        aa[:, J["left_shoulder"], 2] = -1.2 + 2.6 * amp * lift
        aa[:, J["right_shoulder"], 2] = 1.2 - 2.6 * amp * lift
    heading = rng.uniform(-np.pi, np.pi)
    rot_y = R.axis_angle_to_matrix(np.array([0.0, heading, 0.0]))
    root = R.axis_angle_to_matrix(aa[:, 0])
    aa[:, 0] = R.matrix_to_axis_angle(rot_y @ root)
    trans = trans @ rot_y.T
    trans[:, [0, 2]] += rng.uniform(-2, 2, 2)
    rot6d = R.axis_angle_to_rotation_6d(aa).astype(np.float32)
    return rot6d, trans.astype(np.float32)


def write_synthetic_dataset(
    out: str | Path, clips_per_label: int = 6, seed: int = 0, seconds: tuple[float, float] = (2.0, 5.0)
) -> Path:
    """Write train/val/test .npz + .json and meta.json into `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    splits = {
        "train": clips_per_label,
        "val": max(1, clips_per_label // 3),
        "test": max(1, clips_per_label // 3),
    }
    counts = {}
    for split, n in splits.items():
        rots, trs, starts, recs = [], [], [0], []
        for label, texts in LABELS.items():
            for k in range(n):
                frames = int(rng.uniform(*seconds) * 30)
                r, t = _clip(label, frames, rng)
                rots.append(r)
                trs.append(t)
                starts.append(starts[-1] + frames)
                recs.append(
                    {
                        "clip_id": f"syn_{split}_{label.replace(' ', '_')}_{k}",
                        "texts": list(texts),
                        "label": label,
                        "source": "synthetic",
                        "license": "CC0 (procedural)",
                        "mirrored": False,
                        "recording": f"syn_{split}_{label}_{k}",
                    }
                )
        np.savez(
            out / f"{split}.npz",
            rot6d=np.concatenate(rots),
            trans=np.concatenate(trs),
            clip_start=np.array(starts, np.int64),
        )
        (out / f"{split}.json").write_text(json.dumps(recs, indent=1))
        counts[split] = len(recs)
    (out / "meta.json").write_text(json.dumps({"fps": 30, "counts": counts, "source": "synthetic"}))
    return out
