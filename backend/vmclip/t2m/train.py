"""Training: `vmclip train --data data/processed --out DIR`.

Seeded and reproducible (same seed, data and step count -> same weights on the same machine), logs
losses (stdout and DIR/train_log.jsonl), saves DIR/last.pt every few hundred steps (model, optimiser,
random states) so `--resume DIR/last.pt` continues exactly where it stopped, keeps the best validation
checkpoint and exports DIR/model.pt (fp16 weights + latent bank, the shipped format).
Text embeddings of every (augmented) text are computed once and cached in DIR/text_cache.pt.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from vmclip.devices import choose_device, native_bf16
from vmclip.errors import InputError
from vmclip.fileio import atomic_output
from vmclip.t2m import losses as L
from vmclip.t2m.augment import augment_texts
from vmclip.t2m.data import ClipSet, WindowSampler, clip_key, load_clipset, subset
from vmclip.t2m.model import ModelConfig, MotionClipModel, from_features, to_features

FORMAT = "vmclip-t2m"


@dataclass
class TrainOptions:
    data: Path
    out: Path
    steps: int = 4000
    minutes: float | None = None
    seed: int = 0
    resume: Path | None = None
    batch: int = 32
    lr: float = 6e-4
    warmup: int = 200
    encoder: str = "minilm"
    threads: int | None = 2
    device: str | None = None
    log_every: int = 25
    save_every: int = 250
    bank_size: int = 6000
    model: dict = field(default_factory=dict)  # ModelConfig overrides
    sources: list[str] | None = None  # train on these data sources only (licensing)
    quiet: bool = False
    bf16: bool = True  # bfloat16 autocast for the transformer passes where native (`native_bf16`)
    lr_total_steps: int | None = None  # length of the LR schedule (default: steps)
    gen_fraction: float = 0.25  # share of each batch also decoded from its text embedding
    # Factors on groups of loss weights (losses.LAMBDAS): text alignment (cosine + contrastive),
    # decoding from the text embedding, and joint/root velocities.
    align_weight: float = 1.0
    gen_weight: float = 1.0
    velocity_weight: float = 1.0

    def lambdas(self) -> dict[str, float]:
        lam = dict(L.LAMBDAS)
        for k in ("cosine", "ce"):
            lam[k] *= self.align_weight
        lam["gen"] *= self.gen_weight
        for k in ("vel", "velxyz", "rootvel"):
            lam[k] *= self.velocity_weight
        return lam


LOSS_FACTORS = ("align_weight", "gen_weight", "velocity_weight", "gen_fraction")


def _atomic_save(obj: object, path: Path) -> None:
    with atomic_output(path) as tmp:
        torch.save(obj, tmp)


class TextTable:
    """Every clip's augmented texts and their embeddings (computed once, cached on disk)."""

    def __init__(
        self, data: ClipSet, encoder_name: str, cache: Path, device: str, quiet: bool = False
    ) -> None:
        per_clip = [
            augment_texts(list(c.get("texts") or [c.get("label", "")]), seed=i)
            for i, c in enumerate(data.clips)
        ]
        texts = sorted({t for ts in per_clip for t in ts})
        index = {t: i for i, t in enumerate(texts)}
        self.clip_texts = [np.array([index[t] for t in ts], np.int64) for ts in per_clip]
        self.texts = texts
        digest = hashlib.sha256(("\n".join(texts) + encoder_name).encode()).hexdigest()[:16]
        emb = None
        if cache.is_file():
            saved = torch.load(cache, map_location="cpu", weights_only=True)
            if saved.get("digest") == digest:
                emb = saved["emb"].float()
        if emb is None:
            from vmclip.progress import progress
            from vmclip.text import load_text_encoder

            if not quiet:
                print(f"embedding {len(texts)} training texts with {encoder_name} ...", flush=True)
            enc = load_text_encoder(encoder_name, device=device)
            chunks = [texts[i : i + 256] for i in range(0, len(texts), 256)]
            emb = torch.cat([enc.encode(c).cpu() for c in progress(chunks, "text embeddings")]).float()
            # Cached in float32: a resumed run must see exactly the embeddings the first run saw.
            _atomic_save({"digest": digest, "emb": emb, "texts": texts}, cache)
        self.emb = torch.nn.functional.normalize(emb.float(), dim=-1)

    def sample(self, clips: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        idx = [int(rng.choice(self.clip_texts[int(c)])) for c in clips]
        return self.emb[idx]


def _lr_at(step: int, opts: TrainOptions) -> float:
    total = opts.lr_total_steps or opts.steps
    if step < opts.warmup:
        return opts.lr * (step + 1) / opts.warmup
    frac = min(1.0, (step - opts.warmup) / max(1, total - opts.warmup))
    return opts.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))


