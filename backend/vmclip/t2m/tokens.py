"""The masked-token text-to-motion model: a motion tokenizer (1-D convolutional VQ-VAE) and a
text-conditioned masked transformer over its tokens (after MoMask). With `quantizers` > 1 the
tokenizer is a residual VQ (each layer quantises what the layers below left) and a second, residual
transformer predicts the upper layers' tokens from the base layer's (MoMask's two transformers).

Motions are turned into per-frame features that do not depend on where in the room or which way the
body faces (`motion_features`): the root's height, its ground velocity and turn rate in its own
heading frame, the root rotation without its heading, and 23 joints' local 6D rotations. The
tokenizer squeezes 4 frames into one of `codes` tokens, so it keeps the timing of a movement (the
MotionCLIP-style model squeezed 3 s into one vector and damped the motion). The transformer fills in
masked tokens given the text embedding; generation starts from all tokens masked and unmasks the
most confident ones over a few steps, with classifier-free guidance (the text dropped in training).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from vmclip.motion import rotations as R
from vmclip.motion.skeleton import MIRROR_INDEX

FEATURES = 148  # 1 height + 2 ground velocity + 1 turn rate + 6 root tilt + 23 x 6 joint rotations
DOWN = 4  # frames per token


@dataclass
class TokenConfig:
    fps: float = 20.0
    max_frames: int = 80  # longest window generated at once (model frames); a multiple of DOWN
    latent_dim: int = 384  # text embedding size
    text_encoder: str = "minilm"
    codes: int = 512  # tokenizer codebook size
    code_dim: int = 64
    # Residual VQ layers (1: one codebook, the first trained weights' layout). One 512-code layer
    # loses what the classifier reads in a fifth of the MotionCLIP-style model's motions (80 % -> 68 %
    # top-1 after reconstruction): the upper layers carry the detail the base code rounds away.
    quantizers: int = 1
    # In training, a batch uses only the first 1..V-1 layers with this chance (MoMask's quantizer
    # dropout), so every prefix of the layers decodes to a motion, the base layer alone included.
    quantizer_dropout: float = 0.2
    conv_width: int = 160
    width: int = 256  # transformer
    layers: int = 3
    heads: int = 4
    ff_size: int = 512
    dropout: float = 0.1
    # The text also added to every token's input, not only as the prefix token: a paraphrase far
    # from every training description still steers each token (off in the first trained weights).
    text_every_token: bool = False
    # What the transformer reads: "text" (the prompt's embedding) or "motionclip" (the MotionCLIP-style
    # model's latent of the window, drawn from its bank at generation: latent_condition.py).
    condition: str = "text"
    # With condition "motionclip": that model's own decoding of the latent (damped, but timed and
    # posed as the latent says), encoded by the tokenizer, is added to each token's input as a guide.
    guide: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def max_tokens(self) -> int:
        return self.max_frames // DOWN

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TokenConfig:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


# --- features ---------------------------------------------------------------------------------------


def _rot_y(angle: torch.Tensor) -> torch.Tensor:
    c, s = torch.cos(angle), torch.sin(angle)
    z, o = torch.zeros_like(c), torch.ones_like(c)
    return torch.stack(
        [torch.stack([c, z, s], -1), torch.stack([z, o, z], -1), torch.stack([-s, z, c], -1)], -2
    )


def _wrap(a: torch.Tensor) -> torch.Tensor:
    return torch.remainder(a + math.pi, 2 * math.pi) - math.pi


def motion_features(rot6d: torch.Tensor, trans: torch.Tensor) -> torch.Tensor:
    """(..., T, 24, 6) local rotations + (..., T, 3) root path -> (..., T, 148) features (T >= 2)."""
    root = R.rotation_6d_to_matrix(rot6d[..., 0, :])  # (..., T, 3, 3)
    yaw = torch.atan2(root[..., 0, 2], root[..., 2, 2])  # (..., T) where the body's +Z points
    unyaw = _rot_y(-yaw)
    tilt = R.matrix_to_rotation_6d(unyaw @ root)  # (..., T, 6)
    step = trans[..., 1:, :] - trans[..., :-1, :]
    step = torch.cat([step, step[..., -1:, :]], -2)  # last frame repeats the previous step
    vel = (unyaw @ step[..., None])[..., 0][..., [0, 2]]  # (..., T, 2) in the heading frame
    turn = _wrap(yaw[..., 1:] - yaw[..., :-1])
    turn = torch.cat([turn, turn[..., -1:]], -1)[..., None]  # (..., T, 1)
    joints = rot6d[..., 1:, :].flatten(-2)  # (..., T, 138)
    return torch.cat([trans[..., 1:2], vel, turn, tilt, joints], -1)


def features_to_motion(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(..., T, 148) features -> rotations (..., T, 24, 6) and root path (..., T, 3), starting at the
    ground origin facing +Z (differentiable)."""
    height, vel, turn, tilt = x[..., 0], x[..., 1:3], x[..., 3], x[..., 4:10]
    yaw = torch.cat([torch.zeros_like(turn[..., :1]), torch.cumsum(turn[..., :-1], -1)], -1)
    ry = _rot_y(yaw)  # (..., T, 3, 3)
    root = R.matrix_to_rotation_6d(ry @ R.rotation_6d_to_matrix(tilt))
    step3 = torch.stack([vel[..., 0], torch.zeros_like(vel[..., 0]), vel[..., 1]], -1)
    world = (ry @ step3[..., None])[..., 0]
    ground = torch.cat([torch.zeros_like(world[..., :1, :]), torch.cumsum(world[..., :-1, :], -2)], -2)
    trans = torch.stack([ground[..., 0], height, ground[..., 2]], -1)
    joints = x[..., 10:].unflatten(-1, (23, 6))
    return torch.cat([root[..., None, :], joints], -2), trans


