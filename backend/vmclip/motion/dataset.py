"""Training data set: both mocap manifests -> SMPL-24 clips at 30 fps, split by recording.

Layout written to the output folder (see notes in the README's "Data set build"):
- `{train,val,test}.npz`: `rot6d` (F, 24, 6) float32, `trans` (F, 3) float32, `clip_start` (n+1,) int64;
  every clip is a slice `clip_start[i]:clip_start[i+1]` of the concatenated frames.
- `{train,val,test}.json`: one record per clip, in the same order: clip_id, texts, label, source,
  license, mirrored, recording.
- `meta.json`: fps, counts per split / label / source, the build options, skipped files.

Decisions (why):
- Splits are drawn per *recording*, never per clip, and a mirrored copy stays in its original's split,
  so no captured performance is seen in two splits.
- CMU trials present both as iClone BVH and as original ASF/AMC count once (by CMU trial id); the
  texts of both rows are merged. The AMC version is preferred (original skeleton, 120 fps).
- The CMU clips in `extra/cmu_expmap_li2018` carry no trial ids and may repeat CMU trials of the main
  set. After loading, each is compared with the main-set trials (`find_cmu_duplicates`: same length
  within 2 frames, start within 2 frames, pelvis-relative joints within 5 cm on average, matched
  one-to-one); a match is dropped and its texts join the trial's. As a safety net for matches this
  misses, they and every main-set CMU trial whose CMU description is of one of their activities (walk,
  run, jump, basketball, soccer, directing traffic, window washing) stay in the training split, so a
  duplicate can never sit in val/test.
- Idle takes (label "idle", mainly ReActIdle's 1-2.5 minute takes) are cropped to a centred window of
  `max_idle_seconds` so that standing still does not dominate the data.
- Actions with fewer than `min_label_recordings` recordings over all sources stay in train.
- Within each source the split is drawn with a low-discrepancy sequence over recordings sorted by
  label, so every frequent action gets val/test recordings in proportion.
"""

from __future__ import annotations

import csv
import json
import math
import multiprocessing as mp
import re
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vmclip.errors import InputError
from vmclip.fileio import atomic_output

SPLITS = ("train", "val", "test")
SOURCES = (
    "bandai1",
    "bandai2",
    "cmu",
    "cmu_expmap",
    "deepmimic",
    "ase",
    "animated_drawings",
    "xia",
    "reactidle",
)
FPS = 30.0
_GOLDEN = (math.sqrt(5) - 1) / 2


@dataclass
class BuildOptions:
    val_frac: float = 0.1
    test_frac: float = 0.1
    seed: int = 0
    mirror: bool = True
    max_idle_seconds: float = 10.0
    min_seconds: float = 0.5
    min_label_recordings: int = 5  # actions with fewer recordings stay in train
    prefer_cmu: str = "amc"  # "amc" or "bvh": which copy of a CMU trial in both sets to keep
    limit: int | None = None  # at most this many recordings per source (quick builds, tests)
    sources: list[str] | None = None  # only these sources (short names, see `source_name`)
    workers: int = 2


@dataclass
class PlannedClip:
    index: int
    clip_id: str
    path: str  # relative to the motion folder
    start_frame: int
    end_frame: int
    fps: float
    texts: list[str]
    source: str
    license: str
    label: str
    recording: str
    split: str = "train"
    force_train: bool = False
    also_paths: list[str] = field(default_factory=list)  # duplicate rows merged into this one
    # (path, start_frame, end_frame, fps) of those rows: tried in turn if this clip's file fails to load
    alternates: list[tuple[str, int, int, float]] = field(default_factory=list)


# --- labels and sources ------------------------------------------------------------------------------


def source_name(path: str) -> str:
    """Short source name from a manifest path (relative to the motion folder)."""
    p = path.replace("\\", "/")
    if p.startswith("bandai_namco/dataset-1"):
        return "bandai1"
    if p.startswith("bandai_namco/dataset-2"):
        return "bandai2"
    if p.startswith("cmu/"):
        return "cmu"
    if p.startswith("extra/"):
        folder = p.split("/")[1]
        return {"cmu_expmap_li2018": "cmu_expmap", "xia_test": "xia"}.get(folder, folder)
    return p.split("/")[0]


