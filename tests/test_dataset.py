"""Data set build: planning (labels, CMU de-duplication, splits by recording) on manifest-like rows, and
a real build on a small subset of ../shared/data/motion."""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from vmclip.errors import InputError
from vmclip.motion.dataset import (
    SPLITS,
    BuildOptions,
    action_label,
    build_dataset,
    format_counts,
    load_split,
    plan_clips,
)


@dataclass
class Row:
    clip_id: str
    path: str
    texts: list[str]
    start_frame: int = 0
    end_frame: int = 100
    fps: float = 30.0
    source: str = "test"
    format: str = "bvh"
    license: str = "test licence"


def _rows() -> list[Row]:
    rows = [
        Row(
            "cmu_01_01",
            "cmu/iclone_bvh60/001/001_01.bvh",
            ["A person hops forward.", "playground - forward jumps"],
            fps=60,
        ),
        Row("cmuamc_01_01", "cmu/asfamc120/01/01_01.amc", ["playground - forward jumps"], fps=120),
        Row("cmu_02_09", "cmu/iclone_bvh60/002/002_09.bvh", ["swordplay"], fps=60),
        Row(
            "cmuexp_walk_1",
            "extra/cmu_expmap_li2018/train__walking__walking_1.bvh",
            ["a person walks", "walking"],
        ),
        Row(
            "reactidle_000",
            "extra/reactidle/000_genuine.bvh",
            ["a person stands idle", "standing idle"],
            fps=24,
        ),
    ]
    for content in ("walk", "wave left hand", "bow", "run"):
        for style in ("active", "tired", "happy"):
            for take in range(1, 6):
                slug = content.replace(" ", "-")
                rows.append(
                    Row(
                        f"bn2_{slug}_{style}_{take:03d}",
                        f"bandai_namco/dataset-2/data/dataset-2_{slug}_{style}_{take:03d}.bvh",
                        [content, f"{content}, {style} style"],
                    )
                )
    return rows


def test_labels() -> None:
    assert action_label(["walk turn left", "walk turn left, happy style"], "bandai2") == "walk"
    assert action_label(["raise up left hand", "x"], "bandai1") == "raise hands"
    assert action_label(["A person climbs.", "playground - climb, jump down"], "cmu") == "climb"
    assert action_label(["a person attacks", "jumping sword attack", "x"], "ase") == "sword fight"
    assert action_label(["a person runs", "running and turning left"], "deepmimic") == "run"
    assert action_label(["a person stands idle in place", "standing idle"], "reactidle") == "idle"
    assert action_label(["a person does a cartwheel", "cartwheel"], "deepmimic") == "acrobatics"
    assert action_label(["a person does jumping jacks", "jumping jacks"], "xia") == "jumping jacks"
    assert action_label(["something odd"], "xia") == "other"


def test_plan_deduplicates_cmu_and_keeps_expmap_lookalikes_in_train(tmp_path: Path) -> None:
    clips = plan_clips(_rows(), tmp_path, BuildOptions())
    by_id = {c.clip_id: c for c in clips}
    # The trial staged twice counts once: the AMC copy is kept, the texts of both are merged.
    assert "cmu_01_01" not in by_id and "cmuamc_01_01" in by_id
    kept = by_id["cmuamc_01_01"]
    assert kept.recording == "cmu:01_01" and kept.also_paths == ["cmu/iclone_bvh60/001/001_01.bvh"]
    assert kept.texts == ["playground - forward jumps", "A person hops forward."]
    # Possible duplicates of the id-less CMU subset stay in train; unrelated CMU trials are drawn.
    assert kept.split == "train" and by_id["cmuexp_walk_1"].split == "train"
    assert not by_id["cmu_02_09"].force_train
    # Bandai: every recording in exactly one split, and each split gets several labels.
    splits = {c.recording: c.split for c in clips}
    assert len(splits) == len(clips)
    bandai = [c for c in clips if c.source == "bandai2"]
    counts = {s: sum(c.split == s for c in bandai) for s in SPLITS}
    assert counts["val"] >= 4 and counts["test"] >= 4 and counts["train"] >= 40
    assert len({c.label for c in bandai if c.split == "val"}) >= 3
    # Same seed, same split; another seed, another split.
    again = {c.clip_id: c.split for c in plan_clips(_rows(), tmp_path, BuildOptions())}
    assert again == {c.clip_id: c.split for c in clips}
    other = {c.clip_id: c.split for c in plan_clips(_rows(), tmp_path, BuildOptions(seed=1))}
    assert other != again


def test_prefer_bvh_and_limits(tmp_path: Path) -> None:
    clips = plan_clips(_rows(), tmp_path, BuildOptions(prefer_cmu="bvh"))
    assert "cmu_01_01" in {c.clip_id for c in clips}
    limited = plan_clips(_rows(), tmp_path, BuildOptions(limit=2, sources=["bandai2", "cmu"]))
    assert sorted(c.source for c in limited) == ["bandai2", "bandai2", "cmu", "cmu"]
    with pytest.raises(InputError, match="fractions"):
        plan_clips(_rows(), tmp_path, BuildOptions(val_frac=0.6, test_frac=0.5))


def test_load_split_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="data build"):
        load_split(tmp_path, "train")
    with pytest.raises(InputError, match="split"):
        load_split(tmp_path, "dev")


