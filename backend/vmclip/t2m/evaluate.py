"""`vmclip eval motion`: held-out evaluation of the text-to-motion model.

Metrics (all on recordings the model never saw, the `test` split by default):
- reconstruction MPJPE (mm) of encode -> decode on 4 s windows, with and without the root path;
- text -> motion retrieval R@1 / R@3 among 32 windows with 32 different descriptions;
- an action classifier (small MLP on pose/velocity statistics) trained only on the training
  recordings; its top-1 accuracy on real held-out windows (reference), on motions generated from each
  label's own texts, and on motions generated from paraphrases written for this evaluation that avoid
  the data's label words (and are not in the training augmentation lists); for the masked model, also
  on its tokenizer's reconstruction of the real windows (the ceiling of anything made of its tokens);
- foot skating (contact-foot speed, share of sliding contact frames) and jitter (mean jerk), for
  generated and real motions;
- diversity: mean feature distance between motions of different prompts, and between seeds of the
  same prompt (multimodality);
- FID: the Frechet distance between generated and real held-out windows in the action classifier's
  penultimate (hidden) features, beside the same distance between real training and real held-out
  windows (what a perfect generator would score with these sample sizes);
- joint-speed ratio per action: the pelvis-relative joints' mean speed of motions generated from an
  action's texts over that of the captures of the action cut to the same length (1 = as lively as
  the captures), beside the whole captures' and one half of the captures against the other;
- constraint error (mean joint position error at held frames, mm) and the speed spike beside them,
  for in-betweening keys, a regenerated range and a circular path;
- seam smoothness of composed prompts: the seams' mean joint speed and fastest joint over the
  clip's 95th percentiles;
- generation time per 4-second motion (median, ms).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vmclip.errors import InputError
from vmclip.motion import Motion
from vmclip.motion import rotations as R
from vmclip.motion.kinematics import forward_kinematics
from vmclip.t2m.augment import augment_texts
from vmclip.t2m.cleanup import foot_skating, jitter
from vmclip.t2m.data import DATA_FPS, WindowSampler, canonicalize, clip_key, load_clipset
from vmclip.t2m.model import to_features

# The classifier, FID and diversity see every model's motions as 3 s windows at 15 fps (the first
# model's rate), so models working at other rates are measured on the same harness.
EVAL_FPS = 15.0
EVAL_FRAMES = 60

# Paraphrases per coarse action label, written for evaluation only: none uses the label's own words
# nor a phrase from the training augmentation.
PARAPHRASES: dict[str, list[str]] = {
    "walk": ["someone strolls down the street", "a man ambles along slowly", "a woman paces across the room"],
    "run": ["sprints", "a man races ahead as fast as he can", "someone hurries off at full speed"],
    "wave": [
        "greets someone from afar",
        "says hello to a friend across the street",
        "signals hi with a hand swinging side to side",
    ],
    "raise hands": [
        "puts the arms up towards the sky",
        "reaches both arms high overhead",
        "holds the hands up in surrender",
    ],
    "bow": ["bends at the waist to show respect", "greets the audience by leaning forward deeply"],
    "jump": ["leaps into the air", "springs up off the ground", "bounces up once"],
    "kick": ["strikes out with a foot", "boots an imaginary ball hard"],
    "punch": ["throws a jab", "hits the air with a closed fist", "a boxer jabs and hooks"],
    "dance": ["grooves to the music", "moves rhythmically to a song", "boogies on the dance floor"],
    "crawl": ["moves on all fours", "goes forward on hands and knees like a baby"],
    "acrobatics": ["performs a gymnastic flip", "does a handspring"],
    "get up": ["rises from lying on the ground", "stands back up after lying down"],
    "zombie walk": ["shuffles like the undead", "staggers around like a corpse come to life"],
    "jumping jacks": ["does star jumps", "exercises by leaping with arms and legs spread"],
    "idle": ["stays in place doing nothing", "just waits patiently"],
    "turn": ["changes direction while strolling"],
    "fall": ["trips and tumbles to the ground"],
    "sword fight": ["swings a blade at an enemy", "duels with a weapon"],
}

# The fifteen everyday prompts of the "Done when", with the label a viewer should name.
EVERYDAY_PROMPTS: list[tuple[str, str]] = [
    ("a person walks forward", "walk"),
    ("a person runs", "run"),
    ("a person jumps", "jump"),
    ("a person waves with the right hand", "wave"),
    ("a person bows", "bow"),
    ("a person kicks", "kick"),
    ("a person punches", "punch"),
    ("a person dances", "dance"),
    ("a person raises both hands", "raise hands"),
    ("a person turns left", "walk"),
    ("a person does jumping jacks", "jumping jacks"),
    ("a person crawls", "crawl"),
    ("a person does a cartwheel", "acrobatics"),
    ("a person gets up from the floor", "get up"),
    ("a zombie walk", "zombie walk"),
]


# --- features for the classifier and diversity -----------------------------------------------------


def motion_features(rot6d: torch.Tensor, trans: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Canonical windows (B, T, 24, 6), (B, T, 3), mask (B, T) -> (B, F) statistics: mean and std of
    root-relative joint positions, mean speed of each joint, root speed, height and turning."""
    pos = forward_kinematics(R.rotation_6d_to_matrix(rot6d), trans)[0]  # (B, T, 24, 3)
    rel = pos - pos[:, :, :1] * torch.tensor([1.0, 0.0, 1.0])
    m = mask.float()[..., None, None]
    n = m.sum(1).clamp_min(1)
    mean = (rel * m).sum(1) / n
    std = (((rel - mean[:, None]) ** 2 * m).sum(1) / n).sqrt()
    vm = (mask[:, 1:] & mask[:, :-1]).float()[..., None]
    speed = (pos[:, 1:] - pos[:, :-1]).norm(dim=-1)
    mspeed = (speed * vm).sum(1) / vm.sum(1).clamp_min(1)
    root = trans[:, 1:] - trans[:, :-1]
    horiz = (root[..., [0, 2]].norm(dim=-1, keepdim=True) * vm).sum(1) / vm.sum(1).clamp_min(1)
    vert = (root[..., 1:2].abs() * vm).sum(1) / vm.sum(1).clamp_min(1)
    fwd = R.rotation_6d_to_matrix(rot6d[:, :, 0])[..., :, 2]
    yaw = torch.atan2(fwd[..., 0], fwd[..., 2])
    dyaw = torch.atan2(torch.sin(yaw[:, 1:] - yaw[:, :-1]), torch.cos(yaw[:, 1:] - yaw[:, :-1]))[..., None]
    turn = (dyaw * vm).sum(1) / vm.sum(1).clamp_min(1)
    return torch.cat([mean.flatten(1), std.flatten(1), mspeed, 10 * horiz, 10 * vert, 10 * turn], dim=1)