# Ordered rules: the first whose pattern occurs in the label text wins (so "walk turn left" is a walk,
# "jumping sword attack" a sword fight and "playground - climb, jump down" a climb).
_LABEL_RULES: tuple[tuple[str, str], ...] = (
    ("idle", r"\bidle\b"),
    ("dance", r"\bdanc|\bdab\b"),
    ("gesture", r"signal|directing traffic|\bguide\b|\bcall\b|\brespond\b"),
    ("wave", r"\bwav|\bbye"),
    ("raise hands", r"raise up"),
    ("bow", r"\bbow\b"),
    ("basketball", r"basketball"),
    ("soccer", r"soccer"),
    ("climb", r"\bclimb"),
    ("sword fight", r"sword|\bslash|\bparry|counter attack|\bfeint|shield|\bthrust"),
    ("jumping jacks", r"jumping jacks"),
    ("acrobatics", r"cartwheel|\bflip|backflip|sideflip|\broll"),
    ("get up", r"getting up|get up|gets up"),
    ("fall", r"\bfall"),
    ("crawl", r"\bcrawl"),
    ("kick", r"\bkick"),
    ("punch", r"\bpunch|\bstrike"),
    ("dodge", r"\bdodg"),
    ("taunt", r"\btaunt"),
    ("jump", r"\bjump|\bhop"),
    ("run", r"\brun|\bjog|\bdash"),
    ("sneak", r"\bsneak|stealth"),
    ("zombie walk", r"zombie"),
    ("walk", r"\bwalk|circling|\bstrut"),
    ("turn", r"\bturn"),
    ("spin", r"\bspin"),
    ("wash", r"\bwash"),
    ("pick up", r"\bscoop|\bpick"),
    ("balance", r"\bbalanc"),
)


def label_text(texts: list[str], source: str) -> str:
    """The manifest text that names the action (labels, not captions, where the source has them)."""
    if not texts:
        return ""
    if source.startswith("bandai"):
        return texts[0]  # Bandai: "content" then "content, style"
    if source == "cmu":
        return texts[-1]  # CMU description comes last (after any KIT-ML caption)
    return texts[1] if len(texts) > 1 else texts[0]  # extra/: "a person ..." | label | ...


def action_label(texts: list[str], source: str, path: str = "") -> str:
    """A coarse action label from the manifest texts (falling back to the file name)."""
    for text in (label_text(texts, source), " ".join(texts), Path(path).stem.replace("_", " ")):
        low = text.lower()
        for label, pattern in _LABEL_RULES:
            if re.search(pattern, low):
                return label
    return "other"


# Activities of the Li et al. (2018) CMU subset; main-set CMU trials described like this may be the
# very same captures.
_EXPMAP_ACTIVITIES = re.compile(r"basketball|\bwalk|\brun|\bjog|\bjump|soccer|traffic|window|signal")


def _cmu_trial_map(motion_root: Path) -> dict[str, tuple[str, str]]:
    """Staged CMU file path -> (trial id, CMU description), from the trials manifest."""
    out: dict[str, tuple[str, str]] = {}
    path = motion_root / "manifests" / "cmu_trials_manifest.csv"
    if not path.is_file():
        return out
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            for key in ("bvh_path", "amc_path"):
                if row.get(key):
                    out[row[key]] = (row["trial_id"], row.get("cmu_description", ""))
    return out


def _cmu_trial_from_path(path: str) -> str | None:
    m = re.search(r"(\d+)_(\d+)\.(?:bvh|amc)$", path, re.IGNORECASE)
    return f"{int(m.group(1)):02d}_{int(m.group(2)):02d}" if m else None


def _merge_texts(*lists: list[str]) -> list[str]:
    seen: dict[str, None] = {}
    for texts in lists:
        for t in texts:
            if t.strip():
                seen.setdefault(t.strip(), None)
    return list(seen)


# --- planning: de-duplication, recordings, splits ------------------------------------------------------