def _step_losses(
    model: MotionClipModel,
    batch: dict,
    text: torch.Tensor,
    keys: torch.Tensor,
    bf16: bool,
    gen_fraction: float,
) -> dict:
    x = to_features(batch["rot6d"], batch["trans"])
    mask = batch["mask"]
    n_gen = max(1, int(round(len(x) * gen_fraction))) if gen_fraction > 0 else 0
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
        z = model.encode(x, mask)
        pred = model.decode(z, mask)
        # MotionCLIP's generation losses: decoding the text embedding must also give the motion.
        gen_pred = model.decode(text[:n_gen], mask[:n_gen]) if n_gen else None
    z = z.float()
    out = L.reconstruction(pred.float(), x, mask)
    out.update(L.alignment(z, text, keys))
    if gen_pred is not None:
        gen = L.reconstruction(gen_pred.float(), x[:n_gen], mask[:n_gen])
        out.update({f"gen_{k}": v for k, v in gen.items() if k != "foot"})
    return out


def evaluate_loss(model: MotionClipModel, windows: dict, batch: int = 64) -> dict[str, float]:
    """Reconstruction losses and MPJPE (mm) on fixed windows, without gradients."""
    model.eval()
    sums: dict[str, float] = {}
    n = len(windows["mask"])
    with torch.no_grad():
        for s in range(0, n, batch):
            part = {k: v[s : s + batch] for k, v in windows.items()}
            x = to_features(part["rot6d"], part["trans"])
            pred = model.decode(model.encode(x, part["mask"]), part["mask"])
            rec = L.reconstruction(pred, x, part["mask"])
            err = (L.positions(pred) - L.positions(x)).norm(dim=-1).mean(-1)  # (B, T)
            m = part["mask"].float()
            rec["mpjpe_mm"] = 1000 * (err * m).sum() / m.sum()
            for k, v in rec.items():
                sums[k] = sums.get(k, 0.0) + float(v) * len(part["mask"])
    model.train()
    return {k: v / n for k, v in sums.items()}


def build_bank(model: MotionClipModel, sampler: WindowSampler, limit: int, hop_seconds: float = 1.5) -> dict:
    """Latents of training windows: the prior generation samples around the text embedding."""
    windows = sampler.fixed_windows(hop_seconds=hop_seconds, limit=limit)
    model.eval()
    zs = []
    with torch.no_grad():
        for s in range(0, len(windows["mask"]), 128):
            x = to_features(windows["rot6d"][s : s + 128], windows["trans"][s : s + 128])
            zs.append(model.encode(x, windows["mask"][s : s + 128]))
    model.train()
    latents = torch.cat(zs)
    lengths = windows["mask"].sum(1)
    return {
        "latents": latents.half(),
        "clip": windows["clip"].int(),
        "start": windows["start"].int(),
        "length": lengths.short(),
        "activity": window_activity(windows, model.cfg.fps).half(),
        "fidelity": window_fidelity(model, latents, windows).half(),
    }


def window_speed(rot6d: torch.Tensor, trans: torch.Tensor, mask: torch.Tensor, fps: float) -> torch.Tensor:
    """Mean joint speed (m/s; joints relative to the pelvis, plus the pelvis itself) of each window
    (B, T, 24, 6) / (B, T, 3) over its valid frames."""
    from vmclip.motion import rotations as R
    from vmclip.motion.kinematics import forward_kinematics

    speeds = []
    for s in range(0, len(mask), 256):
        rot = R.rotation_6d_to_matrix(rot6d[s : s + 256].float())
        pos, _ = forward_kinematics(rot, trans[s : s + 256].float())
        rel = torch.cat([pos[..., 1:, :] - pos[..., :1, :], pos[..., :1, :]], dim=-2)
        step = (rel[:, 1:] - rel[:, :-1]).norm(dim=-1).mean(-1) * fps  # (B, T-1)
        m = mask[s : s + 256]
        valid = (m[:, 1:] & m[:, :-1]).float()
        speeds.append((step * valid).sum(1) / valid.sum(1).clamp(min=1))
    return torch.cat(speeds)


