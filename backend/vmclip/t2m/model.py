"""The MotionCLIP-style autoencoder (after Tevet et al. 2022, built on ACTOR's transformer VAE).

Layout and parameter names follow MotionCLIP's published checkpoints so their weights load here:
a motion is (batch, 25, 6, frames): 24 joints' local 6D rotations plus a 25th "joint" holding the
root translation (x, y, z, 0, 0, 0). The encoder (`skelEmbedding`, `muQuery`/`sigmaQuery` tokens,
`sequence_pos_encoder`, `seqTransEncoder`) maps a motion to a latent the size of the text embedding
(the mu token's output); the decoder (`actionBiases`, `sequence_pos_encoder`, `seqTransDecoder`,
`finallayer`) attends from sinusoidal queries for frames 0..T-1 to that latent (memory of length 1).
Widths equal the latent size, as in MotionCLIP; optionally (our extension, for CPU training budgets)
the transformers are narrower, with a linear map to and from the latent (`latentProj`, `memoryProj`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

NJOINTS = 25  # 24 SMPL joints + translation
NFEATS = 6


@dataclass
class ModelConfig:
    latent_dim: int = 384  # = text embedding size (384 MiniLM, 512 CLIP)
    width: int | None = 256  # transformer width; None = latent_dim (MotionCLIP's layout)
    ff_size: int = 512
    num_heads: int = 4
    enc_layers: int = 2
    dec_layers: int = 3
    dropout: float = 0.1
    activation: str = "gelu"
    num_classes: int = 1
    normalize_encoder_output: bool = True
    normalize_decoder_input: bool = True
    # The decoder's memory is one token: after normalisation the latent is multiplied by this so it is
    # on the scale of the positional queries (training sets sqrt(width); None = 1, MotionCLIP's way).
    memory_scale: float | None = None
    # Memory tokens the latent is mapped to (1 = MotionCLIP). With several, cross-attention weights
    # depend on both the frame and the latent, which makes timing easier to learn than a constant bias.
    memory_tokens: int = 1
    norm_first: bool = False  # pre-norm transformer layers (same parameter names; MotionCLIP: post-norm)
    fps: float = 15.0  # frame rate the model works at (output is resampled to 30 fps)
    max_frames: int = 60  # longest window seen in training, in model frames
    text_encoder: str = "minilm"
    extra: dict = field(default_factory=dict)

    @property
    def model_width(self) -> int:
        return int(self.width or self.latent_dim)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


class PositionalEncoding(nn.Module):
    """Sinusoidal positions, (max_len, 1, d) as MotionCLIP; not saved (it is a pure function)."""

    def __init__(self, d_model: int, dropout: float = 0.1, max_len: int = 5000) -> None:
        super().__init__()
        self.dropout = nn.Dropout(p=dropout)
        pos = torch.arange(max_len, dtype=torch.float32)[:, None]
        freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, d_model)
        pe[:, 0::2] = torch.sin(pos * freq)
        pe[:, 1::2] = torch.cos(pos * freq)
        self.register_buffer("pe", pe[:, None, :], persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (seq, batch, d)
        return self.dropout(x + self.pe[: x.shape[0]])


class MotionEncoder(nn.Module):
    """MotionCLIP's Encoder_TRANSFORMER: motion (B, 25, 6, T) + mask (B, T) -> latent (B, d)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        d = cfg.model_width
        self.normalize_output = cfg.normalize_encoder_output
        self.muQuery = nn.Parameter(torch.randn(cfg.num_classes, d))
        self.sigmaQuery = nn.Parameter(torch.randn(cfg.num_classes, d))
        self.skelEmbedding = nn.Linear(NJOINTS * NFEATS, d)
        self.sequence_pos_encoder = PositionalEncoding(d, cfg.dropout)
        layer = nn.TransformerEncoderLayer(
            d, cfg.num_heads, cfg.ff_size, cfg.dropout, cfg.activation, norm_first=cfg.norm_first
        )
        self.seqTransEncoder = nn.TransformerEncoder(layer, cfg.enc_layers, enable_nested_tensor=False)
        # Our extension for a transformer narrower than the text space (absent in MotionCLIP's layout).
        self.latentProj = nn.Linear(d, cfg.latent_dim) if d != cfg.latent_dim else None

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        bs, nj, nf, nframes = x.shape
        h = self.skelEmbedding(x.permute(3, 0, 1, 2).reshape(nframes, bs, nj * nf))
        y = torch.zeros(bs, dtype=torch.long, device=x.device)  # one class: the text-conditioned model
        seq = torch.cat([self.muQuery[y][None], self.sigmaQuery[y][None], h], dim=0)
        seq = self.sequence_pos_encoder(seq)
        keep = torch.cat([torch.ones(bs, 2, dtype=torch.bool, device=x.device), mask], dim=1)
        mu = self.seqTransEncoder(seq, src_key_padding_mask=~keep)[0]
        if self.latentProj is not None:
            mu = self.latentProj(mu)
        return F.normalize(mu, dim=-1) if self.normalize_output else mu