def plan_clips(rows: Iterable[Any], motion_root: Path, options: BuildOptions) -> list[PlannedClip]:
    """Turn manifest rows into the clips to build, de-duplicated, with labels, recordings and splits."""
    trial_map = _cmu_trial_map(motion_root)
    by_recording: dict[str, PlannedClip] = {}
    order: list[str] = []
    for row in rows:
        path = str(row.path)
        source = source_name(path)
        texts = [t for t in row.texts if t.strip()]
        clip = PlannedClip(
            index=-1,
            clip_id=row.clip_id,
            path=path,
            start_frame=int(row.start_frame),
            end_frame=int(row.end_frame),
            fps=float(row.fps),
            texts=texts,
            source=source,
            license=row.license,
            label=action_label(texts, source, path),
            recording="",
        )
        if source == "cmu":
            trial, description = trial_map.get(path, (_cmu_trial_from_path(path) or row.clip_id, ""))
            clip.recording = f"cmu:{trial}"
            activity = (description or label_text(texts, source)).lower()
            clip.force_train = bool(_EXPMAP_ACTIVITIES.search(activity))
        elif source == "cmu_expmap":
            clip.recording = f"cmu_expmap:{row.clip_id}"
            clip.force_train = True
        else:
            clip.recording = f"{source}:{row.clip_id}"
        previous = by_recording.get(clip.recording)
        if previous is None:
            by_recording[clip.recording] = clip
            order.append(clip.recording)
            continue
        # Same CMU trial twice: keep the preferred format, merge the texts.
        keep, drop = (clip, previous) if _prefer(clip, previous, options.prefer_cmu) else (previous, clip)
        keep.texts = _merge_texts(keep.texts, drop.texts)
        keep.also_paths = [*previous.also_paths, drop.path]
        keep.alternates = [*previous.alternates, (drop.path, drop.start_frame, drop.end_frame, drop.fps)]
        keep.label = action_label(keep.texts, keep.source, keep.path)
        keep.force_train = keep.force_train or drop.force_train
        by_recording[clip.recording] = keep
    clips = [by_recording[r] for r in order]
    if options.sources:
        wanted = set(options.sources)
        clips = [c for c in clips if c.source in wanted]
    if options.limit is not None:
        counts: Counter[str] = Counter()
        limited = []
        for c in clips:
            if counts[c.source] < options.limit:
                counts[c.source] += 1
                limited.append(c)
        clips = limited
    for i, c in enumerate(clips):
        c.index = i
    assign_splits(clips, options)
    return clips


def _prefer(a: PlannedClip, b: PlannedClip, prefer: str) -> bool:
    """True if `a` should be kept over `b` (two copies of one CMU trial)."""
    ext = "." + prefer.lower().lstrip(".")
    a_pref, b_pref = a.path.lower().endswith(ext), b.path.lower().endswith(ext)
    return a_pref and not b_pref


def assign_splits(clips: list[PlannedClip], options: BuildOptions) -> None:
    """Assign each clip's split from its recording (all clips of a recording share one split)."""
    if not (
        0 <= options.val_frac < 1 and 0 <= options.test_frac < 1 and options.val_frac + options.test_frac < 1
    ):
        raise InputError("val and test fractions must be in [0, 1) and sum to less than 1")
    rng = np.random.default_rng(options.seed)
    recordings: dict[str, list[PlannedClip]] = defaultdict(list)
    for c in clips:
        recordings[c.recording].append(c)
    label_recordings = Counter(members[0].label for members in recordings.values())
    per_source: dict[str, list[str]] = defaultdict(list)
    for rec, members in recordings.items():
        # Rare actions are only useful for training: a val/test copy would be the model's only example.
        rare = label_recordings[members[0].label] < options.min_label_recordings
        if rare or any(m.force_train for m in members):
            for m in members:
                m.split = "train"
            continue
        per_source[members[0].source].append(rec)
    for source in sorted(per_source):
        recs = sorted(per_source[source])
        recs = [recs[i] for i in rng.permutation(len(recs))]
        recs.sort(key=lambda r: recordings[r][0].label)  # stable: random within a label
        phase = rng.random()
        for k, rec in enumerate(recs):
            u = (phase + k * _GOLDEN) % 1.0
            split = (
                "val"
                if u < options.val_frac
                else "test"
                if u < options.val_frac + options.test_frac
                else "train"
            )
            for m in recordings[rec]:
                m.split = split


# --- duplicates among the CMU clips without trial ids ------------------------------------------------