def motion_to_window(
    motion: Motion, fps: float, frames: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A Motion -> one canonical model-rate window (padded by holding the last pose)."""
    m = motion.resample(fps)
    n = min(frames, m.num_frames)
    rot = np.zeros((1, frames, 24, 6), np.float32)
    tr = np.zeros((1, frames, 3), np.float32)
    rot[0, :n], tr[0, :n] = m.rot6d[:n], m.trans[:n]
    rot[0, n:], tr[0, n:] = m.rot6d[n - 1], m.trans[n - 1]
    rot_t, tr_t = canonicalize(torch.from_numpy(rot), torch.from_numpy(tr))
    mask = torch.arange(frames)[None] < n
    return rot_t, tr_t, mask


class ActionClassifier:
    """Standardised features -> MLP; trained on the training split's windows only."""

    def __init__(self, feats: torch.Tensor, labels: list[str], seed: int = 0, epochs: int = 400) -> None:
        self.classes = sorted(set(labels))
        y = torch.tensor([self.classes.index(lab) for lab in labels])
        self.mu = feats.mean(0)
        self.sd = feats.std(0).clamp_min(1e-4)
        x = (feats - self.mu) / self.sd
        torch.manual_seed(seed)
        self.net = torch.nn.Sequential(
            torch.nn.Linear(x.shape[1], 256),
            torch.nn.ReLU(),
            torch.nn.Dropout(0.2),
            torch.nn.Linear(256, len(self.classes)),
        )
        # Balanced classes: rare actions must count as much as walking.
        counts = torch.bincount(y, minlength=len(self.classes)).float()
        weight = (1 / counts.clamp_min(1)) * len(y) / len(self.classes)
        opt = torch.optim.AdamW(self.net.parameters(), lr=2e-3, weight_decay=1e-3)
        for _ in range(epochs):
            opt.zero_grad()
            F.cross_entropy(self.net(x), y, weight=weight).backward()
            opt.step()
        self.net.eval()

    def hidden(self, feats: torch.Tensor) -> torch.Tensor:
        """Penultimate features (after the hidden layer's ReLU): what the FID compares."""
        with torch.no_grad():
            return self.net[1](self.net[0]((feats - self.mu) / self.sd))

    def predict(self, feats: torch.Tensor) -> list[str]:
        with torch.no_grad():
            idx = self.net((feats - self.mu) / self.sd).argmax(-1)
        return [self.classes[int(i)] for i in idx]


# --- the evaluation ------------------------------------------------------------------------------


def _mpjpe(gen, windows: dict) -> dict[str, float]:
    model = gen.model
    errs, rel_errs = [], []
    with torch.no_grad():
        for s in range(0, len(windows["mask"]), 64):
            part = {
                k: v[s : s + 64].to(gen.device) for k, v in windows.items() if k in ("rot6d", "trans", "mask")
            }
            x = to_features(part["rot6d"], part["trans"])
            pred = model.decode(model.encode(x, part["mask"]), part["mask"])
            from vmclip.t2m.losses import positions

            p, t = positions(pred), positions(x)
            m = part["mask"].float()
            e = (p - t).norm(dim=-1).mean(-1)
            er = ((p - p[:, :, :1]) - (t - t[:, :, :1])).norm(dim=-1).mean(-1)
            errs.append(((e * m).sum(), m.sum()))
            rel_errs.append((er * m).sum())
    total = sum(float(c) for _, c in errs)
    return {
        "mpjpe_mm": 1000 * sum(float(a) for a, _ in errs) / total,
        "mpjpe_root_relative_mm": 1000 * sum(float(a) for a in rel_errs) / total,
        "windows": len(windows["mask"]),
    }


def _masked_reconstruction(gen, held, hop_seconds: float = 2.0, limit: int = 400) -> dict[str, float]:
    """The tokenizer's reconstruction of held-out windows at the model's rate: MPJPE (root path
    included / pelvis-relative) and the reconstructed joint speed over the captured."""
    from vmclip.t2m.pack import _clip_features
    from vmclip.t2m.tokens import features_to_motion

    frames, hop = gen.cfg.max_frames, int(round(hop_seconds * gen.cfg.fps))
    items = []
    for i in range(len(held)):
        x = torch.from_numpy(_clip_features(*_clip_arrays(held, i), gen.cfg.fps))
        items += [x[s : s + frames] for s in range(0, len(x) - frames + 1, hop)]
    keep = np.linspace(0, len(items) - 1, min(limit, len(items))).round().astype(int)
    x = torch.stack([items[k] for k in keep])
    rot, tr = features_to_motion(x)
    rec_rot, rec_tr = gen.reconstruct(rot, tr)
    p = forward_kinematics(R.rotation_6d_to_matrix(rec_rot), rec_tr)[0]
    t = forward_kinematics(R.rotation_6d_to_matrix(rot), tr)[0]
    mask = torch.ones(len(x), frames, dtype=torch.bool)
    from vmclip.t2m.train import window_speed

    rec_speed, real_speed = (
        window_speed(rec_rot, rec_tr, mask, gen.cfg.fps),
        window_speed(rot, tr, mask, gen.cfg.fps),
    )
    return {
        "mpjpe_mm": float(1000 * (p - t).norm(dim=-1).mean()),
        "mpjpe_root_relative_mm": float(1000 * ((p - p[:, :, :1]) - (t - t[:, :, :1])).norm(dim=-1).mean()),
        "speed_ratio_median": float((rec_speed / real_speed.clamp(min=1e-6)).median()),
        "speed_ratio_of_means": float(rec_speed.mean() / real_speed.mean()),
        "windows": len(x),
    }


def _clip_arrays(data, i: int) -> tuple[np.ndarray, np.ndarray]:
    a, b = data.starts[i], data.starts[i + 1]
    return data.rot6d[a:b], data.trans[a:b]


def _retrieval(
    gen, windows: dict, keys: list[str], rng: np.random.Generator, group: int = 32, rounds: int = 20
) -> dict[str, float]:
    """Text -> motion: each group holds `group` windows with distinct descriptions."""
    with torch.no_grad():
        z = []
        for s in range(0, len(windows["mask"]), 64):
            x = to_features(
                windows["rot6d"][s : s + 64].to(gen.device), windows["trans"][s : s + 64].to(gen.device)
            )
            z.append(F.normalize(gen.model.encode(x, windows["mask"][s : s + 64].to(gen.device)), dim=-1))
        z = torch.cat(z)
    by_key: dict[str, list[int]] = {}
    for i, k in enumerate(keys):
        by_key.setdefault(k, []).append(i)
    distinct = sorted(by_key)
    size = min(group, len(distinct))
    if size < 2:
        raise InputError("retrieval needs at least two different descriptions in the held-out split")
    text_emb = gen.embed(distinct)
    hits1 = hits3 = total = 0
    for _ in range(rounds):
        chosen = rng.choice(len(distinct), size=size, replace=False)
        idx = [int(rng.choice(by_key[distinct[c]])) for c in chosen]
        sim = text_emb[torch.from_numpy(chosen)] @ z[idx].T  # (size, size)
        ranks = (sim > sim.diag()[:, None]).sum(1)
        hits1 += int((ranks < 1).sum())
        hits3 += int((ranks < 3).sum())
        total += size
    return {
        "R@1": hits1 / total,
        "R@3": hits3 / total,
        "group": size,
        "rounds": rounds,
        "chance_R@1": 1 / size,
        "chance_R@3": min(1.0, 3 / size),
    }


def _features_of_motions(motions: list[Motion], fps: float, frames: int) -> torch.Tensor:
    parts = [motion_to_window(m, fps, frames) for m in motions]
    rot = torch.cat([p[0] for p in parts])
    tr = torch.cat([p[1] for p in parts])
    mask = torch.cat([p[2] for p in parts])
    return motion_features(rot, tr, mask)


def _reconstructed_features(gen, windows: dict) -> torch.Tensor:
    """Classifier features of the tokenizer's reconstruction of each evaluation window (resampled to the
    model's rate and back): a generator made of these tokens cannot be read better than this."""
    motions = []
    for rot, tr, mask in zip(windows["rot6d"], windows["trans"], windows["mask"], strict=True):
        m = Motion(rot[mask].numpy(), tr[mask].numpy(), EVAL_FPS).resample(gen.cfg.fps)
        rec_rot, rec_tr = gen.reconstruct(torch.from_numpy(m.rot6d)[None], torch.from_numpy(m.trans)[None])
        motions.append(Motion(rec_rot[0].cpu().numpy(), rec_tr[0].cpu().numpy(), gen.cfg.fps))
    return _features_of_motions(motions, EVAL_FPS, EVAL_FRAMES)


def _mean_pairwise(feats: torch.Tensor, rng: np.random.Generator, pairs: int = 300) -> float:
    if len(feats) < 2:
        return 0.0
    a = rng.integers(0, len(feats), pairs)
    b = (a + rng.integers(1, len(feats), pairs)) % len(feats)
    return float((feats[a] - feats[b]).norm(dim=-1).mean())


def evaluate(
    data: str | Path,
    checkpoint: str | Path | None = None,
    model: str | None = None,
    split: str = "test",
    seed: int = 0,
    threads: int | None = 2,
    device: str | None = None,
    output: str | Path | None = None,
    max_label_texts: int = 120,
    quiet: bool = False,
) -> dict:
    from vmclip.t2m import load_generator

    if threads:
        torch.set_num_threads(threads)
    if output is not None:
        from vmclip.fileio import check_writable

        check_writable(output)
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))
    t0 = time.time()
    gen = load_generator(device=device, checkpoint=checkpoint, model=model)
    cfg = gen.cfg
    rng = np.random.default_rng(seed)
    train_set = load_clipset(data, "train")
    held = load_clipset(data, split)
    held_sampler = WindowSampler(held, EVAL_FPS, EVAL_FRAMES, seed=seed)
    windows = held_sampler.fixed_windows(hop_seconds=2.0, limit=1500)
    keys = [clip_key(held.clips[int(c)]) for c in windows["clip"]]
    report: dict = {"split": split, "model": dict(gen.info), "config": cfg.to_dict()}

    say("reconstruction ...")
    if hasattr(gen, "reconstruct"):  # the masked-token model: its tokenizer, at its own rate
        report["reconstruction"] = _masked_reconstruction(gen, held)
        report["retrieval"] = None  # no shared motion-text space
    else:
        report["reconstruction"] = _mpjpe(gen, windows)
        say("retrieval ...")
        report["retrieval"] = _retrieval(gen, windows, keys, rng)

    say("action classifier ...")
    tr_windows = WindowSampler(train_set, EVAL_FPS, EVAL_FRAMES, seed=seed).fixed_windows(
        hop_seconds=1.0, limit=8000
    )
    tr_labels = [str(train_set.clips[int(c)].get("label", "")) for c in tr_windows["clip"]]
    tr_feats = motion_features(tr_windows["rot6d"], tr_windows["trans"], tr_windows["mask"])
    clf = ActionClassifier(tr_feats, tr_labels, seed=seed)
    held_labels = [str(held.clips[int(c)].get("label", "")) for c in windows["clip"]]
    pred = clf.predict(motion_features(windows["rot6d"], windows["trans"], windows["mask"]))
    known = [i for i, lab in enumerate(held_labels) if lab in clf.classes]
    report["classifier_real_top1"] = (
        float(np.mean([pred[i] == held_labels[i] for i in known])) if known else None
    )
    if hasattr(gen, "reconstruct"):  # the masked model's ceiling: what survives its tokenizer
        rec_pred = clf.predict(_reconstructed_features(gen, windows))
        report["classifier_reconstructed_top1"] = (
            float(np.mean([rec_pred[i] == held_labels[i] for i in known])) if known else None
        )

    label_texts = _label_texts(train_set, held, clf, max_label_texts, rng)
    say(f"generating {len(label_texts)} label texts ...")
    gen_label, gen_ms = [], []
    for t, _ in label_texts:
        t_gen = time.perf_counter()
        gen_label.append(gen.generate(t, seconds=4.0, seed=seed))
        gen_ms.append(1000 * (time.perf_counter() - t_gen))
    gen_seconds = float(np.mean(gen_ms)) / 1000 if gen_ms else 0.0
    f_label = _features_of_motions(gen_label, EVAL_FPS, EVAL_FRAMES)
    p_label = clf.predict(f_label)
    report["classifier_generated_label_top1"] = float(
        np.mean([p == lab for p, (_, lab) in zip(p_label, label_texts, strict=True)])
    )

    report.update(_paraphrase_report(gen, clf, train_set, seed, say))
    report["everyday_prompts"] = _everyday_report(gen, clf, seed)

    say("foot skating, jitter, diversity ...")
    real = [
        Motion(
            held.rot6d[held.starts[i] : held.starts[i + 1]], held.trans[held.starts[i] : held.starts[i + 1]]
        )
        for i in rng.choice(len(held), min(60, len(held)), replace=False)
        if held.length(int(i)) >= 4
    ]
    report["foot_skating"] = {
        "generated": _mean_dicts([foot_skating(m) for m in gen_label]),
        "real_heldout": _mean_dicts([foot_skating(m) for m in real]),
    }
    report["jitter_m_s3"] = {
        "generated": float(np.mean([jitter(m) for m in gen_label])),
        "real_heldout": float(np.mean([jitter(m) for m in real])),
    }
    scale = tr_feats.std(0).clamp_min(1e-4)
    seeds_of = [gen.generate(t, seconds=4.0, seed=s) for t, _ in label_texts[:20] for s in (seed, seed + 1)]
    f_seeds = _features_of_motions(seeds_of, EVAL_FPS, EVAL_FRAMES) / scale
    multimodality = float((f_seeds[0::2] - f_seeds[1::2]).norm(dim=-1).mean())
    real_feats = motion_features(windows["rot6d"], windows["trans"], windows["mask"]) / scale
    report["diversity"] = {
        "generated": _mean_pairwise(f_label / scale, rng),
        "real_heldout": _mean_pairwise(real_feats, rng),
        "multimodality_two_seeds": multimodality,
    }
    report["seconds_per_generation"] = gen_seconds
    report["generation_ms_median"] = float(np.median(gen_ms)) if gen_ms else None
    say("FID, joint speeds, constraints, seams ...")
    report.update(
        _v2_report(
            gen, clf, (train_set, held), (tr_windows, windows), (gen_label, f_label), label_texts, seed
        )
    )
    report["eval_seconds"] = round(time.time() - t0, 1)
    if output is not None:
        from vmclip.fileio import atomic_output

        with atomic_output(output) as tmp:
            tmp.write_text(json.dumps(report, indent=1) + "\n")
    return report