def window_activity(windows: dict, fps: float) -> torch.Tensor:
    """Each window's movement relative to the busiest window of its clip (0-1).

    A labelled capture usually starts and ends standing; its label describes the middle. The mean joint
    speed of a window over that of the clip's busiest window lets generation prefer the windows that
    show the action over a lead-in."""
    speed = window_speed(windows["rot6d"], windows["trans"], windows["mask"], fps)
    clip = windows["clip"].long()
    busiest = torch.zeros(int(clip.max()) + 1 if len(clip) else 0).scatter_reduce(
        0, clip, speed, reduce="amax", include_self=False
    )
    return (speed / busiest[clip].clamp(min=1e-6)).clamp(0, 1)


STILL_SPEED = 0.05  # m/s: below this mean joint speed a window counts as standing still


@torch.no_grad()
def window_fidelity(model: MotionClipModel, latents: torch.Tensor, windows: dict) -> torch.Tensor:
    """How much of each window's movement the model gives back when it decodes the window's latent, as
    generation does (decoded mean joint speed over the capture's, at most 1; still windows count 1).
    A small model damps some captures (fast jumps, punches) far more than others; generation prefers
    the ones it reproduces with their vigour."""
    was_training = model.training
    model.eval()
    fps = model.cfg.fps
    mask = windows["mask"]
    speeds = []
    for s in range(0, len(mask), 128):
        z = torch.nn.functional.normalize(latents[s : s + 128].float(), dim=-1)
        rot, tr = from_features(model.decode(z, mask[s : s + 128]))
        speeds.append(window_speed(rot, tr, mask[s : s + 128], fps))
    model.train(was_training)
    decoded = torch.cat(speeds)
    real = window_speed(windows["rot6d"], windows["trans"], mask, fps)
    ratio = (decoded / real.clamp(min=1e-6)).clamp(0, 1)
    return torch.where(real < STILL_SPEED, torch.ones_like(ratio), ratio)


def export(
    model: MotionClipModel, bank: dict, data: ClipSet, table: TextTable, path: Path, info: dict
) -> Path:
    """The shipped format: fp16 weights, config, the latent bank, and for the bank's clips their
    descriptions and the embeddings of their (augmented) texts (generation ranks bank entries by both)."""
    used = sorted({int(c) for c in bank["clip"]})
    remap = {c: i for i, c in enumerate(used)}
    clips = []
    for c in used:
        rec = data.clips[c]
        clips.append(
            {
                "text": clip_key(rec),
                "label": str(rec.get("label", "")),
                "source": str(rec.get("source", "")),
                "license": str(rec.get("license", "")),
            }
        )
    text_ids = sorted({int(t) for c in used for t in table.clip_texts[c]})
    new_id = {t: i for i, t in enumerate(text_ids)}
    flat = [new_id[int(t)] for c in used for t in table.clip_texts[c]]
    offsets = np.cumsum([0] + [len(table.clip_texts[c]) for c in used])
    obj = {
        "format": FORMAT,
        "version": 1,
        "config": model.cfg.to_dict(),
        "state_dict": {k: v.detach().half() for k, v in model.state_dict().items()},
        "bank": {**bank, "clip": torch.tensor([remap[int(c)] for c in bank["clip"]], dtype=torch.int32)},
        "clips": clips,
        "clip_texts": {
            "emb": table.emb[text_ids].half(),
            "index": torch.tensor(flat, dtype=torch.int32),
            "offsets": torch.tensor(offsets, dtype=torch.int64),
            "texts": [table.texts[t] for t in text_ids],
        },
        "info": info,
    }
    _atomic_save(obj, path)
    return path