def _pose_features(rot6d: np.ndarray, trans: np.ndarray) -> np.ndarray:
    """Joint positions relative to the pelvis, turned so the hips face a fixed direction (F, 24, 3):
    comparable between two retargets of one capture, blind to where and which way it was performed."""
    from vmclip.motion.format import Motion

    pos = Motion(rot6d, trans, FPS).joint_positions()
    pos = pos - pos[:, :1]
    hips = pos[:, 1] - pos[:, 2]
    ang = np.arctan2(hips[:, 2], hips[:, 0])
    c, s = np.cos(ang)[:, None], np.sin(ang)[:, None]
    x = pos[..., 0] * c + pos[..., 2] * s
    z = -pos[..., 0] * s + pos[..., 2] * c
    return np.stack([x, pos[..., 1], z], axis=-1)


def find_cmu_duplicates(
    candidates: dict[int, np.ndarray],
    trials: dict[int, np.ndarray],
    max_len_diff: int = 2,
    max_offset: int = 2,
    max_dist: float = 0.05,
) -> dict[int, int]:
    """Match clips without trial ids (`candidates`: index -> pose features) to CMU trials (`trials`).

    The same capture retargeted from two sources has (nearly) the same length, starts within a frame
    or two, and its pelvis-relative joints stay within a few cm (0.03-0.045 m measured on the 15 trials
    staged twice), whereas different walks of one subject can come as close per window but not over the
    whole clip at the same length. Matching is one-to-one (closest pairs first), since a capture is
    staged at most once per set. Returns candidate index -> trial index."""
    pairs: list[tuple[float, int, int]] = []
    for ci, a in candidates.items():
        for ti, b in trials.items():
            if abs(len(a) - len(b)) > max_len_diff:
                continue
            short, long_ = (a, b) if len(a) <= len(b) else (b, a)
            d = min(
                float(np.linalg.norm(long_[off : off + len(short)] - short, axis=-1).mean())
                for off in range(0, min(max_offset, len(long_) - len(short)) + 1)
            )
            if d < max_dist:
                pairs.append((d, ci, ti))
    found: dict[int, int] = {}
    used: set[int] = set()
    for _, ci, ti in sorted(pairs):
        if ci not in found and ti not in used:
            found[ci] = ti
            used.add(ti)
    return found


# --- loading (runs in worker processes) ----------------------------------------------------------------


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)  # two worker processes already use both cores


def _asf_for(path: str) -> str | None:
    if not path.lower().endswith(".amc"):
        return None
    p = Path(path)
    subject = p.stem.split("_")[0]
    return str(p.parent / f"{subject}.asf")


def _source_range(start: int, end: int, fps: float, label: str, options: BuildOptions) -> tuple[int, int]:
    """The source frames to load (end exclusive): the manifest's range, idle takes cropped to a centred
    window of `max_idle_seconds` (cropped before retargeting: no time spent on frames thrown away)."""
    if label == "idle":
        keep = int(round(options.max_idle_seconds * fps))
        if end - start > keep:
            start += (end - start - keep) // 2
            end = start + keep
    return start, end


def _load_file(
    motion_root: Path, path: str, start: int, end: int, fps: float, label: str, options: BuildOptions
):
    from vmclip.motion.mocap import load_mocap
    from vmclip.motion.sources import read_member

    data = read_member(motion_root, path)
    asf_rel = _asf_for(path)
    asf = read_member(motion_root, asf_rel) if asf_rel else None
    start, end = _source_range(start, end, fps, label, options)
    # AMC files carry no frame rate: the manifest's is used; BVH files state their own.
    motion = load_mocap(
        motion_root / path, data=data, asf=asf, fps=fps if asf_rel else None, frames=(start, end)
    )
    if abs(motion.fps - FPS) > 1e-3:
        motion = motion.resample(FPS)
    if motion.num_frames < options.min_seconds * FPS:
        raise InputError(
            f"only {motion.num_frames} frames at {FPS:g} fps in range {start}:{end} "
            f"(< {options.min_seconds} s)"
        )
    return motion