COMPOSED_PROMPTS = [
    "a person walks forward, then waves with the right hand",
    "a person turns around and walks away",
    "a person waves, then walks away",
    "a person walks and then jumps",
]
CONSTRAINED_PROMPTS = ["a person waves with the right hand", "a person walks forward", "a person jumps"]


def _v2_report(
    gen, clf: ActionClassifier, sets: tuple, wins: tuple, generated: tuple, label_texts, seed: int
) -> dict:
    """FID, joint-speed ratios per action, constraint error and seam smoothness (metrics.py)."""
    from vmclip.t2m.metrics import constraint_report, frechet_distance, seam_smoothness

    train_set, held = sets
    tr_windows, windows = wins
    gen_label, f_label = generated
    rng = np.random.default_rng(seed)
    real = clf.hidden(motion_features(windows["rot6d"], windows["trans"], windows["mask"]))
    tr_pick = torch.from_numpy(rng.choice(len(tr_windows["mask"]), len(gen_label), replace=False))
    tr_feats = motion_features(
        tr_windows["rot6d"][tr_pick], tr_windows["trans"][tr_pick], tr_windows["mask"][tr_pick]
    )
    by_label: dict[str, list[Motion]] = {}
    for m, (_, lab) in zip(gen_label, label_texts, strict=True):
        by_label.setdefault(lab, []).append(m)
    seams = []
    for p in COMPOSED_PROMPTS:
        for s in (seed, seed + 1):
            seams.append(seam_smoothness(*gen.generate_with_seams(p, seconds=6.0, seed=s)))
    return {
        "fid": {
            "generated_vs_real_heldout": frechet_distance(clf.hidden(f_label), real),
            "real_train_vs_real_heldout": frechet_distance(clf.hidden(tr_feats), real),
            "samples": [len(gen_label), len(real)],
        },
        **_speed_report(by_label, _captures(train_set, held, set(by_label), rng, per_label=40), rng),
        "constraints": constraint_report(
            gen, _reference_walk(held, train_set), CONSTRAINED_PROMPTS, [seed, seed + 1]
        ),
        "seams": {
            "prompts": COMPOSED_PROMPTS,
            "mean_ratio_max": max(r["mean_ratio"] for r in seams),
            "spike_ratio_max": max(r["spike_ratio"] for r in seams),
            "spike_ratio_mean": float(np.mean([r["spike_ratio"] for r in seams])),
        },
    }