def export_checkpoint(
    checkpoint: Path,
    data: Path,
    out: Path,
    bank_size: int = 6000,
    sources: list[str] | None = None,
    info: dict | None = None,
) -> Path:
    """Re-export a training checkpoint (last.pt / best.pt) in the shipped format."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    cfg = ModelConfig.from_dict(state["config"])
    model = MotionClipModel(cfg)
    model.load_state_dict(state["model"])
    train_set = subset(load_clipset(data, "train"), sources)
    table = TextTable(
        train_set, cfg.text_encoder, Path(checkpoint).parent / "text_cache.pt", "cpu", quiet=True
    )
    sampler = WindowSampler(train_set, cfg.fps, cfg.max_frames, seed=0)
    bank = build_bank(model, sampler, bank_size)
    meta = {"steps": int(state.get("step", 0)), "checkpoint": Path(checkpoint).name, **(info or {})}
    return export(model, bank, train_set, table, out, meta)


def _check_options(opts: TrainOptions) -> None:
    if opts.steps < 1:
        raise InputError("--steps must be at least 1")
    if opts.batch < 2:
        raise InputError("--batch must be at least 2")
    if opts.minutes is not None and opts.minutes <= 0:
        raise InputError("--minutes must be positive")
    for name in ("align_weight", "gen_weight", "velocity_weight"):
        if not math.isfinite(getattr(opts, name)) or getattr(opts, name) < 0:
            raise InputError(f"--{name.replace('_', '-')} must be a number >= 0")
    if not 0 <= opts.gen_fraction <= 1:
        raise InputError("--gen-fraction must be between 0 and 1")
    if not 0 <= float(opts.model.get("dropout", 0.0)) < 1:
        raise InputError("--dropout must be in [0, 1)")


def _datasets(opts: TrainOptions):
    """The training set and the validation set (None where the data has none for these sources)."""
    train_set = subset(load_clipset(opts.data, "train"), opts.sources)
    val_set = load_clipset(opts.data, "val") if (Path(opts.data) / "val.npz").is_file() else None
    if val_set is not None and opts.sources:
        try:
            val_set = subset(val_set, opts.sources)
        except InputError:
            val_set = None
    return train_set, val_set


def _config(opts: TrainOptions) -> tuple[ModelConfig, dict | None]:
    """The model's configuration: a new one from the options, or the resumed checkpoint's (whose seed
    and loss balance then replace the options')."""
    from vmclip.text import DIMS

    state = None
    if opts.resume:
        if not Path(opts.resume).is_file():
            raise InputError(f"{opts.resume}: no such checkpoint to resume from")
        state = torch.load(opts.resume, map_location="cpu", weights_only=False)
        cfg = ModelConfig.from_dict(state["config"])
        opts.seed = state["seed"]
        # A resumed run keeps the loss balance it started with.
        for k, v in state.get("loss_factors", {}).items():
            setattr(opts, k, v)
    else:
        cfg = ModelConfig(
            **{**{"latent_dim": DIMS[opts.encoder], "text_encoder": opts.encoder}, **opts.model}
        )
        if cfg.memory_scale is None and cfg.model_width != cfg.latent_dim:
            cfg.memory_scale = math.sqrt(cfg.model_width)
    if cfg.latent_dim != DIMS[cfg.text_encoder]:
        raise InputError(f"latent size {cfg.latent_dim} must equal the {cfg.text_encoder} embedding size")
    return cfg, state


def _log_row(step: int, t0: float, opts: TrainOptions, running: dict[str, float], log_path: Path) -> dict:
    """The running means since the last log line, appended to the JSON-lines log."""
    n = opts.log_every if step % opts.log_every == 0 else step % opts.log_every
    row = {
        "step": step,
        "seconds": round(time.time() - t0, 1),
        "lr": _lr_at(step - 1, opts),
        **{k: round(v / n, 6) for k, v in running.items()},
    }
    with open(log_path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row) + "\n")
    return row


def _validate(model, val_windows: dict, device, step: int, log_path: Path) -> dict:
    """The validation losses at this step, appended to the log."""
    val = evaluate_loss(model, {k: v.to(device) for k, v in val_windows.items()})
    with open(log_path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"step": step, "val": {k: round(v, 6) for k, v in val.items()}}) + "\n")
    return val


def _save_checkpoint(
    path: Path, cfg: ModelConfig, model, optim, sampler, step: int, best: float, opts: TrainOptions
) -> None:
    """Everything a resumed run needs to continue exactly."""
    _atomic_save(
        {
            "config": cfg.to_dict(),
            "model": model.state_dict(),
            "optim": optim.state_dict(),
            "sampler": sampler.state(),
            "torch_rng": torch.get_rng_state(),
            "step": step,
            "best": best,
            "seed": opts.seed,
            "loss_factors": {k: getattr(opts, k) for k in LOSS_FACTORS},
        },
        path,
    )


def _train_step(
    model, optim, sampler, table, clip_keys: torch.Tensor, opts: TrainOptions, lambdas, step: int, device
) -> dict[str, float]:
    """One optimisation step on a sampled batch; the values of its losses and of their total."""
    for g in optim.param_groups:
        g["lr"] = _lr_at(step, opts)
    batch = {k: v.to(device) for k, v in sampler.sample(opts.batch).items()}
    text = table.sample(batch["clip"], sampler.rng).to(device)
    losses = _step_losses(
        model, batch, text, clip_keys.to(device)[batch["clip"]], opts.bf16, opts.gen_fraction
    )
    loss = L.total(losses, lambdas)
    optim.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optim.step()
    values = {k: float(v.detach()) for k, v in losses.items()}
    values["total"] = float(loss.detach())
    return values