def _check_built(out: Path, meta: dict) -> dict[str, list[dict]]:
    assert meta["fps"] == 30.0
    seen: dict[str, str] = {}
    all_clips = {}
    for split in SPLITS:
        arrays, clips = load_split(out, split)
        all_clips[split] = clips
        starts = arrays["clip_start"]
        assert arrays["rot6d"].dtype == np.float32 and arrays["rot6d"].shape[1:] == (24, 6)
        assert arrays["trans"].shape == (len(arrays["rot6d"]), 3)
        assert np.isfinite(arrays["rot6d"]).all() and np.isfinite(arrays["trans"]).all()
        assert len(clips) == meta["counts"][split]["clips"]
        for i, clip in enumerate(clips):
            assert set(clip) >= {"clip_id", "texts", "label", "source", "license", "mirrored", "recording"}
            # No recording in two splits.
            assert seen.setdefault(clip["recording"], split) == split
            s, e = starts[i], starts[i + 1]
            assert e - s >= 15 and np.allclose(arrays["trans"][s, [0, 2]], 0.0, atol=1e-6)
        originals = [c for c in clips if not c["mirrored"]]
        assert len(originals) * 2 == len(clips)
    return all_clips


def test_build_real_subset(motion_data: Path, tmp_path: Path) -> None:
    """A quick build over a couple of recordings from every source, with the two worker processes."""
    out = tmp_path / "processed"
    logs: list[str] = []
    meta = build_dataset(
        motion_data,
        out,
        limit=2,
        workers=2,
        val_frac=0.3,
        test_frac=0.3,
        min_label_recordings=1,
        log=logs.append,
    )
    clips = _check_built(out, meta)
    loaded = [c for split in SPLITS for c in clips[split]]
    # Every source except ones whose importer failed for both files is present.
    failed_sources = {s["path"].split("/")[0] for s in meta["skipped"]}
    assert len({c["source"] for c in loaded}) >= 8 - len(failed_sources)
    assert sum(len(clips[s]) for s in ("val", "test")) > 0
    # Mirrored copies swap left/right words in the texts.
    by_id = {c["clip_id"]: c for c in loaded}
    for c in loaded:
        if c["mirrored"]:
            assert by_id[c["clip_id"][:-2]]["recording"] == c["recording"]
    waves = [c for c in loaded if "left" in " ".join(c["texts"]) and not c["mirrored"]]
    for c in waves:
        assert "right" in " ".join(by_id[c["clip_id"] + "_M"]["texts"])
    # Idle takes are cropped.
    for c in loaded:
        if c["label"] == "idle":
            assert c["frames"] <= 10 * 30 + 1
    table = format_counts(meta)
    assert all(label in table for label in meta["labels"]) and all(s in table for s in meta["sources"])
    saved = json.loads((out / "meta.json").read_text())
    assert saved["counts"] == meta["counts"]


def test_unreadable_files_are_skipped(motion_data: Path, tmp_path: Path, capsys) -> None:
    """A broken and a missing file are each reported in one line and skipped; the rest is built."""
    from vmclip.cli import main
    from vmclip.motion.sources import iter_manifest, read_member

    good = next(r for r in iter_manifest(motion_data) if r.path.startswith("bandai_namco/dataset-1"))
    root = tmp_path / "motion"
    (root / "manifests").mkdir(parents=True)
    (root / "bandai_namco" / "dataset-1").mkdir(parents=True)
    text = read_member(motion_data, good.path)
    with zipfile.ZipFile(root / "bandai_namco" / "dataset-1" / "data.zip", "w") as zf:
        zf.writestr("good_001.bvh", text)
        zf.writestr("broken_001.bvh", text[: len(text) // 3])
    header = "clip_id,bvh_path,start_frame,end_frame,fps,texts,source,format,license\n"
    rows = [
        f"{name},bandai_namco/dataset-1/data/{name}_001.bvh,0,{good.end_frame},30,wave left hand | wave,"
        "bandai,bvh,CC BY-NC 4.0\n"
        for name in ("good", "broken", "missing")
    ]
    (root / "manifests" / "paired_manifest.csv").write_text(header + "".join(rows))
    out = tmp_path / "out"
    code = main(["data", "build", "--src", str(root), "--out", str(out), "--workers", "1"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    skipped = [line for line in captured.err.splitlines() if line.startswith("skipped ")]
    assert len(skipped) == 2
    assert any("broken_001" in s for s in skipped) and any("missing" in s for s in skipped)
    meta = json.loads((out / "meta.json").read_text())
    assert len(meta["skipped"]) == 2
    total = sum(meta["counts"][s]["clips"] for s in SPLITS)
    assert total == 2  # the good clip and its mirror
    assert "wave" in captured.out


def test_cli_bad_arguments(tmp_path: Path, capsys) -> None:
    from vmclip.cli import main

    assert main(["data", "build", "--src", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "not found" in capsys.readouterr().err
    assert (
        main(["data", "build", "--src", str(tmp_path), "--out", str(tmp_path / "o"), "--sources", "bogus"])
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bogus" in err


def test_find_cmu_duplicates() -> None:
    from vmclip.motion.dataset import find_cmu_duplicates

    rng = np.random.default_rng(0)
    trial_a = rng.normal(scale=0.3, size=(100, 24, 3))
    trial_b = rng.normal(scale=0.3, size=(80, 24, 3))
    candidates = {
        0: trial_a[1:] + rng.normal(scale=0.01, size=(99, 24, 3)),  # a, minus its first frame
        1: trial_b[:79] + 0.001,  # b
        2: trial_a[:90],  # same poses but 10 frames shorter: another take, not a duplicate
        3: rng.normal(scale=0.3, size=(100, 24, 3)),  # same length, other motion
        4: trial_a[:99] + 0.02,  # a again, but a worse match than 0
    }
    found = find_cmu_duplicates(candidates, {10: trial_a, 11: trial_b})
    assert found == {0: 10, 1: 11}  # one-to-one: 4 loses trial a to the closer 0
