"""Training the masked-token model: `vmclip train --model masked --data data/processed --out DIR`.

Phases in one command: the tokenizer (VQ-VAE, `tokenizer_steps`), then the masked transformer on the
base tokens of every training clip and its mirror (`transformer_steps`), and with a residual VQ the
residual transformer on the upper layers' tokens (`residual_steps`). Seeded: the same seed,
data and step counts give the same weights on the same machine. Data come from a pack
(`pack.build_pack`, DIR/pack.npz, made from the processed data set when missing). Writes
DIR/train_log.jsonl, DIR/hparams.json and DIR/model.pt (the shipped format, fp16).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vmclip.devices import choose_device, native_bf16
from vmclip.errors import InputError
from vmclip.fileio import atomic_output
from vmclip.t2m.latent_condition import CONDITIONS
from vmclip.t2m.pack import Pack, build_pack, load_pack
from vmclip.t2m.tokens import DOWN, MaskedMotionModel, TokenConfig, features_to_motion, mirror_permutation

FORMAT = "vmclip-t2m-masked"


@dataclass
class MaskedOptions:
    data: Path  # processed data set folder, or a pack .npz
    out: Path
    seed: int = 0
    threads: int | None = 1
    minutes: float | None = None  # safety cap over both phases (the step counts decide the weights)
    tokenizer_steps: int = 6000
    transformer_steps: int = 12000
    residual_steps: int = 4000  # the residual transformer (with quantizers > 1)
    tok_batch: int = 32
    tok_frames: int = 48
    tok_lr: float = 5e-4
    batch: int = 64
    lr: float = 4e-4
    warmup: int = 300
    text_drop: float = 0.1
    position_weight: float = 2.0
    velocity_weight: float = 1.0
    commit_weight: float = 0.02
    log_every: int = 100
    # bfloat16 autocast for the transformers where the device runs it natively (CPUs with AVX-512
    # BF16: 1.6x faster; elsewhere it is emulated and slower, so float32 is used: `native_bf16`).
    bf16: bool = True
    # Gaussian noise (per dimension) on the unit text embedding, renormalised: 0.04 moves a description
    # to cosine ~0.8 of itself, where MiniLM puts many paraphrases of it, so the model learns the
    # neighbourhood of each description rather than the point.
    text_noise: float = 0.0
    init: Path | None = None  # start from this masked model file (tokenizer and transformer weights)
    device: str | None = None  # torch device (default: cuda when available, else cpu)
    quiet: bool = False
    model: dict = field(default_factory=dict)  # TokenConfig overrides


def _lr(step: int, total: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    frac = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))


class ClipSampler:
    """Seeded clips (long takes capped at 3 windows' worth, frequent descriptions damped by
    1/sqrt(count), as the MotionCLIP-style model's sampler) and mirror flags."""

    def __init__(self, pack: Pack, window: int, min_len: int, rng: np.random.Generator) -> None:
        lengths = np.array([pack.length(i) for i in range(len(pack))], float)
        counts: dict[str, int] = {}
        for k in pack.keys:
            counts[k] = counts.get(k, 0) + 1
        weight = np.minimum(lengths / window, 3.0) / np.sqrt([counts[k] for k in pack.keys])
        weight[lengths < min_len] = 0
        if weight.sum() <= 0:
            raise InputError("training pack has no clip long enough")
        self.p = weight / weight.sum()
        self.rng = rng

    def draw(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        return self.rng.choice(len(self.p), size=n, p=self.p), self.rng.random(n) < 0.5


def _positions(x: torch.Tensor) -> torch.Tensor:
    """(B, T, 148) features -> (B, T, 25, 3): pelvis-relative joints + the pelvis path."""
    from vmclip.motion import rotations as R
    from vmclip.motion.kinematics import forward_kinematics

    rot, trans = features_to_motion(x)
    pos, _ = forward_kinematics(R.rotation_6d_to_matrix(rot), trans)
    return torch.cat([pos[..., 1:, :] - pos[..., :1, :], pos[..., :1, :]], -2)


def _tok_batch(pack: Pack, sampler: ClipSampler, opts: MaskedOptions, mirror: tuple) -> torch.Tensor:
    clips, flip = sampler.draw(opts.tok_batch)
    out = np.zeros((opts.tok_batch, opts.tok_frames, 148), np.float32)
    for b, i in enumerate(clips):
        start = int(sampler.rng.integers(0, pack.length(int(i)) - opts.tok_frames + 1))
        out[b] = pack.clip(int(i))[start : start + opts.tok_frames]
    x = torch.from_numpy(out)
    flip_t = torch.from_numpy(flip)
    return torch.where(flip_t[:, None, None], x[..., mirror[0]] * mirror[1], x)


def _tok_loss(model: MaskedMotionModel, x: torch.Tensor, opts: MaskedOptions) -> dict[str, torch.Tensor]:
    tok = model.tokenizer
    rec, _, commit = tok(x)
    norm = lambda v: (v - tok.mean) / tok.std  # noqa: E731
    feat = F.smooth_l1_loss(norm(rec), norm(x))
    vel = F.smooth_l1_loss(norm(rec)[:, 1:] - norm(rec)[:, :-1], norm(x)[:, 1:] - norm(x)[:, :-1])
    p_rec, p_x = _positions(rec), _positions(x)
    pos = F.mse_loss(p_rec, p_x)
    pos_vel = F.mse_loss(p_rec[:, 1:] - p_rec[:, :-1], p_x[:, 1:] - p_x[:, :-1]) * 20.0
    total = (
        feat
        + opts.velocity_weight * (vel + pos_vel)
        + opts.position_weight * pos
        + opts.commit_weight * commit
    )
    return {"total": total, "feat": feat, "vel": vel, "pos": pos, "pos_vel": pos_vel, "commit": commit}


def _log(path: Path, row: dict, say) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row) + "\n")
    say(" ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))


def train_tokenizer(
    model: MaskedMotionModel, pack: Pack, opts: MaskedOptions, log: Path, say, deadline
) -> int:
    """Phase 1: the VQ-VAE on random windows (mirrored half the time). Returns the steps done."""
    feats = torch.from_numpy(pack.feats.astype(np.float32)).to(model.tokenizer.mean.device)
    if opts.init is None:  # (a started model keeps the statistics its codebook was learnt in)
        model.tokenizer.mean.copy_(feats.mean(0))
        model.tokenizer.std.copy_(feats.std(0).clamp(min=0.02))
    mirror = mirror_permutation()
    sampler = ClipSampler(pack, opts.tok_frames, opts.tok_frames, np.random.default_rng(opts.seed))
    params = [p for p in model.tokenizer.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(params, lr=opts.tok_lr, weight_decay=0.0)
    model.tokenizer.train()
    running: dict[str, float] = {}
    t0 = time.time()
    for step in range(opts.tokenizer_steps):
        for g in optim.param_groups:
            g["lr"] = _lr(step, opts.tokenizer_steps, opts.tok_lr, opts.warmup)
        x = _tok_batch(pack, sampler, opts, mirror).to(feats.device)
        losses = _tok_loss(model, x, opts)
        optim.zero_grad(set_to_none=True)
        losses["total"].backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optim.step()
        for k, v in losses.items():
            running[k] = running.get(k, 0.0) + float(v.detach())
        if (step + 1) % opts.log_every == 0:
            row = {"phase": "tokenizer", "step": step + 1, "seconds": round(time.time() - t0, 1)}
            row.update({k: v / opts.log_every for k, v in running.items()})
            row["code_usage"] = model.tokenizer.quantizer.usage()
            if model.tokenizer.residual:
                row["top_code_usage"] = model.tokenizer.layers[-1].usage()
            _log(log, row, say)
            running = {}
        if deadline is not None and time.time() > deadline:
            say(f"time cap reached in the tokenizer phase at step {step + 1}")
            return step + 1
    return opts.tokenizer_steps


@torch.no_grad()
def clip_tokens(model: MaskedMotionModel, pack: Pack) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Every layer's token ids (V, T') of every clip and of its mirror (clips padded to a multiple of
    4 frames)."""
    model.tokenizer.eval()
    idx, sign = mirror_permutation()
    plain, mirrored = [], []
    for i in range(len(pack)):
        x = torch.from_numpy(pack.clip(i).astype(np.float32)).to(model.tokenizer.mean.device)
        pad = (-len(x)) % DOWN
        x = torch.cat([x, x[-1:].expand(pad, -1)])[None]
        plain.append(model.tokenizer.all_tokens(x)[0])
        mirrored.append(model.tokenizer.all_tokens(x[..., idx] * sign)[0])
    return plain, mirrored


@torch.no_grad()
def clip_latents(pack: Pack, device: torch.device, say, tokenizer=None) -> tuple:
    """The condition of a "motionclip"-conditioned model: per clip and per mirrored clip, the shipped
    MotionCLIP-style model's latent of the window starting at each token (latent_condition.py);
    that model's bank fingerprint; and with a `tokenizer`, per clip and mirror the guide of each
    token's latent (decoded_guide, (tokens, G, code_dim)), else None."""
    from vmclip.t2m.latent_condition import (
        bank_fingerprint,
        decoded_guide,
        load_condition_model,
        token_latents,
    )

    gen = load_condition_model(device)
    idx, sign = mirror_permutation()
    plain, mirrored = [], []
    t0 = time.time()
    for i in range(len(pack)):
        x = pack.clip(i).astype(np.float32)
        plain.append(token_latents(gen, x, pack.fps).half())
        mirrored.append(token_latents(gen, x[:, idx.numpy()] * sign.numpy(), pack.fps).half())
    say(f"motion latents of {len(pack)} clips and their mirrors in {time.time() - t0:.0f} s")
    guides = None
    if tokenizer is not None:
        tokenizer.eval()
        t0 = time.time()
        guides = tuple(
            [decoded_guide(gen, z.float(), tokenizer, pack.fps).half().cpu() for z in side]
            for side in (plain, mirrored)
        )
        say(f"their decoded guides in {time.time() - t0:.0f} s")
    return plain, mirrored, bank_fingerprint(gen.bank), guides


def _mask_batch(
    model: MaskedMotionModel,
    tokens: tuple,
    pack: Pack,
    sampler: ClipSampler,
    opts: MaskedOptions,
    latents: tuple | None = None,
    guides: tuple | None = None,
) -> tuple:
    """(condition (B, D), input ids (B, N), targets (B, N) with -100 where not predicted, keep (B,),
    guide (B, N, code_dim + 1) or None). The condition is one of the clip's text embeddings, or with
    `latents` (clip_latents) the motion latent of the window's first token; `guides` give that
    latent's decoded guide."""
    cfg, tr, rng = model.cfg, model.transformer, sampler.rng
    clips, flip = sampler.draw(opts.batch)
    n_max = cfg.max_tokens
    ids = torch.full((opts.batch, n_max), tr.pad_id, dtype=torch.long)
    text = torch.zeros(opts.batch, pack.text_emb.shape[1])
    guide = None if guides is None else torch.zeros(opts.batch, n_max, cfg.code_dim + 1)
    for b, (i, f) in enumerate(zip(clips, flip, strict=True)):
        seq = (tokens[1] if f else tokens[0])[int(i)][0]  # the base layer
        top = min(n_max, len(seq))
        length = top if rng.random() < 0.6 else int(rng.integers(min(2, top), top + 1))
        start = int(rng.integers(0, len(seq) - length + 1))
        ids[b, :length] = seq[start : start + length]
        if latents is not None:
            text[b] = latents[1 if f else 0][int(i)][start].float()
            if guide is not None:
                g = guides[1 if f else 0][int(i)][start]  # (G, code_dim)
                k = min(length, len(g))
                guide[b, :k, :-1], guide[b, :k, -1] = g[:k].float(), 1.0
            continue
        choices = (pack.mirror_ids if f else pack.text_ids)[int(i)]
        text[b] = torch.from_numpy(pack.text_emb[int(rng.choice(choices))].astype(np.float32))
    valid = ids != tr.pad_id
    lengths = valid.sum(1)
    ratio = torch.cos(torch.from_numpy(rng.random(opts.batch)).float() * math.pi / 2)
    n_mask = (ratio * lengths).ceil().clamp(min=1)
    score = torch.from_numpy(rng.random((opts.batch, n_max))).float().masked_fill(~valid, 2.0)
    rank = score.argsort(1).argsort(1)
    masked = (rank < n_mask[:, None]) & valid
    target = torch.where(masked, ids, torch.full_like(ids, -100))
    roll = torch.from_numpy(rng.random((opts.batch, n_max))).float()
    random_ids = torch.from_numpy(rng.integers(0, cfg.codes, (opts.batch, n_max)))
    inp = torch.where(masked & (roll < 0.8), torch.full_like(ids, tr.mask_id), ids)
    inp = torch.where(masked & (roll >= 0.8) & (roll < 0.9), random_ids, inp)
    keep_text = torch.from_numpy(rng.random(opts.batch) >= opts.text_drop)
    if opts.text_noise > 0:
        noise = torch.from_numpy(rng.standard_normal(text.shape)).float() * opts.text_noise
        text = F.normalize(text + noise * torch.from_numpy(rng.random((opts.batch, 1))).float(), dim=-1)
    return text, inp, target, keep_text, guide


def _token_loop(
    phase: str, net: torch.nn.Module, steps: int, opts: MaskedOptions, log: Path, say, deadline, predict
) -> int:
    """The optimisation shared by the token-predicting phases: `predict()` gives one batch's logits
    (B, N, K) and targets (B, N) (-100 where not scored); label-smoothed cross-entropy, AdamW with
    warm-up and cosine decay, logged every `log_every` steps. Returns the steps done."""
    params = list(net.parameters())
    optim = torch.optim.AdamW(params, lr=opts.lr, weight_decay=0.01, betas=(0.9, 0.99))
    net.train()
    running: dict[str, float] = {}
    t0 = time.time()
    for step in range(steps):
        for g in optim.param_groups:
            g["lr"] = _lr(step, steps, opts.lr, opts.warmup)
        logits, target = predict()
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), label_smoothing=0.1)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optim.step()
        hit = (logits.argmax(-1) == target).float().sum() / (target >= 0).sum().clamp(min=1)
        running["ce"] = running.get("ce", 0.0) + float(loss.detach())
        running["acc"] = running.get("acc", 0.0) + float(hit)
        if (step + 1) % opts.log_every == 0:
            row = {"phase": phase, "step": step + 1, "seconds": round(time.time() - t0, 1)}
            row.update({k: v / opts.log_every for k, v in running.items()})
            _log(log, row, say)
            running = {}
        if deadline is not None and time.time() > deadline:
            say(f"time cap reached in the {phase} phase at step {step + 1}")
            return step + 1
    return steps


