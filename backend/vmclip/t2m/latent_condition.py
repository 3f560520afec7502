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


@torch.no_grad()
def decoded_guide(generator, z: torch.Tensor, tokenizer, fps: float, batch: int = 512) -> torch.Tensor:
    """Latents (B, D) -> the guide (B, G, code_dim): the MotionCLIP-style `generator`'s own decoding of
    each latent (its whole window), resampled to `fps` (linear in 6D; the features re-orthogonalise)
    and encoded, not quantised, by the masked model's `tokenizer`: one vector per token."""
    from vmclip.t2m.model import from_features
    from vmclip.t2m.tokens import motion_features

    model, cfg = generator.model, generator.model.cfg
    dev = next(model.parameters()).device
    n = int(round(cfg.max_frames / cfg.fps * fps)) // DOWN * DOWN  # model frames the window covers
    t = torch.arange(n, dtype=torch.float32) * cfg.fps / fps  # in the decoder's frames
    i0 = t.floor().long().clamp(max=cfg.max_frames - 1)
    i1 = (i0 + 1).clamp(max=cfg.max_frames - 1)
    w = (t - i0)[None, :, None]  # (1, n, 1)
    out = []
    for s in range(0, len(z), batch):
        zb = z[s : s + batch].to(dev).float()
        mask = torch.ones(len(zb), cfg.max_frames, dtype=torch.bool, device=dev)
        rot, trans = from_features(model.decode(zb, mask))  # (b, T, 24, 6), (b, T, 3)
        rot = rot[:, i0] * (1 - w[..., None]) + rot[:, i1] * w[..., None]  # (b, n, 24, 6)
        trans = trans[:, i0] * (1 - w) + trans[:, i1] * w  # (b, n, 3)
        x = motion_features(rot, trans).to(tokenizer.mean.device)  # (b, n, 148)
        out.append(tokenizer.encode(x).transpose(1, 2).float())  # (b, n / 4, code_dim)
    return torch.cat(out)


def guide_input(guide: torch.Tensor, n_tokens: int) -> torch.Tensor:
    """(B, G, C) guide -> the transformer's (B, n_tokens, C + 1) input: cut or padded with zeros, the
    last channel 1 where a guide vector is given."""
    b, g, c = guide.shape
    out = torch.zeros(b, n_tokens, c + 1, dtype=guide.dtype, device=guide.device)
    k = min(g, n_tokens)
    out[:, :k, :c] = guide[:, :k]
    out[:, :k, c] = 1
    return out
