"""Training windows from the processed data set (`vmclip data build`).

Clips are read at 30 fps and sampled at the model's rate (every 2nd frame for 15 fps). Each window is
put in a canonical frame: rotated about the vertical so the body faces +Z at its first frame and
shifted so the pelvis starts above the origin (height kept). A window's latent then describes the
movement, not where in the room it happened.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vmclip.errors import InputError
from vmclip.motion import rotations as R

DATA_FPS = 30.0


@dataclass
class ClipSet:
    rot6d: np.ndarray  # (F, 24, 6) float32, all clips concatenated
    trans: np.ndarray  # (F, 3)
    starts: np.ndarray  # (n + 1,) frame offsets
    clips: list[dict]  # records: clip_id, texts, label, source, license, mirrored, recording

    def __len__(self) -> int:
        return len(self.clips)

    def length(self, i: int) -> int:
        return int(self.starts[i + 1] - self.starts[i])


def load_clipset(root: str | Path, split: str) -> ClipSet:
    """One split of a processed data set (see contracts: {split}.npz + {split}.json)."""
    root = Path(root)
    npz, js = root / f"{split}.npz", root / f"{split}.json"
    if not npz.is_file() or not js.is_file():
        raise InputError(
            f"{root}: no processed '{split}' split ({npz.name}, {js.name}); "
            "build it with `vmclip data build --out {root}`"
        )
    try:
        with np.load(npz, allow_pickle=False) as data:
            rot6d = np.asarray(data["rot6d"], dtype=np.float32)
            trans = np.asarray(data["trans"], dtype=np.float32)
            starts = np.asarray(data["clip_start"], dtype=np.int64)
        clips = json.loads(js.read_text(encoding="utf-8"))
    except (OSError, KeyError, ValueError) as exc:
        raise InputError(f"{root}: unreadable '{split}' split ({exc})") from None
    if rot6d.ndim != 3 or rot6d.shape[1:] != (24, 6) or trans.shape != (len(rot6d), 3):
        raise InputError(
            f"{npz}: arrays have shapes {rot6d.shape} and {trans.shape}, expected (F,24,6), (F,3)"
        )
    if len(starts) != len(clips) + 1 or starts[-1] != len(rot6d):
        raise InputError(f"{root}: {split}.npz and {split}.json do not agree")
    return ClipSet(rot6d, trans, starts, clips)


def subset(data: ClipSet, sources: list[str] | None) -> ClipSet:
    """Only the clips whose `source` is in `sources` (None: all)."""
    if not sources:
        return data
    keep = [i for i, c in enumerate(data.clips) if str(c.get("source", "")) in set(sources)]
    if not keep:
        found = sorted({str(c.get("source", "")) for c in data.clips})
        raise InputError(f"no clips from sources {sources}; the data has {', '.join(found)}")
    idx = np.concatenate([np.arange(data.starts[i], data.starts[i + 1]) for i in keep])
    lengths = np.array([data.length(i) for i in keep])
    starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return ClipSet(data.rot6d[idx], data.trans[idx], starts, [data.clips[i] for i in keep])


def clip_key(rec: dict) -> str:
    """What two clips must share to count as the same description (side and style included)."""
    from vmclip.motion.dataset import label_text

    text = label_text(list(rec.get("texts") or []), str(rec.get("source", ""))) or str(rec.get("label", ""))
    return text.strip().lower()


def canonicalize(rot6d: torch.Tensor, trans: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Windows (B, T, 24, 6), (B, T, 3) -> facing +Z with the pelvis over the origin at frame 0."""
    root = R.rotation_6d_to_matrix(rot6d[:, :, 0])  # (B, T, 3, 3)
    fwd = root[:, 0, :, 2]  # where the body's +Z points at frame 0
    up = root[:, 0, :, 1]
    # Lying or bent-over bodies: fall back to the up axis' horizontal direction when +Z is vertical.
    use_up = (fwd[:, 0] ** 2 + fwd[:, 2] ** 2) < 0.05
    fwd = torch.where(use_up[:, None], -up, fwd)
    yaw = torch.atan2(fwd[:, 0], fwd[:, 2])
    c, s = torch.cos(-yaw), torch.sin(-yaw)
    zero, one = torch.zeros_like(c), torch.ones_like(c)
    rot_y = torch.stack(
        [torch.stack([c, zero, s], -1), torch.stack([zero, one, zero], -1), torch.stack([-s, zero, c], -1)],
        -2,
    )  # (B, 3, 3)
    root = rot_y[:, None] @ root
    offset = trans[:, :1].clone()
    offset[..., 1] = 0
    trans = (trans - offset) @ rot_y.transpose(1, 2)
    rot6d = rot6d.clone()
    rot6d[:, :, 0] = R.matrix_to_rotation_6d(root)
    return rot6d, trans