def train_transformer(
    model: MaskedMotionModel,
    pack: Pack,
    tokens: tuple,
    opts: MaskedOptions,
    log: Path,
    say,
    deadline,
    latents: tuple | None = None,
    guides: tuple | None = None,
) -> int:
    """Phase 2: masked token prediction given the condition (dropped a tenth of the time, for
    guidance): the text, or with `latents` the window's motion latent (and `guides` its guide)."""
    sampler = ClipSampler(pack, model.cfg.max_frames, 2 * DOWN, np.random.default_rng(opts.seed + 1))
    dev = model.transformer.pos.device

    def predict() -> tuple[torch.Tensor, torch.Tensor]:
        text, inp, target, keep, guide = _mask_batch(model, tokens, pack, sampler, opts, latents, guides)
        text, inp, target, keep = (v.to(dev) for v in (text, inp, target, keep))
        guide = None if guide is None else guide.to(dev)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=opts.bf16):
            return model.transformer(text, inp, keep, guide).float(), target

    return _token_loop(
        "transformer", model.transformer, opts.transformer_steps, opts, log, say, deadline, predict
    )


def _residual_batch(
    model: MaskedMotionModel, tokens: tuple, pack: Pack, sampler: ClipSampler, opts: MaskedOptions, latents
) -> tuple:
    """(condition (B, D), every layer's ids (B, V, N) padded, the layer to predict, keep (B,)): windows
    drawn as for the masked transformer, one predicted layer per batch."""
    cfg, rng = model.cfg, sampler.rng
    clips, flip = sampler.draw(opts.batch)
    n_max, pad_id = cfg.max_tokens, model.residual.pad_id
    ids = torch.full((opts.batch, cfg.quantizers, n_max), pad_id, dtype=torch.long)
    cond = torch.zeros(opts.batch, pack.text_emb.shape[1])
    for b, (i, f) in enumerate(zip(clips, flip, strict=True)):
        seq = (tokens[1] if f else tokens[0])[int(i)]  # (V, T')
        length = min(n_max, seq.shape[1])
        start = int(rng.integers(0, seq.shape[1] - length + 1))
        ids[b, :, :length] = seq[:, start : start + length]
        if latents is not None:
            cond[b] = latents[1 if f else 0][int(i)][start].float()
        else:
            choices = (pack.mirror_ids if f else pack.text_ids)[int(i)]
            cond[b] = torch.from_numpy(pack.text_emb[int(rng.choice(choices))].astype(np.float32))
    layer = int(rng.integers(1, cfg.quantizers))
    keep = torch.from_numpy(rng.random(opts.batch) >= opts.text_drop)
    return cond, ids, layer, keep