def load_clip(motion_root: Path, clip: PlannedClip, options: BuildOptions) -> dict[str, Any]:
    """Load, retarget, crop and normalise one planned clip (and its mirror). Never raises: problems are
    returned as {"index", "error"} so one bad file cannot stop the build. When the clip's file fails and
    a duplicate copy of the same recording exists (CMU AMC vs BVH), that copy is used instead."""
    errors = []
    candidates = [(clip.path, clip.start_frame, clip.end_frame, clip.fps), *clip.alternates]
    for path, start, end, fps in candidates:
        try:
            motion = _load_file(motion_root, path, start, end, fps, clip.label, options)
            rot6d = motion.rot6d.astype(np.float32)
            trans = motion.trans.astype(np.float32).copy()
            if not (np.isfinite(rot6d).all() and np.isfinite(trans).all()):
                raise InputError("NaN or infinite values after retargeting")
            break
        except Exception as exc:  # noqa: BLE001 - reported in one line and skipped by the caller
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if not isinstance(exc, InputError):
                msg = f"{type(exc).__name__}: {msg}"
            errors.append(msg if path == clip.path else f"{path}: {msg}")
    else:
        return {"index": clip.index, "error": "; ".join(errors)}
    trans[:, [0, 2]] -= trans[0, [0, 2]]  # pelvis starts at x = z = 0 (heading kept)
    out = {"index": clip.index, "rot6d": rot6d, "trans": trans, "loaded_path": path, "warnings": errors}
    if options.mirror:
        from vmclip.motion.format import Motion

        mirrored = Motion(rot6d, trans, FPS, list(clip.texts)).mirrored()
        out["mirror_rot6d"] = mirrored.rot6d.astype(np.float32)
        out["mirror_trans"] = mirrored.trans.astype(np.float32)
        out["mirror_texts"] = mirrored.texts
    return out


def _load_star(args: tuple[Path, PlannedClip, BuildOptions]) -> dict[str, Any]:
    return load_clip(*args)


# --- the build -----------------------------------------------------------------------------------------


def _iter_results(motion_root: Path, clips: list[PlannedClip], options: BuildOptions):
    tasks = [(motion_root, c, options) for c in clips]
    if options.workers <= 1:
        _init_worker()
        for t in tasks:
            yield _load_star(t)
        return
    ctx = mp.get_context("spawn")  # fork after torch has started threads can deadlock
    with ctx.Pool(options.workers, initializer=_init_worker) as pool:
        yield from pool.imap_unordered(_load_star, tasks, chunksize=1)