class WindowSampler:
    """Seeded random windows: clip chosen by weight, then length and start; padded batches."""

    def __init__(
        self,
        data: ClipSet,
        fps: float,
        max_frames: int,
        min_frames: int = 10,
        seed: int = 0,
        label_balance: bool = True,
    ) -> None:
        self.data = data
        self.stride = max(1, int(round(DATA_FPS / fps)))
        self.max_frames = max_frames
        self.min_frames = min_frames
        self.rng = np.random.default_rng(seed)
        n_model = np.array([(data.length(i) - 1) // self.stride + 1 for i in range(len(data))])
        self.n_model = n_model
        # Longer clips give more windows, but at most 3 windows' worth, so long takes do not dominate;
        # frequent descriptions are damped (1/sqrt(count)) so rare actions are seen often enough.
        weight = np.minimum(n_model / max_frames, 3.0)
        if label_balance:
            keys = [clip_key(c) for c in data.clips]
            counts: dict[str, int] = {}
            for k in keys:
                counts[k] = counts.get(k, 0) + 1
            weight = weight / np.sqrt([counts[k] for k in keys])
        weight[n_model < 2] = 0
        if weight.sum() <= 0:
            raise InputError("training data has no clip long enough for a window")
        self.p = weight / weight.sum()

    def state(self) -> dict:
        return self.rng.bit_generator.state

    def set_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state

    def window(self, i: int, start: int, length: int) -> tuple[np.ndarray, np.ndarray]:
        """Model-rate frames of clip i from 30-fps frame `start`, `length` frames long."""
        idx = self.data.starts[i] + start + np.arange(length) * self.stride
        return self.data.rot6d[idx], self.data.trans[idx]

    def sample(self, batch: int) -> dict[str, torch.Tensor]:
        clips = self.rng.choice(len(self.p), size=batch, p=self.p)
        rots = np.zeros((batch, self.max_frames, 24, 6), np.float32)
        trs = np.zeros((batch, self.max_frames, 3), np.float32)
        lengths = np.zeros(batch, np.int64)
        for b, i in enumerate(clips):
            n = int(self.n_model[i])
            top = min(self.max_frames, n)
            low = min(self.min_frames, top)
            length = top if self.rng.random() < 0.6 else int(self.rng.integers(low, top + 1))
            span = (length - 1) * self.stride + 1
            start = int(self.rng.integers(0, self.data.length(i) - span + 1))
            r, t = self.window(i, start, length)
            rots[b, :length], trs[b, :length] = r, t
            rots[b, length:], trs[b, length:] = r[-1], t[-1]  # pad by holding the last pose
            lengths[b] = length
        return finish_batch(rots, trs, lengths, clips)

    def fixed_windows(self, hop_seconds: float = 2.0, limit: int | None = None) -> dict[str, torch.Tensor]:
        """Deterministic full-length windows over every clip (banks, evaluation)."""
        items = []
        hop = max(1, int(round(hop_seconds * DATA_FPS)))
        for i in range(len(self.data)):
            n = int(self.n_model[i])
            if n < 2:
                continue
            length = min(self.max_frames, n)
            span = (length - 1) * self.stride + 1
            last = self.data.length(i) - span
            for start in range(0, last + 1, hop):
                items.append((i, start, length))
            if last % hop:
                items.append((i, last, length))
        if limit is not None and len(items) > limit:
            keep = np.linspace(0, len(items) - 1, limit).round().astype(int)
            items = [items[k] for k in keep]
        rots = np.zeros((len(items), self.max_frames, 24, 6), np.float32)
        trs = np.zeros((len(items), self.max_frames, 3), np.float32)
        lengths = np.zeros(len(items), np.int64)
        for b, (i, start, length) in enumerate(items):
            r, t = self.window(i, start, length)
            rots[b, :length], trs[b, :length] = r, t
            rots[b, length:], trs[b, length:] = r[-1], t[-1]
            lengths[b] = length
        out = finish_batch(rots, trs, lengths, np.array([it[0] for it in items], np.int64))
        out["start"] = torch.tensor([it[1] for it in items], dtype=torch.long)
        return out


def finish_batch(rots: np.ndarray, trs: np.ndarray, lengths: np.ndarray, clips: np.ndarray) -> dict:
    rot6d, trans = canonicalize(torch.from_numpy(rots), torch.from_numpy(trs))
    max_len = rots.shape[1]
    mask = torch.arange(max_len)[None] < torch.from_numpy(lengths)[:, None]
    return {"rot6d": rot6d, "trans": trans, "mask": mask, "clip": torch.from_numpy(np.asarray(clips))}