def _speed_report(generated: dict[str, list[Motion]], captures: dict, rng: np.random.Generator) -> dict:
    """Joint-speed ratios per action: generated motions against the captures cut to the generated
    length (`capture_windows`), against the whole captures (the first measure, kept to compare with
    earlier numbers), and one half of the captures' windows against the other: the ratios real
    captures themselves score, the floor of what this measure can tell apart."""
    from vmclip.t2m.metrics import capture_windows, speed_ratios

    frames = min(m.num_frames for ms in generated.values() for m in ms)
    ref, other = {}, {}
    for lab, caps in captures.items():
        half = max(1, len(caps) // 2)
        ref[lab] = caps[:half]
        if len(caps) >= 2:
            other[lab] = capture_windows(caps[half:], frames, rng)
    return {
        "joint_speed_ratio": speed_ratios(
            generated, {k: capture_windows(v, frames, rng) for k, v in ref.items()}
        ),
        "joint_speed_ratio_whole_captures": speed_ratios(generated, ref),
        "joint_speed_ratio_captures": speed_ratios(
            other, {k: capture_windows(ref[k], frames, rng) for k in other}
        ),
    }


def _clip_motion(data, i: int) -> Motion:
    a, b = data.starts[i], data.starts[i + 1]
    return Motion(data.rot6d[a:b], data.trans[a:b], DATA_FPS)


def _captures(train_set, held, labels: set[str], rng: np.random.Generator, per_label: int = 20) -> dict:
    """Up to `per_label` captures (not mirrored copies, at least 1 s) of each action, both splits."""
    found: dict[str, list[Motion]] = {}
    for data in (train_set, held):
        for i, rec in enumerate(data.clips):
            lab = str(rec.get("label", ""))
            if lab in labels and not rec.get("mirrored") and data.length(i) >= DATA_FPS:
                found.setdefault(lab, []).append((data, i))
    out = {}
    for lab, items in found.items():
        pick = rng.choice(len(items), min(per_label, len(items)), replace=False)
        out[lab] = [_clip_motion(*items[int(k)]) for k in pick]
    return out


def _reference_walk(held, train_set) -> Motion:
    """A real walk of at least 4 s (held-out first) whose poses and path the constraint cases hold."""
    for data in (held, train_set):
        for i, rec in enumerate(data.clips):
            if rec.get("label") == "walk" and data.length(i) >= 4 * DATA_FPS:
                return _clip_motion(data, i)
    raise InputError("no walk of at least 4 s in the data set to take constraints from")


def _label_texts(train_set, held, clf: ActionClassifier, limit: int, rng: np.random.Generator) -> list:
    """(text, label) pairs to generate from: each label's own texts (held-out and training
    descriptions alike), at most `limit` of them."""
    label_texts: list[tuple[str, str]] = []
    seen: set[str] = set()
    for rec in train_set.clips + held.clips:
        lab = str(rec.get("label", ""))
        text = clip_key(rec)
        if lab in clf.classes and text and text not in seen:
            seen.add(text)
            label_texts.append((text, lab))
    if len(label_texts) > limit:
        keep = rng.choice(len(label_texts), limit, replace=False)
        label_texts = [label_texts[i] for i in sorted(keep)]
    return label_texts


def _paraphrase_report(gen, clf: ActionClassifier, train_set, seed: int, say) -> dict:
    """The classifier's top-1 on motions generated from paraphrases of the labels. Paraphrases that
    happen to equal a training text are left out (they would not test anything)."""
    train_texts = {
        t.lower()
        for i, rec in enumerate(train_set.clips)
        for t in augment_texts(list(rec.get("texts") or []), seed=i)
    }
    para = [(t, lab) for lab, ts in PARAPHRASES.items() if lab in clf.classes for t in ts]
    para = [(t, lab) for t, lab in para if t.lower() not in train_texts]
    say(f"generating {len(para)} paraphrases ...")
    gen_para = [gen.generate(t, seconds=4.0, seed=seed) for t, _ in para]
    p_para = clf.predict(_features_of_motions(gen_para, EVAL_FPS, EVAL_FRAMES)) if para else []
    return {
        "classifier_generated_paraphrase_top1": (
            float(np.mean([p == lab for p, (_, lab) in zip(p_para, para, strict=True)])) if para else None
        ),
        "paraphrases": [
            {"text": t, "label": lab, "predicted": p} for (t, lab), p in zip(para, p_para, strict=True)
        ],
    }


def _everyday_report(gen, clf: ActionClassifier, seed: int) -> list[dict]:
    """What the classifier makes of motions generated from everyday prompts, with the training texts
    nearest to each prompt."""
    every = [(t, lab) for t, lab in EVERYDAY_PROMPTS]
    gen_every = [gen.generate(t, seconds=4.0, seed=seed) for t, _ in every]
    p_every = clf.predict(_features_of_motions(gen_every, EVAL_FPS, EVAL_FRAMES))
    return [
        {
            "text": t,
            "label": lab,
            "predicted": p,
            "known_label": lab in clf.classes,
            "nearest_training_texts": [m for m, _ in gen.matches(t, 3)],
        }
        for (t, lab), p in zip(every, p_every, strict=True)
    ]


def _mean_dicts(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]} if rows else {}