def mirror_permutation() -> tuple[torch.Tensor, torch.Tensor]:
    """(index, sign) such that x[..., index] * sign is the left/right mirror of features x: joints
    swap sides and every rotation is conjugated by the X flip (6D = first two matrix rows)."""
    rot_sign = [1.0, -1.0, -1.0, -1.0, 1.0, 1.0]
    index = [0, 1, 2, 3] + list(range(4, 10))
    sign = [1.0, -1.0, 1.0, -1.0] + rot_sign
    for j in range(1, 24):
        src = MIRROR_INDEX[j]
        index += [10 + (src - 1) * 6 + k for k in range(6)]
        sign += rot_sign
    return torch.tensor(index), torch.tensor(sign)


# --- tokenizer (MDM-style small modules; shapes commented) -----------------------------------------


class ResBlock(nn.Module):
    """Dilated residual convolutions: (B, C, T) -> (B, C, T)."""

    def __init__(self, width: int, dilations: tuple[int, ...] = (1, 3, 9)) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Sequential(
                nn.ReLU(),
                nn.Conv1d(width, width, 3, padding=d, dilation=d),
                nn.ReLU(),
                nn.Conv1d(width, width, 1),
            )
            for d in dilations
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = x + conv(x)
        return x


class Quantizer(nn.Module):
    """Nearest-code quantisation with an EMA codebook (K, D); unused codes are re-seeded in training."""

    def __init__(self, codes: int, dim: int, decay: float = 0.99) -> None:
        super().__init__()
        self.decay = decay
        self.register_buffer("codebook", torch.randn(codes, dim) * 0.1)
        self.register_buffer("ema_count", torch.ones(codes))
        self.register_buffer("ema_sum", self.codebook.clone())

    def indices(self, z: torch.Tensor) -> torch.Tensor:
        """(N, D) -> (N,) nearest code."""
        dist = (z * z).sum(-1, keepdim=True) - 2 * z @ self.codebook.T + (self.codebook**2).sum(-1)[None]
        return dist.argmin(-1)

    def nearest(self, flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, D) -> nearest codes (N, D) (no gradient) and their ids (N,); updates the EMA codebook
        in training."""
        idx = self.indices(flat.detach())
        if self.training:
            self._update(flat.detach(), idx)
        return self.codebook[idx], idx

    @torch.no_grad()
    def _update(self, flat: torch.Tensor, idx: torch.Tensor) -> None:
        onehot = F.one_hot(idx, len(self.codebook)).to(flat.dtype)  # (N, K)
        self.ema_count.mul_(self.decay).add_(onehot.sum(0), alpha=1 - self.decay)
        self.ema_sum.mul_(self.decay).add_(onehot.T @ flat, alpha=1 - self.decay)
        self.codebook.copy_(self.ema_sum / self.ema_count.clamp(min=1e-5)[:, None])
        dead = self.ema_count < 1e-3
        if bool(dead.any()):  # re-seed dead codes at random encoder outputs (deterministic: torch RNG)
            pick = torch.randint(0, len(flat), (int(dead.sum()),))
            self.codebook[dead] = flat[pick]
            self.ema_sum[dead] = flat[pick]
            self.ema_count[dead] = 1.0

    def usage(self) -> float:
        return float((self.ema_count > 0.01).float().mean())


class Tokenizer(nn.Module):
    """Features (B, T, 148), T a multiple of 4 -> tokens (B, V, T/4) -> features (B, T, 148)."""

    def __init__(self, cfg: TokenConfig) -> None:
        super().__init__()
        w = cfg.conv_width
        self.register_buffer("mean", torch.zeros(FEATURES))
        self.register_buffer("std", torch.ones(FEATURES))
        down = [nn.Conv1d(FEATURES, w, 3, padding=1)]
        for _ in range(2):  # each halves the frame rate: 20 -> 10 -> 5 tokens per second
            down += [nn.Conv1d(w, w, 4, stride=2, padding=1), ResBlock(w)]
        self.encoder = nn.Sequential(*down, nn.ReLU(), nn.Conv1d(w, cfg.code_dim, 3, padding=1))
        self.cfg = cfg
        self.quantizer = Quantizer(cfg.codes, cfg.code_dim)  # the base layer
        self.residual = nn.ModuleList(Quantizer(cfg.codes, cfg.code_dim) for _ in range(cfg.quantizers - 1))
        up = [nn.Conv1d(cfg.code_dim, w, 3, padding=1)]
        for _ in range(2):
            up += [ResBlock(w), nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv1d(w, w, 3, padding=1)]
        self.decoder = nn.Sequential(
            *up, nn.ReLU(), nn.Conv1d(w, w, 3, padding=1), nn.ReLU(), nn.Conv1d(w, FEATURES, 3, padding=1)
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, 148) raw features -> (B, D, T/4) continuous codes."""
        return self.encoder(((x - self.mean) / self.std).transpose(1, 2))

    @property
    def layers(self) -> list[Quantizer]:
        """The residual VQ's quantizers, base layer first."""
        return [self.quantizer, *self.residual]

    def quantize(self, z: torch.Tensor, n_layers: int | None = None) -> tuple:
        """z (B, D, T') -> quantised (B, D, T') (straight-through), ids (B, V, T'), commitment loss,
        using the first `n_layers` layers (all by default): each quantises the residual left by the
        layers below it."""
        b, d, n = z.shape
        flat = z.transpose(1, 2).reshape(-1, d)  # (B*T', D)
        rest, total = flat, torch.zeros_like(flat)
        ids, commit = [], flat.new_zeros(())
        for layer in self.layers[: n_layers or len(self.layers)]:
            code, idx = layer.nearest(rest)
            commit = commit + F.mse_loss(rest, code.detach())
            rest = rest - code.detach()
            total = total + code
            ids.append(idx.reshape(b, n))
        q = flat + (total - flat).detach()
        return q.reshape(b, n, d).transpose(1, 2), torch.stack(ids, 1), commit

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, T, 148) -> reconstruction (B, T, 148), tokens (B, V, T/4), commitment loss. In training
        with several layers, a share of batches drops the upper layers (quantizer dropout)."""
        n_layers = None
        if self.training and len(self.residual) and float(torch.rand(())) < self.cfg.quantizer_dropout:
            n_layers = int(torch.randint(1, len(self.layers), ()))
        q, idx, commit = self.quantize(self.encode(x), n_layers)
        return self.decode_latent(q), idx, commit

    @torch.no_grad()
    def all_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, 148) raw features -> every layer's token ids (B, V, T/4)."""
        return self.quantize(self.encode(x))[1]

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, 148) raw features -> the base layer's token ids (B, T/4)."""
        z = self.encode(x)  # (B, D, T')
        flat = z.transpose(1, 2).reshape(-1, z.shape[1])
        return self.quantizer.indices(flat).reshape(z.shape[0], -1)

    def decode_latent(self, q: torch.Tensor) -> torch.Tensor:
        """(B, D, T') -> raw features (B, 4T', 148)."""
        return self.decoder(q).transpose(1, 2) * self.std + self.mean

    def decode_tokens(self, idx: torch.Tensor) -> torch.Tensor:
        """Token ids (B, T') of the base layer, or (B, V', T') of the first V' layers -> raw features
        (B, 4T', 148): the sum of the layers' codes, decoded."""
        if idx.dim() == 2:
            idx = idx[:, None]
        q = sum(layer.codebook[idx[:, j]] for j, layer in enumerate(self.layers[: idx.shape[1]]))
        return self.decode_latent(q.transpose(1, 2))