def train(opts: TrainOptions) -> dict:
    _check_options(opts)
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    if opts.threads:
        torch.set_num_threads(opts.threads)
    device = str(choose_device(opts.device))
    say = (lambda *a: None) if opts.quiet else (lambda *a: print(*a, flush=True))
    if opts.bf16 and not native_bf16(torch.device(device)):
        say(f"bfloat16 is not native on {device}: training in float32")
        opts = replace(opts, bf16=False)

    train_set, val_set = _datasets(opts)
    cfg, state = _config(opts)

    torch.manual_seed(opts.seed)
    model = MotionClipModel(cfg).to(device)
    optim = torch.optim.AdamW(model.parameters(), lr=opts.lr, weight_decay=0.01)
    sampler = WindowSampler(train_set, cfg.fps, cfg.max_frames, seed=opts.seed)
    table = TextTable(train_set, cfg.text_encoder, out / "text_cache.pt", device, opts.quiet)
    keys_of_clip = {}
    clip_keys = torch.tensor(
        [keys_of_clip.setdefault(clip_key(c), len(keys_of_clip)) for c in train_set.clips]
    )
    val_windows = None
    if val_set is not None and len(val_set):
        val_windows = WindowSampler(val_set, cfg.fps, cfg.max_frames, seed=0).fixed_windows(limit=384)
    step, best, history = 0, math.inf, []
    if state is not None:
        model.load_state_dict(state["model"])
        optim.load_state_dict(state["optim"])
        sampler.set_state(state["sampler"])
        torch.set_rng_state(state["torch_rng"])
        step, best = int(state["step"]), float(state["best"])
        say(f"resumed from {opts.resume} at step {step}")
    n_params = sum(p.numel() for p in model.parameters())
    say(
        f"model: {n_params / 1e6:.2f} M parameters, latent {cfg.latent_dim} ({cfg.text_encoder}), "
        f"{cfg.fps:g} fps windows of up to {cfg.max_frames} frames; {len(train_set)} training clips, "
        f"{len(table.texts)} texts"
    )

    log_path = out / "train_log.jsonl"
    t0 = time.time()
    deadline = t0 + opts.minutes * 60 if opts.minutes else None
    running: dict[str, float] = {}
    model.train()

    lambdas = opts.lambdas()
    say(f"loss weights: {lambdas}")
    stopped_early = False
    while step < opts.steps:
        values = _train_step(model, optim, sampler, table, clip_keys, opts, lambdas, step, device)
        step += 1
        for k, v in values.items():
            running[k] = running.get(k, 0.0) + v
        if step % opts.log_every == 0 or step == opts.steps:
            row = _log_row(step, t0, opts, running, log_path)
            running = {}
            history.append(row)
            say(
                f"step {step:5d}  {row['seconds']:7.0f}s  loss {row['total']:.4f}  rc {row['rc']:.4f}  "
                f"xyz {row['rcxyz']:.5f}  cos {row['cosine']:.3f}  ce {row['ce']:.3f}  "
                f"gen_xyz {row.get('gen_rcxyz', 0.0):.5f}"
            )
        timed_out = deadline is not None and time.time() > deadline
        if step % opts.save_every == 0 or step == opts.steps or timed_out:
            if val_windows is not None:
                val = _validate(model, val_windows, device, step, log_path)
                say(f"  val at {step}: MPJPE {val['mpjpe_mm']:.1f} mm, rc {val['rc']:.4f}")
                if val["mpjpe_mm"] < best:
                    best = val["mpjpe_mm"]
                    _atomic_save(
                        {"config": cfg.to_dict(), "model": model.state_dict(), "step": step, "val": val},
                        out / "best.pt",
                    )
            _save_checkpoint(out / "last.pt", cfg, model, optim, sampler, step, best, opts)
        if timed_out and step < opts.steps:
            say(f"time budget of {opts.minutes} min reached at step {step}; stopping (resume with --resume)")
            stopped_early = True
            break

    elapsed = time.time() - t0
    bank = build_bank(model, sampler, opts.bank_size)
    info = {
        "steps": step,
        "seed": opts.seed,
        "seconds": round(elapsed, 1),
        "batch": opts.batch,
        "lr": opts.lr,
        "stopped_early": stopped_early,
        "sources": opts.sources,
        "licenses": sorted({str(c.get("license", "")) for c in train_set.clips}),
        "best_val_mpjpe_mm": best,
        "last": history[-1] if history else {},
        "data": str(opts.data),
    }
    export(model, bank, train_set, table, out / "model.pt", info)
    say(
        f"wrote {out / 'model.pt'} ({(out / 'model.pt').stat().st_size / 1e6:.1f} MB) "
        f"after {elapsed / 60:.1f} min"
    )
    return info