def format_report(r: dict) -> str:
    rec, ret = r["reconstruction"], r["retrieval"]
    lines = [
        f"held-out split: {r['split']} ({rec['windows']} windows of up to "
        f"{r['config']['max_frames'] / r['config']['fps']:.0f} s)",
        f"reconstruction MPJPE: {rec['mpjpe_mm']:.1f} mm "
        f"(root-relative {rec['mpjpe_root_relative_mm']:.1f} mm)"
        + (
            f", joint speed {rec['speed_ratio_median']:.2f} x the capture's"
            if "speed_ratio_median" in rec
            else ""
        ),
        "text->motion retrieval: n/a (no shared motion-text space)"
        if ret is None
        else f"text->motion retrieval among {ret['group']}: R@1 {ret['R@1']:.3f}, R@3 {ret['R@3']:.3f} "
        f"(chance {ret['chance_R@1']:.3f}, {ret['chance_R@3']:.3f})",
        f"action classifier top-1: real held-out {_pct(r['classifier_real_top1'])}, generated from label "
        f"texts {_pct(r['classifier_generated_label_top1'])}, from paraphrases "
        f"{_pct(r['classifier_generated_paraphrase_top1'])}"
        + (
            f"; the tokenizer's reconstruction of the real windows {_pct(r['classifier_reconstructed_top1'])}"
            if "classifier_reconstructed_top1" in r
            else ""
        ),
        f"foot skating (contact-foot speed cm/s, sliding share): generated "
        f"{r['foot_skating']['generated'].get('contact_speed_cm_s', 0):.1f} / "
        f"{r['foot_skating']['generated'].get('skating_ratio', 0):.2f}, real "
        f"{r['foot_skating']['real_heldout'].get('contact_speed_cm_s', 0):.1f} / "
        f"{r['foot_skating']['real_heldout'].get('skating_ratio', 0):.2f}",
        f"jitter (mean jerk m/s^3): generated {r['jitter_m_s3']['generated']:.1f}, real "
        f"{r['jitter_m_s3']['real_heldout']:.1f}",
        f"diversity: generated {r['diversity']['generated']:.2f}, real {r['diversity']['real_heldout']:.2f}; "
        f"two seeds of one prompt {r['diversity']['multimodality_two_seeds']:.2f}",
    ]
    lines += _v2_lines(r)
    lines += ["everyday prompts (classifier's reading):"]
    for row in r["everyday_prompts"]:
        mark = "ok" if row["predicted"] == row["label"] else ("--" if not row["known_label"] else "xx")
        lines.append(f"  [{mark}] {row['text']!r}: {row['predicted']} (want {row['label']})")
    return "\n".join(lines)