class MotionDecoder(nn.Module):
    """MotionCLIP's Decoder_TRANSFORMER: latent (B, d) + number of frames -> motion (B, 25, 6, T)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        d = cfg.model_width
        self.normalize_input = cfg.normalize_decoder_input
        self.actionBiases = nn.Parameter(torch.randn(cfg.num_classes, d))  # kept for checkpoint layout
        self.sequence_pos_encoder = PositionalEncoding(d, cfg.dropout)
        layer = nn.TransformerDecoderLayer(
            d, cfg.num_heads, cfg.ff_size, cfg.dropout, cfg.activation, norm_first=cfg.norm_first
        )
        self.seqTransDecoder = nn.TransformerDecoder(layer, cfg.dec_layers)
        self.finallayer = nn.Linear(d, NJOINTS * NFEATS)
        self.memory_tokens = max(1, int(cfg.memory_tokens))
        need_proj = d != cfg.latent_dim or self.memory_tokens > 1
        self.memoryProj = nn.Linear(cfg.latent_dim, d * self.memory_tokens) if need_proj else None
        self.memory_scale = float(cfg.memory_scale or 1.0)

    def forward(self, z: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        bs, nframes = mask.shape
        if self.normalize_input:
            z = F.normalize(z, dim=-1)
        z = z * self.memory_scale
        if self.memoryProj is not None:
            z = self.memoryProj(z)
        width = self.finallayer.in_features
        queries = self.sequence_pos_encoder(torch.zeros(nframes, bs, width, device=z.device, dtype=z.dtype))
        # Padding frames are not masked as keys when the batch has none (the fast common case).
        pad = None if bool(mask.all()) else ~mask
        memory = z.reshape(bs, self.memory_tokens, -1).transpose(0, 1)  # (tokens, batch, width)
        out = self.seqTransDecoder(tgt=queries, memory=memory, tgt_key_padding_mask=pad)
        out = self.finallayer(out).reshape(nframes, bs, NJOINTS, NFEATS)
        out = out * mask.T[..., None, None]
        return out.permute(1, 2, 3, 0)


class MotionClipModel(nn.Module):
    """`encoder` + `decoder`, the two top-level names MotionCLIP's checkpoints use."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = MotionEncoder(cfg)
        self.decoder = MotionDecoder(cfg)

    def encode(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.encoder(x, mask)

    def decode(self, z: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.decoder(z, mask)


# --- features <-> motions ----------------------------------------------------------------------


def to_features(rot6d: torch.Tensor, trans: torch.Tensor) -> torch.Tensor:
    """(B, T, 24, 6) rotations + (B, T, 3) translation -> MotionCLIP's (B, 25, 6, T)."""
    pad = torch.zeros(*trans.shape[:-1], 3, dtype=trans.dtype, device=trans.device)
    x = torch.cat([rot6d, torch.cat([trans, pad], dim=-1)[..., None, :]], dim=-2)
    return x.permute(0, 2, 3, 1)


def from_features(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """MotionCLIP's (B, 25, 6, T) -> rotations (B, T, 24, 6) and translation (B, T, 3)."""
    x = x.permute(0, 3, 1, 2)
    return x[..., :24, :], x[..., 24, :3]


def lengths_to_mask(lengths: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    max_len = int(lengths.max()) if max_len is None else max_len
    return torch.arange(max_len, device=lengths.device)[None] < lengths[:, None]
