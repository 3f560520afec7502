"""The masked-token model's training data in one file (`pack.npz`, fp16, no mirrored copies).

Each original (not mirrored) training clip is resampled to the model's rate and stored as features
(`tokens.motion_features`); its mirror is made on the fly (a permutation and sign flips of the
features). Texts: every clip's augmented descriptions and those of its mirrored copy (left and right
swapped), embedded once, so training needs neither the text encoder nor the processed data set.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vmclip.errors import InputError
from vmclip.fileio import atomic_output

PACK_VERSION = 1


@dataclass
class Pack:
    feats: np.ndarray  # (F, 148) float16, all clips concatenated
    starts: np.ndarray  # (n + 1,)
    text_emb: np.ndarray  # (U, D) float16, L2-normalised
    texts: list[str]  # (U,)
    text_ids: list[np.ndarray]  # per clip, ids of its texts
    mirror_ids: list[np.ndarray]  # per clip, ids of its mirrored copy's texts
    keys: list[str]  # per clip, its description key (for balancing)
    labels: list[str]
    fps: float
    encoder: str

    def __len__(self) -> int:
        return len(self.keys)

    def length(self, i: int) -> int:
        return int(self.starts[i + 1] - self.starts[i])

    def clip(self, i: int) -> np.ndarray:
        return self.feats[self.starts[i] : self.starts[i + 1]]


def _clip_features(rot6d: np.ndarray, trans: np.ndarray, fps: float) -> np.ndarray:
    from vmclip.motion import Motion
    from vmclip.t2m.tokens import motion_features

    m = Motion(rot6d, trans, 30.0).resample(fps)
    return motion_features(torch.from_numpy(m.rot6d).float(), torch.from_numpy(m.trans).float()).numpy()


def build_pack(
    data: str | Path, out: str | Path, fps: float = 20.0, encoder: str = "minilm", min_frames: int = 8
) -> Path:
    """Pack the processed data set's training split (see the module doc)."""
    from vmclip.t2m.augment import augment_texts
    from vmclip.t2m.data import clip_key, load_clipset
    from vmclip.text import load_text_encoder

    train = load_clipset(data, "train")
    ids = {c["clip_id"]: i for i, c in enumerate(train.clips)}
    feats, per_clip, per_mirror, keys, labels = [], [], [], [], []
    for i, rec in enumerate(train.clips):
        if rec.get("mirrored"):
            continue
        x = _clip_features(
            train.rot6d[train.starts[i] : train.starts[i + 1]],
            train.trans[train.starts[i] : train.starts[i + 1]],
            fps,
        )
        if len(x) < min_frames:
            continue
        feats.append(x)
        per_clip.append(augment_texts(list(rec.get("texts") or [rec.get("label", "")]), seed=i))
        twin = ids.get(str(rec["clip_id"]) + "_M")
        from vmclip.motion.format import mirror_text

        mtexts = (
            train.clips[twin]["texts"]
            if twin is not None
            else [mirror_text(t) for t in rec.get("texts") or []]
        )
        per_mirror.append(
            augment_texts(list(mtexts or [rec.get("label", "")]), seed=twin if twin is not None else i)
        )
        keys.append(clip_key(rec))
        labels.append(str(rec.get("label", "")))
    if not feats:
        raise InputError(f"{data}: no training clips to pack")
    texts = sorted({t for ts in per_clip + per_mirror for t in ts})
    index = {t: k for k, t in enumerate(texts)}
    enc = load_text_encoder(encoder)
    emb = torch.cat([enc.encode(texts[s : s + 256]).float().cpu() for s in range(0, len(texts), 256)])
    emb = torch.nn.functional.normalize(emb, dim=-1)

    def flat(lists: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
        return np.array([index[t] for ts in lists for t in ts], np.int32), np.cumsum(
            [0] + [len(ts) for ts in lists]
        )

    ti, to = flat(per_clip)
    mi, mo = flat(per_mirror)
    meta = {
        "version": PACK_VERSION,
        "fps": fps,
        "encoder": encoder,
        "keys": keys,
        "labels": labels,
        "texts": texts,
    }
    out = Path(out)
    with atomic_output(out) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(
                fh,
                feats=np.concatenate(feats).astype(np.float16),
                starts=np.cumsum([0] + [len(x) for x in feats]).astype(np.int64),
                text_emb=emb.numpy().astype(np.float16),
                text_ids=ti,
                text_offsets=to.astype(np.int64),
                mirror_ids=mi,
                mirror_offsets=mo.astype(np.int64),
                meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
            )
    return out


def load_pack(path: str | Path) -> Pack:
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(arrays["meta"].tobytes().decode())
    except (OSError, KeyError, ValueError) as exc:
        raise InputError(
            f"{path}: not a training pack ({exc}); build one with `vmclip train --model masked`"
        ) from None
    if meta.get("version") != PACK_VERSION or arrays["feats"].ndim != 2:
        raise InputError(f"{path}: training pack of another version; rebuild it")

    def split(ids: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
        return [ids[offsets[k] : offsets[k + 1]] for k in range(len(offsets) - 1)]

    return Pack(
        arrays["feats"],
        arrays["starts"],
        arrays["text_emb"],
        list(meta["texts"]),
        split(arrays["text_ids"], arrays["text_offsets"]),
        split(arrays["mirror_ids"], arrays["mirror_offsets"]),
        list(meta["keys"]),
        list(meta["labels"]),
        float(meta["fps"]),
        str(meta["encoder"]),
    )