def train_residual(
    model: MaskedMotionModel,
    pack: Pack,
    tokens: tuple,
    opts: MaskedOptions,
    log: Path,
    say,
    deadline,
    latents,
) -> int:
    """Phase 3 (with quantizers > 1): the residual transformer predicts each upper layer's tokens from
    the layers below and the condition."""
    if model.residual is None or opts.residual_steps < 1:
        return 0
    sampler = ClipSampler(pack, model.cfg.max_frames, 2 * DOWN, np.random.default_rng(opts.seed + 2))
    dev, pad_id = model.residual.pos.device, model.residual.pad_id

    def predict() -> tuple[torch.Tensor, torch.Tensor]:
        cond, ids, layer, keep = _residual_batch(model, tokens, pack, sampler, opts, latents)
        cond, ids, keep = cond.to(dev), ids.to(dev), keep.to(dev)
        target = ids[:, layer].masked_fill(ids[:, layer] == pad_id, -100)  # (B, N)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=opts.bf16):
            return model.residual(cond, ids, layer, keep).float(), target

    return _token_loop("residual", model.residual, opts.residual_steps, opts, log, say, deadline, predict)


def export_masked(model: MaskedMotionModel, pack: Pack, path: Path, info: dict) -> Path:
    """The shipped format: fp16 weights (codebook and feature statistics in fp32), config, and the
    embeddings of the (augmented) training descriptions (a prompt that is one of them is generated
    whole, as with the MotionCLIP-style model)."""
    keep32 = ("tokenizer.mean", "tokenizer.std")  # and every codebook (the residual layers' are small)
    state = {
        k: (v.detach().float() if k in keep32 or k.endswith(".codebook") else v.detach().half())
        for k, v in model.state_dict().items()
        if "ema_" not in k
    }
    obj = {
        "format": FORMAT,
        "version": 1,
        "config": model.cfg.to_dict(),
        "state_dict": state,
        "descriptions": {"texts": list(pack.texts), "emb": torch.from_numpy(pack.text_emb).half()},
        "info": info,
    }
    with atomic_output(path) as tmp:
        torch.save(obj, tmp)
    return path