# --- masked transformer -------------------------------------------------------------------------------


class MaskedTransformer(nn.Module):
    """Text embedding (B, 384) + tokens (B, N) with some set to MASK -> logits (B, N, K).

    The text is a prefix token (a learned "no text" vector replaces it when dropped, for guidance);
    padding tokens beyond a motion's length are ignored as keys."""

    def __init__(self, cfg: TokenConfig) -> None:
        super().__init__()
        self.mask_id, self.pad_id = cfg.codes, cfg.codes + 1
        d = cfg.width
        self.tok = nn.Embedding(cfg.codes + 2, d)
        self.pos = nn.Parameter(torch.randn(cfg.max_tokens + 1, d) * 0.02)
        self.text_proj = nn.Linear(cfg.latent_dim, d)
        self.null_text = nn.Parameter(torch.zeros(d))
        self.text_add = nn.Linear(cfg.latent_dim, d) if cfg.text_every_token else None
        self.guide_proj = nn.Linear(cfg.code_dim + 1, d) if cfg.guide else None  # (+1: "has a guide")
        layer = nn.TransformerEncoderLayer(
            d, cfg.heads, cfg.ff_size, cfg.dropout, "gelu", batch_first=True, norm_first=True
        )
        self.body = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, cfg.codes)

    def forward(
        self,
        text: torch.Tensor,
        tokens: torch.Tensor,
        keep_text: torch.Tensor,
        guide: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """text (B, 384), tokens (B, N), keep_text (B,) bool, guide (B, N, code_dim + 1) or None ->
        logits (B, N, K). The guide is dropped with the text."""
        b, n = tokens.shape
        t = torch.where(keep_text[:, None], self.text_proj(text), self.null_text[None])  # (B, d)
        seq = torch.cat([t[:, None], self.tok(tokens)], 1) + self.pos[None, : n + 1]  # (B, N+1, d)
        keep = keep_text[:, None].to(text.dtype)  # (B, 1)
        if self.text_add is not None:
            seq = seq + (self.text_add(text) * keep)[:, None]  # (B, N+1, d), none when dropped
        if self.guide_proj is not None and guide is not None:
            seq = seq + F.pad(self.guide_proj(guide) * keep[:, None], (0, 0, 1, 0))  # (B, N+1, d)
        pad = torch.cat([torch.zeros(b, 1, dtype=torch.bool, device=tokens.device), tokens == self.pad_id], 1)
        h = self.body(seq, src_key_padding_mask=pad if bool(pad.any()) else None)
        return self.head(self.norm(h[:, 1:]))


class ResidualTransformer(nn.Module):
    """The upper layers of a residual-VQ tokenizer, one layer at a time (MoMask's residual transformer):
    condition (B, 384) + the sum of layers 0..j-1's code embeddings (B, N, d) + layer j's embedding ->
    logits of layer j's tokens (B, N, K). Every position is predicted at once (no masking)."""

    def __init__(self, cfg: TokenConfig) -> None:
        super().__init__()
        self.pad_id = cfg.codes
        d, upper = cfg.width, cfg.quantizers - 1
        self.tok = nn.ModuleList(nn.Embedding(cfg.codes + 1, d) for _ in range(upper))  # layers 0..V-2
        self.layer = nn.Embedding(upper, d)  # which layer is predicted (1..V-1 -> 0..V-2)
        self.pos = nn.Parameter(torch.randn(cfg.max_tokens + 1, d) * 0.02)
        self.text_proj = nn.Linear(cfg.latent_dim, d)
        self.null_text = nn.Parameter(torch.zeros(d))
        layer = nn.TransformerEncoderLayer(
            d, cfg.heads, cfg.ff_size, cfg.dropout, "gelu", batch_first=True, norm_first=True
        )
        self.body = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.heads = nn.ModuleList(nn.Linear(d, cfg.codes) for _ in range(upper))  # layers 1..V-1

    def forward(
        self, cond: torch.Tensor, ids: torch.Tensor, layer: int, keep_cond: torch.Tensor
    ) -> torch.Tensor:
        """cond (B, 384), ids (B, >= layer, N) of the layers below `layer` (pad_id beyond a motion's
        length), keep_cond (B,) bool -> logits (B, N, K) of layer `layer` (1..V-1)."""
        b, _, n = ids.shape
        below = sum(self.tok[j](ids[:, j]) for j in range(layer))  # (B, N, d)
        t = torch.where(keep_cond[:, None], self.text_proj(cond), self.null_text[None])  # (B, d)
        seq = torch.cat([t[:, None], below], 1) + self.pos[None, : n + 1]  # (B, N+1, d)
        seq = seq + self.layer.weight[layer - 1]
        pad = F.pad(ids[:, 0] == self.pad_id, (1, 0))  # (B, N+1)
        h = self.body(seq, src_key_padding_mask=pad if bool(pad.any()) else None)
        return self.heads[layer - 1](self.norm(h[:, 1:]))

    @torch.no_grad()
    def complete(self, cond: torch.Tensor, base: torch.Tensor, guidance: float = 1.0) -> torch.Tensor:
        """cond (B, 384), base-layer ids (B, N) -> every layer's ids (B, V, N), each upper layer the most
        likely given the layers below (with classifier-free guidance above 1)."""
        b = len(cond)
        ids = base[:, None]
        both = torch.cat([torch.ones(b, dtype=torch.bool), torch.zeros(b, dtype=torch.bool)]).to(cond.device)
        for layer in range(1, len(self.heads) + 1):
            logits = self(torch.cat([cond, cond]), torch.cat([ids, ids]), layer, both)
            logits = logits[b:] + guidance * (logits[:b] - logits[b:])  # (B, N, K)
            ids = torch.cat([ids, logits.argmax(-1)[:, None]], 1)
        return ids


class MaskedMotionModel(nn.Module):
    """`tokenizer` + `transformer` (+ `residual` with several quantizers): the shipped model file."""

    def __init__(self, cfg: TokenConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tokenizer = Tokenizer(cfg)
        self.transformer = MaskedTransformer(cfg)
        self.residual = ResidualTransformer(cfg) if cfg.quantizers > 1 else None

    @torch.no_grad()
    def sample(
        self,
        text: torch.Tensor,
        n_tokens: int,
        generators: list[torch.Generator],
        steps: int = 10,
        guidance: float = 4.0,
        temperature: float = 1.0,
        top_fraction: float = 0.9,
        held: torch.Tensor | None = None,
        choice_noise: float = 0.0,
        guide: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """text (B, 384) -> token ids (B, n_tokens) by iterative unmasking (one RNG per sample);
        `held` (B, n_tokens), -1 where free, gives tokens that stay as they are (in-painting);
        `guide` (B, n_tokens, code_dim + 1) is the transformer's guide input."""
        b, k = len(text), self.cfg.codes
        tokens = torch.full((b, n_tokens), self.transformer.mask_id, dtype=torch.long, device=text.device)
        if held is not None:
            tokens = torch.where(held >= 0, held, tokens)
        free = (tokens == self.transformer.mask_id).sum(1, keepdim=True)  # (B, 1)
        cond = torch.cat([torch.ones(b, dtype=torch.bool), torch.zeros(b, dtype=torch.bool)]).to(text.device)
        for s in range(steps):
            both = None if guide is None else torch.cat([guide, guide])
            logits = self.transformer(torch.cat([text, text]), torch.cat([tokens, tokens]), cond, both)
            logits = logits[b:] + guidance * (logits[:b] - logits[b:])  # (B, N, K)
            # Keep the most likely codes (a top-k of top_fraction of the codebook's span is too wide).
            kth = logits.topk(max(1, int(round(k * (1 - top_fraction)))), -1).values[..., -1:]
            logits = logits.masked_fill(logits < kth, -float("inf")) / max(temperature, 1e-4)
            u = torch.stack([torch.rand(n_tokens, k, generator=g) for g in generators]).to(text.device)
            gumbel = -torch.log(-torch.log(u.clamp(1e-9, 1 - 1e-9)))
            pred = (logits + gumbel).argmax(-1)  # (B, N)
            conf = torch.log_softmax(logits, -1).gather(-1, pred[..., None])[..., 0]
            if choice_noise > 0:  # MaskGIT's randomised choice: not always the most frequent codes first
                v = torch.stack([torch.rand(n_tokens, generator=g) for g in generators]).to(text.device)
                conf = conf + choice_noise * (1 - (s + 1) / steps) * -torch.log(
                    -torch.log(v.clamp(1e-9, 1 - 1e-9))
                )
            masked = tokens == self.transformer.mask_id
            tokens = torch.where(masked, pred, tokens)
            conf = torch.where(masked, conf, torch.full_like(conf, math.inf))
            # Free tokens left masked after this step (cosine schedule); the least confident go back.
            remask = torch.floor(free * math.cos(math.pi / 2 * (s + 1) / steps)).long()  # (B, 1)
            if bool((remask > 0).any()):
                rank = conf.argsort(-1).argsort(-1)  # 0 = least confident
                tokens = torch.where(rank < remask, torch.full_like(tokens, self.transformer.mask_id), tokens)
        return tokens
