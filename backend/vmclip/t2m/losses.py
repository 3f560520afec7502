"""Training losses: MotionCLIP's reconstruction terms plus alignment to the text embeddings."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vmclip.motion import rotations as R
from vmclip.motion.kinematics import forward_kinematics
from vmclip.motion.skeleton import JOINT_INDEX
from vmclip.t2m.model import from_features

FEET = [JOINT_INDEX[n] for n in ("left_ankle", "right_ankle", "left_foot", "right_foot")]
LAMBDAS = {
    "rc": 1.0,
    "root": 0.5,
    "rcxyz": 10.0,
    "vel": 20.0,
    "velxyz": 100.0,
    "rootvel": 20.0,
    "foot": 50.0,
    "cosine": 1.0,
    "ce": 0.2,
    "gen": 0.25,
}


def positions(x: torch.Tensor) -> torch.Tensor:
    """Features (B, 25, 6, T) -> global joint positions (B, T, 24, 3) on our skeleton."""
    rot6d, trans = from_features(x)
    return forward_kinematics(R.rotation_6d_to_matrix(rot6d), trans)[0]


def _masked_mean(err: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of err (B, T, ...) over valid frames."""
    m = mask.to(err.dtype).reshape(*mask.shape, *([1] * (err.ndim - 2)))
    denom = m.sum() * (err[0, 0].numel())
    return (err * m).sum() / denom.clamp_min(1.0)


def reconstruction(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, target_pos: torch.Tensor | None = None
) -> dict[str, torch.Tensor]:
    """MotionCLIP's terms, with the body pose and the root path kept apart so that metres of travel
    cannot drown the limbs: rc (6D rotations), root (translation), rcxyz (joint positions relative to
    the pelvis), vel / velxyz / rootvel (frame differences of each), foot (planted feet stay put)."""
    p = pred.permute(0, 3, 1, 2)  # (B, T, 25, 6)
    t = target.permute(0, 3, 1, 2)
    out = {
        "rc": _masked_mean((p[:, :, :24] - t[:, :, :24]) ** 2, mask),
        "root": _masked_mean((p[:, :, 24, :3] - t[:, :, 24, :3]) ** 2, mask),
    }
    pos_p = positions(pred)
    pos_t = positions(target) if target_pos is None else target_pos
    rel_p, rel_t = pos_p - pos_p[:, :, :1], pos_t - pos_t[:, :, :1]
    out["rcxyz"] = _masked_mean((rel_p - rel_t) ** 2, mask)
    vmask = mask[:, 1:] & mask[:, :-1]
    dp, dt = p[:, 1:, :24] - p[:, :-1, :24], t[:, 1:, :24] - t[:, :-1, :24]
    out["vel"] = _masked_mean((dp - dt) ** 2, vmask)
    out["velxyz"] = _masked_mean(
        ((rel_p[:, 1:] - rel_p[:, :-1]) - (rel_t[:, 1:] - rel_t[:, :-1])) ** 2, vmask
    )
    rp, rt = p[:, 1:, 24, :3] - p[:, :-1, 24, :3], t[:, 1:, 24, :3] - t[:, :-1, 24, :3]
    out["rootvel"] = _masked_mean((rp - rt) ** 2, vmask)
    vp, vt = pos_p[:, 1:] - pos_p[:, :-1], pos_t[:, 1:] - pos_t[:, :-1]
    # Where a target foot is (nearly) still, the predicted foot must be still too (no skating).
    still = (vt[:, :, FEET].norm(dim=-1) < 0.01).to(vp.dtype)  # < 1 cm per model frame
    out["foot"] = _masked_mean(still[..., None] * vp[:, :, FEET] ** 2, vmask)
    return out


def alignment(
    z: torch.Tensor, text: torch.Tensor, keys: torch.Tensor, temperature: float = 0.07
) -> dict[str, torch.Tensor]:
    """Cosine pull of each motion latent to its text embedding, plus a symmetric contrastive term in
    which windows with the same description (`keys` equal) all count as positives."""
    z = F.normalize(z, dim=-1)
    text = F.normalize(text, dim=-1)
    cos = (z * text).sum(-1)
    logits = z @ text.T / temperature
    same = (keys[:, None] == keys[None, :]).to(z.dtype)
    target = same / same.sum(-1, keepdim=True)
    ce = (
        -(target * logits.log_softmax(-1)).sum(-1).mean() - (target * logits.T.log_softmax(-1)).sum(-1).mean()
    )
    return {"cosine": (1 - cos).mean(), "ce": ce / 2}


def total(losses: dict[str, torch.Tensor], lambdas: dict[str, float] = LAMBDAS) -> torch.Tensor:
    """Weighted sum; text-decoding terms (prefix 'gen_') share the weight `gen`."""
    out = torch.zeros((), dtype=next(iter(losses.values())).dtype)
    for k, v in losses.items():
        if k.startswith("gen_"):
            out = out + lambdas["gen"] * lambdas[k[4:]] * v
        else:
            out = out + lambdas[k] * v
    return out