def _pack_for(opts: MaskedOptions, cfg: TokenConfig, say) -> Pack:
    data = Path(opts.data)
    if data.is_file():
        return load_pack(data)
    path = Path(opts.out) / "pack.npz"
    if not path.is_file():
        say(f"packing {data} -> {path} ...")
        build_pack(data, path, fps=cfg.fps, encoder=cfg.text_encoder)
    return load_pack(path)


def _load_init(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: --init model file not found")
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # (a torch.load failure names no single exception type)
        raise InputError(f"{path}: not a readable model file ({type(exc).__name__})") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise InputError(f"{path}: not a masked-token model file (`vmclip train --model masked` writes one)")
    return obj


def _start_from(model: MaskedMotionModel, state: dict) -> None:
    """Load a trained model's weights; parts it lacks (the every-token text map) keep their start:
    zero for that map, so the loaded model behaves exactly as before its first step."""
    for added in (model.transformer.text_add, model.transformer.guide_proj):
        if added is not None:
            torch.nn.init.zeros_(added.weight)
            torch.nn.init.zeros_(added.bias)
    try:
        missing, unexpected = model.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
    except RuntimeError:
        raise InputError("--init model has other layer sizes than the model asked for") from None
    kept = ("ema_", "text_add", "guide_proj", "residual.")  # parts an older model may lack
    if unexpected or any(not any(part in k for part in kept) for k in missing):
        raise InputError("--init model does not fit the model asked for")


def train_masked(opts: MaskedOptions) -> dict:
    """Both phases and the export (see the module doc)."""
    if opts.tokenizer_steps < (0 if opts.init else 1) or opts.transformer_steps < 1:
        raise InputError(
            "--transformer-steps must be at least 1, and --tokenizer-steps too (0 only with --init)"
        )
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    if opts.threads:
        torch.set_num_threads(opts.threads)
    say = (lambda *a: None) if opts.quiet else (lambda *a: print(*a, flush=True))
    start = _load_init(opts.init) if opts.init else None
    cfg = TokenConfig(**{**(start["config"] if start else {}), **opts.model})
    if cfg.max_frames % DOWN:
        raise InputError(f"window of {cfg.max_frames} frames is not a multiple of {DOWN}")
    if cfg.condition not in CONDITIONS:
        raise InputError(f"condition {cfg.condition!r}: choose one of {', '.join(CONDITIONS)}")
    pack = _pack_for(opts, cfg, say)
    if abs(pack.fps - cfg.fps) > 1e-6 or pack.encoder != cfg.text_encoder:
        raise InputError(
            f"pack is {pack.fps:g} fps / {pack.encoder}; the model wants {cfg.fps:g} / {cfg.text_encoder}"
        )
    torch.manual_seed(opts.seed)
    model = MaskedMotionModel(cfg)
    if start:
        _start_from(model, start["state_dict"])
    device = choose_device(opts.device)
    model.to(device)
    if opts.bf16 and not native_bf16(device):
        say(f"bfloat16 is not native on {device}: training in float32")
        opts = replace(opts, bf16=False)
    hparams = {
        **asdict(opts),
        **{k: str(getattr(opts, k)) for k in ("data", "out", "init") if getattr(opts, k) is not None},
        "config": cfg.to_dict(),
    }
    (out / "hparams.json").write_text(json.dumps(hparams, indent=1) + "\n")
    log = out / "train_log.jsonl"
    log.write_text("")
    t0 = time.time()
    deadline = t0 + opts.minutes * 60 if opts.minutes else None
    tok_steps = train_tokenizer(model, pack, opts, log, say, deadline)
    tokens = clip_tokens(model, pack)
    latents = guides = None
    if cfg.condition == "motionclip":
        tok = model.tokenizer if cfg.guide else None
        *latents, fingerprint, guides = clip_latents(pack, model.tokenizer.mean.device, say, tok)
        cfg.extra["motionclip_bank"] = fingerprint  # (model.cfg is cfg: exported with the weights)
    elif cfg.guide:
        raise InputError("--guide needs --condition motionclip")
    t_tok = time.time() - t0
    tr_steps = train_transformer(model, pack, tokens, opts, log, say, deadline, latents, guides)
    res_steps = train_residual(model, pack, tokens, opts, log, say, deadline, latents)
    info = {
        "tokenizer_steps": tok_steps,
        "transformer_steps": tr_steps,
        "residual_steps": res_steps,
        "seed": opts.seed,
        "tokenizer_seconds": round(t_tok, 1),
        "seconds": round(time.time() - t0, 1),
        "clips": len(pack),
        "hparams": hparams,
    }
    path = export_masked(model.eval(), pack, out / "model.pt", info)
    say(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) after {(time.time() - t0) / 60:.1f} min")
    return info
