"""The MotionCLIP-style model's motion latent as the masked model's condition.

Conditioned on the prompt's own MiniLM embedding, the masked transformer reads paraphrases poorly (41 %
on the evaluation's paraphrases, against the MotionCLIP-style model's 63 %): an unseen sentence's
embedding lies between training descriptions. The MotionCLIP-style model reads them better (its bank
draw scores windows by a learned motion-text cosine and the descriptions' cosine) but its regression
decoder damps the motion. With `TokenConfig.condition = "motionclip"` the transformer is trained on the
latent that model's encoder gives each training window, and generation draws that latent from the
model's bank by the prompt: the masked model becomes a generative decoder of the text-aligned latent
space, as the seed paper decodes MotionCLIP's latent.

The latents only mean something to the MotionCLIP-style model that made them, so the masked model
stores a fingerprint of that model's bank and refuses to load beside another one.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch
import torch.nn.functional as F

from vmclip.t2m.tokens import DOWN, features_to_motion

CONDITIONS = ("text", "motionclip")


def bank_fingerprint(bank: torch.Tensor) -> str:
    """A short hash of a MotionCLIP-style model's (normalised) bank latents."""
    data = F.normalize(bank.float().cpu(), dim=-1).half().numpy().tobytes()
    return hashlib.sha1(data).hexdigest()[:16]


@torch.no_grad()
def token_latents(generator, feats: np.ndarray, fps: float, batch: int = 256) -> torch.Tensor:
    """One clip's features (T, 148) at `fps` -> (ceil(T / DOWN), D) unit latents: for each token, the
    MotionCLIP-style `generator`'s encoding of its window (up to that model's window length) starting
    at the token, as its bank encodes training windows (canonical, held last pose as padding)."""
    from vmclip.motion import Motion
    from vmclip.t2m.data import canonicalize
    from vmclip.t2m.model import to_features

    model, cfg = generator.model, generator.model.cfg
    rot, trans = features_to_motion(torch.from_numpy(np.asarray(feats, np.float32)))  # (T, 24, 6), (T, 3)
    m = Motion(rot.numpy(), trans.numpy(), fps).resample(cfg.fps)
    n, width = m.num_frames, cfg.max_frames
    n_tok = -(-len(feats) // DOWN)
    starts = np.minimum(np.round(np.arange(n_tok) * DOWN / fps * cfg.fps).astype(int), max(0, n - 2))
    out = []
    for s in range(0, n_tok, batch):
        rots = np.zeros((len(starts[s : s + batch]), width, 24, 6), np.float32)
        trs = np.zeros((len(rots), width, 3), np.float32)
        lengths = np.zeros(len(rots), np.int64)
        for b, start in enumerate(starts[s : s + batch]):
            k = min(width, n - int(start))
            rots[b, :k], trs[b, :k] = m.rot6d[start : start + k], m.trans[start : start + k]
            rots[b, k:], trs[b, k:] = rots[b, k - 1], trs[b, k - 1]
            lengths[b] = k
        r6, tr = canonicalize(torch.from_numpy(rots), torch.from_numpy(trs))
        mask = torch.arange(width)[None] < torch.from_numpy(lengths)[:, None]
        dev = next(model.parameters()).device
        z = model.encode(to_features(r6, tr).to(dev), mask.to(dev))  # (B, D)
        out.append(F.normalize(z.float(), dim=-1).cpu())
    return torch.cat(out)


def load_condition_model(device: str | torch.device = "cpu"):
    """The shipped MotionCLIP-style model (the one whose latents a "motionclip"-conditioned masked
    model is trained on and draws from)."""
    from vmclip.t2m import DEFAULT_WEIGHTS
    from vmclip.t2m.generate import Generator

    return Generator.from_file(DEFAULT_WEIGHTS["minilm"], device=str(device))