def _v2_lines(r: dict) -> list[str]:
    if "fid" not in r:
        return []
    fid, sp, seams = r["fid"], r["joint_speed_ratio"], r["seams"]
    whole, floor = r["joint_speed_ratio_whole_captures"], r["joint_speed_ratio_captures"]
    per = ", ".join(f"{k} {v:.2f}" for k, v in sp["per_action"].items())
    lines = [
        f"FID (classifier features; generated {fid['samples'][0]} vs real held-out {fid['samples'][1]}): "
        f"{fid['generated_vs_real_heldout']:.2f} "
        f"(real training windows: {fid['real_train_vs_real_heldout']:.2f})",
        f"joint-speed ratio against captures cut to the same length: median {sp['median']:.2f}, "
        f"{len(sp['below_0.75'])} of {len(sp['per_action'])} below 0.75; {per}",
        f"  against whole captures: median {whole['median']:.2f}; one half of the captures against "
        f"the other: median {floor['median']:.2f}, {len(floor['below_0.75'])} of "
        f"{len(floor['per_action'])} below 0.75",
        f"seams of {len(seams['prompts'])} composed prompts x 2 seeds: mean joint speed "
        f"<= {seams['mean_ratio_max']:.2f} x the clip's 95th percentile, fastest joint <= "
        f"{seams['spike_ratio_max']:.2f} x (mean {seams['spike_ratio_mean']:.2f})",
    ]
    for name, c in r["constraints"].items():
        spike = "n/a" if c["speed_spike"] is None else f"{c['speed_spike']:.2f}"
        lines.append(
            f"constraints {name}: error {c['error_mm']:.2f} mm (max {c['max_error_mm']:.2f}), "
            f"speed spike {spike}"
        )
    lines.append(f"generation time per 4 s motion: median {r['generation_ms_median']:.0f} ms")
    return lines


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"
