"""Motion metrics of the text-to-motion evaluation (issue 12): FID on classifier features, joint-speed
ratios against captures, seam smoothness, constraint error. Model-independent: they take motions and
features, so an old and a new generator are measured the same way."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from scipy import linalg

from vmclip.motion import Motion
from vmclip.motion.constraints import MotionConstraints
from vmclip.t2m.constrain import BLEND_SECONDS, boundary_frames, constraint_error_mm, speed_spike


def frechet_distance(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (N, D) and (M, D):
    |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))."""
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(x) < 2 or len(y) < 2:
        raise ValueError("the Frechet distance needs at least two samples on each side")
    mu_x, mu_y = x.mean(0), y.mean(0)
    s_x, s_y = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    with warnings.catch_warnings():  # few samples against many features: singular, handled below
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        root = linalg.sqrtm(s_x @ s_y)
    if not np.isfinite(root).all():  # near-singular product: nudge both covariances
        eps = 1e-6 * np.eye(len(s_x))
        root = linalg.sqrtm((s_x + eps) @ (s_y + eps))
    root = np.real(root)
    return float(max(0.0, ((mu_x - mu_y) ** 2).sum() + np.trace(s_x + s_y - 2 * root)))


def joint_speed(motion: Motion) -> float:
    """Mean speed (m/s) of the 23 joints relative to the pelvis: how lively a motion is, free of
    travel."""
    pos = motion.joint_positions()
    rel = pos[:, 1:] - pos[:, :1]
    if len(rel) < 2:
        return 0.0
    return float(np.linalg.norm(np.diff(rel, axis=0), axis=-1).mean() * motion.fps)


def capture_windows(motions: list[Motion], frames: int, rng: np.random.Generator) -> list[Motion]:
    """Captures cut to `frames` like a generated motion of that length: a seeded stretch of a longer
    take, a shorter one held on its last pose (as the generator holds a finished action), so their
    joint speed compares like with like (a whole 1.5 s kick is faster on average than 4 s that
    contain it)."""
    out = []
    for m in motions:
        if m.num_frames >= frames:
            start = int(rng.integers(0, m.num_frames - frames + 1))
            out.append(m.slice(start, start + frames))
        else:
            extra = frames - m.num_frames
            rot = np.concatenate([m.rot6d, np.repeat(m.rot6d[-1:], extra, 0)])
            tr = np.concatenate([m.trans, np.repeat(m.trans[-1:], extra, 0)])
            out.append(Motion(rot, tr, m.fps, m.texts, m.betas))
    return out


def speed_ratios(generated: dict[str, list[Motion]], captured: dict[str, list[Motion]]) -> dict:
    """Per action: mean joint speed of its generated motions over that of its captures; and the
    median over actions."""
    per = {}
    for label, motions in sorted(generated.items()):
        caps = captured.get(label) or []
        if not motions or not caps:
            continue
        cap = float(np.mean([joint_speed(m) for m in caps]))
        if cap > 1e-6:
            per[label] = float(np.mean([joint_speed(m) for m in motions]) / cap)
    values = list(per.values())
    return {
        "per_action": per,
        "median": float(np.median(values)) if values else None,
        "below_0.75": sorted(k for k, v in per.items() if v < 0.75),
    }


def seam_smoothness(motion: Motion, seams: list[int]) -> dict[str, float]:
    """How a composed motion passes its seams (output frames where a joined piece's held frames
    begin): over each seam's span (the held frames and the BLEND_SECONDS the correction takes), the
    mean joint speed against the clip's 95th percentile of per-frame mean joint speeds, and the
    fastest joint against the 95th percentile of per-frame fastest joints; the worst seam of each."""
    from vmclip.t2m.compose import SEAM_SECONDS

    if not seams:
        return {"mean_ratio": 0.0, "spike_ratio": 0.0}
    step = np.linalg.norm(np.diff(motion.joint_positions(), axis=0), axis=-1)  # (T-1, 24)
    mean, fastest = step.mean(1), step.max(1)
    span = int(round((SEAM_SECONDS + BLEND_SECONDS) * motion.fps))
    mean_ratio = spike_ratio = 0.0
    for s in seams:
        w = slice(max(0, s - 1), min(len(mean), s + span))
        mean_ratio = max(mean_ratio, float(mean[w].mean() / max(np.percentile(mean, 95), 1e-9)))
        spike_ratio = max(spike_ratio, float(fastest[w].max() / max(np.percentile(fastest, 95), 1e-9)))
    return {"mean_ratio": mean_ratio, "spike_ratio": spike_ratio}


def constraint_cases(reference: Motion, frames: int) -> dict[str, MotionConstraints]:
    """Three uses of constraints on a `frames`-long motion, held values from a real motion:
    in-betweening keys once a second, a kept motion with its middle third regenerated, and a
    circular root path (1 m radius) alone."""
    ref = reference.slice(0, frames)
    poses, trans = ref.axis_angle(), ref.trans
    keys = np.zeros(frames, bool)
    keys[:: int(round(ref.fps))] = True
    keys[-1] = True
    keep = np.ones(frames, bool)
    keep[frames // 3 : 2 * frames // 3] = False
    angle = np.linspace(0.0, 2 * np.pi, frames)
    circle = np.stack([np.sin(angle), np.zeros(frames), 1.0 - np.cos(angle)], 1)
    path = np.zeros((frames, 25), bool)
    path[:, 24] = True
    return {
        "inbetween": MotionConstraints.create(poses, trans, keys),
        "range": MotionConstraints.create(poses, trans, keep),
        "circle": MotionConstraints.create(np.zeros((frames, 24, 3)), circle, path, trans_y=False),
    }


def constraint_report(gen, reference: Motion, prompts: list[str], seeds: list[int]) -> dict:
    """Constraint error (mm) and the speed spike next to held frames, per case, over prompts x seeds
    of 4-second motions."""
    frames = 120
    out = {}
    for name, c in constraint_cases(reference, frames).items():
        errs, spikes = [], []
        for p in prompts:
            for seed in seeds:
                m = gen.generate(p, seconds=frames / 30.0, seed=seed, constraints=c)
                errs.append(constraint_error_mm(m, c))
                near = boundary_frames(c)
                if len(near):
                    spikes.append(speed_spike(m, near))
        out[name] = {
            "error_mm": float(np.mean(errs)),
            "max_error_mm": float(np.max(errs)),
            "speed_spike": float(np.max(spikes)) if spikes else None,
        }
    return out