def build_dataset(
    src: str | Path,
    out: str | Path,
    options: BuildOptions | None = None,
    *,
    log: Callable[[str], None] | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Build the processed data set from the motion folder `src` into `out`; returns the meta dict.

    Keyword overrides set `BuildOptions` fields (e.g. `limit=3, workers=1`)."""
    from vmclip.motion.sources import iter_manifest

    log = log or (lambda s: print(s, file=sys.stderr))
    options = _options(options, overrides)
    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise InputError(f"{src}: motion data folder not found")
    if options.prefer_cmu not in ("amc", "bvh"):
        raise InputError(f"prefer_cmu must be 'amc' or 'bvh', not {options.prefer_cmu!r}")
    if options.sources:
        unknown = sorted(set(options.sources) - set(SOURCES))
        if unknown:
            raise InputError(f"unknown source(s) {unknown}; known: {', '.join(SOURCES)}")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{out}: cannot create the output folder ({exc.strerror})") from None

    t0 = time.time()
    clips = plan_clips(iter_manifest(src), src, options)
    if not clips:
        raise InputError(f"{src}: no clips selected from the manifests")
    log(f"data build: {len(clips)} recordings to load from {src} with {options.workers} worker(s)")
    results, skipped, fallbacks = _load_all(src, clips, options, log, t0)
    load_s = time.time() - t0
    duplicates = _drop_cmu_duplicates(clips, results, log)
    counts = {split: _write_split(out, split, clips, results, options) for split in SPLITS}
    meta = {
        "fps": FPS,
        "format": "rot6d (F,24,6) float32, trans (F,3) float32, clip_start (n+1,) int64; "
        "SMPL-24, Y up, metres",
        "counts": {
            s: {
                **{k: v for k, v in counts[s].items() if k not in ("labels", "sources")},
                "minutes": round(counts[s]["frames"] / FPS / 60, 2),
                "labels": dict(sorted(counts[s]["labels"].items())),
                "sources": dict(sorted(counts[s]["sources"].items())),
            }
            for s in SPLITS
        },
        "labels": dict(sorted(sum((counts[s]["labels"] for s in SPLITS), Counter()).items())),
        "sources": dict(sorted(sum((counts[s]["sources"] for s in SPLITS), Counter()).items())),
        "options": asdict(options),
        "src": str(src),
        "recordings_planned": len(clips),
        "skipped": skipped,
        "fallbacks": fallbacks,
        "cmu_duplicates": duplicates,
        "seconds": {"load": round(load_s, 1), "total": round(time.time() - t0, 1)},
    }
    _write_json(out / "meta.json", meta)
    return meta


def _options(options: BuildOptions | None, overrides: dict[str, Any]) -> BuildOptions:
    options = options or BuildOptions()
    for key, value in overrides.items():
        if not hasattr(options, key):
            raise TypeError(f"unknown build option {key!r}")
        setattr(options, key, value)
    return options


def _load_all(
    src: Path, clips: list[PlannedClip], options: BuildOptions, log: Callable[[str], None], t0: float
) -> tuple[dict[int, dict[str, Any]], list[dict[str, str]], list[dict[str, str]]]:
    """Load and retarget every planned clip: the results by clip index, the clips skipped (with the
    error), and those read from a fallback file."""
    from vmclip.progress import progress

    results: dict[int, dict[str, Any]] = {}
    skipped: list[dict[str, str]] = []
    fallbacks: list[dict[str, str]] = []
    tty = sys.stderr.isatty()
    step = max(1, len(clips) // 10)
    results_iter = progress(_iter_results(src, clips, options), desc="data build", total=len(clips))
    for k, res in enumerate(results_iter):
        clip = clips[res["index"]]
        if "error" in res:
            skipped.append({"clip_id": clip.clip_id, "path": clip.path, "error": res["error"]})
            log(f"skipped {clip.path}: {res['error']}")
        else:
            results[res["index"]] = res
            if res["warnings"]:
                fallbacks.append(
                    {
                        "clip_id": clip.clip_id,
                        "path": clip.path,
                        "used": res["loaded_path"],
                        "error": res["warnings"][0],
                    }
                )
                log(f"used {res['loaded_path']} instead of {clip.path}: {res['warnings'][0]}")
        if not tty and (k + 1) % step == 0:
            log(f"data build: {k + 1}/{len(clips)} loaded ({time.time() - t0:.0f} s)")
    return results, skipped, fallbacks


def _drop_cmu_duplicates(
    clips: list[PlannedClip], results: dict[int, dict[str, Any]], log: Callable[[str], None]
) -> list[dict[str, str]]:
    """The CMU subset without trial ids: a clip that is a staged trial again is counted once (dropped
    from `results`, its texts added to the trial's)."""
    cand = {
        c.index: _pose_features(results[c.index]["rot6d"], results[c.index]["trans"])
        for c in clips
        if c.source == "cmu_expmap" and c.index in results
    }
    trials = {
        c.index: _pose_features(results[c.index]["rot6d"], results[c.index]["trans"])
        for c in clips
        if c.source == "cmu" and c.index in results
    }
    duplicates = []
    for ci, ti in sorted(find_cmu_duplicates(cand, trials).items()):
        dup, trial = clips[ci], clips[ti]
        trial.texts = _merge_texts(trial.texts, dup.texts)
        if "mirror_texts" in results[ti]:
            from vmclip.motion.format import mirror_text

            results[ti]["mirror_texts"] = [mirror_text(t) for t in trial.texts]
        del results[ci]
        duplicates.append({"clip_id": dup.clip_id, "same_as": trial.clip_id, "recording": trial.recording})
    if duplicates:
        log(
            f"data build: {len(duplicates)} clip(s) of cmu_expmap_li2018 are staged CMU trials again: "
            "counted once"
        )
    return duplicates


def _write_split(
    out: Path, split: str, clips: list[PlannedClip], results: dict[int, dict[str, Any]], options: BuildOptions
) -> dict[str, Any]:
    """Write one split (`<split>.npz` and `<split>.json`, with the mirrored copies); its counts."""
    counts: dict[str, Any] = {
        "clips": 0,
        "frames": 0,
        "recordings": 0,
        "labels": Counter(),
        "sources": Counter(),
    }
    rot_parts, trans_parts, records = [], [], []
    recordings = set()
    for clip in clips:
        res = results.get(clip.index)
        if clip.split != split or res is None:
            continue
        recordings.add(clip.recording)
        variants = [(res["rot6d"], res["trans"], clip.texts, False)]
        if options.mirror:
            variants.append((res["mirror_rot6d"], res["mirror_trans"], res["mirror_texts"], True))
        for rot6d, trans, texts, mirrored in variants:
            rot_parts.append(rot6d)
            trans_parts.append(trans)
            records.append(
                {
                    "clip_id": clip.clip_id + ("_M" if mirrored else ""),
                    "texts": list(texts),
                    "label": clip.label,
                    "source": clip.source,
                    "license": clip.license,
                    "mirrored": mirrored,
                    "recording": clip.recording,
                    "frames": int(len(rot6d)),
                    "file": res["loaded_path"],
                }
            )
            counts["clips"] += 1
            counts["frames"] += int(len(rot6d))
            counts["labels"][clip.label] += 1
            counts["sources"][clip.source] += 1
    counts["recordings"] = len(recordings)
    lengths = np.array([len(r) for r in rot_parts], dtype=np.int64)
    clip_start = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    rot = np.concatenate(rot_parts) if rot_parts else np.zeros((0, 24, 6), np.float32)
    tr = np.concatenate(trans_parts) if trans_parts else np.zeros((0, 3), np.float32)
    with atomic_output(out / f"{split}.npz") as tmp, open(tmp, "wb") as fh:
        np.savez(fh, rot6d=rot.astype(np.float32), trans=tr.astype(np.float32), clip_start=clip_start)
    _write_json(out / f"{split}.json", records)
    return counts


def _write_json(path: Path, obj: Any) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def format_counts(meta: dict[str, Any]) -> str:
    """Human-readable tables of the counts (clips incl. mirrored copies) per split, label and source."""
    lines = []
    c = meta["counts"]
    lines.append("split   recordings  clips  minutes")
    for s in SPLITS:
        lines.append(f"{s:<7} {c[s]['recordings']:>10}  {c[s]['clips']:>5}  {c[s]['minutes']:>7.1f}")
    for key, title in (("labels", "label"), ("sources", "source")):
        names = sorted(meta[key], key=lambda n: (-meta[key][n], n))
        lines.append("")
        lines.append(f"{title:<16} {'train':>6} {'val':>6} {'test':>6} {'total':>6}")
        for n in names:
            row = [c[s][key].get(n, 0) for s in SPLITS]
            lines.append(f"{n:<16} {row[0]:>6} {row[1]:>6} {row[2]:>6} {sum(row):>6}")
    if meta["skipped"]:
        lines.append("")
        lines.append(f"skipped {len(meta['skipped'])} file(s) (see meta.json)")
    return "\n".join(lines)


def load_split(out: str | Path, split: str) -> tuple[dict[str, np.ndarray], list[dict[str, Any]]]:
    """Read one split of a built data set: ({"rot6d", "trans", "clip_start"}, clip records)."""
    if split not in SPLITS:
        raise InputError(f"split must be one of {SPLITS}, not {split!r}")
    out = Path(out)
    npz, js = out / f"{split}.npz", out / f"{split}.json"
    if not npz.is_file() or not js.is_file():
        raise InputError(f"{out}: no processed {split} split (run `vmclip data build` first)")
    with np.load(npz, allow_pickle=False) as data:
        missing = {"rot6d", "trans", "clip_start"} - set(data.files)
        if missing:
            raise InputError(f"{npz}: missing arrays {sorted(missing)}")
        arrays = {k: data[k] for k in ("rot6d", "trans", "clip_start")}
    clips = json.loads(js.read_text(encoding="utf-8"))
    if len(clips) + 1 != len(arrays["clip_start"]) or arrays["clip_start"][-1] != len(arrays["rot6d"]):
        raise InputError(f"{out}: {split}.npz and {split}.json do not agree (rebuild the data set)")
    return arrays, clips
