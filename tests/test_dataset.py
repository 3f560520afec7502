"""Data set build: planning (labels, CMU de-duplication, splits by recording) on manifest-like rows, and
a real build on a small subset of ../shared/data/motion."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from vmclip.errors import InputError
from vmclip.motion.dataset import (
    SPLITS,
    BuildOptions,
    action_label,
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
        Row("cmu_01_01", "cmu/iclone_bvh60/001/001_01.bvh",
            ["A person hops forward.", "playground - forward jumps"], fps=60),
        Row("cmuamc_01_01", "cmu/asfamc120/01/01_01.amc", ["playground - forward jumps"], fps=120),
        Row("cmu_02_09", "cmu/iclone_bvh60/002/002_09.bvh", ["swordplay"], fps=60),
        Row("cmuexp_walk_1", "extra/cmu_expmap_li2018/train__walking__walking_1.bvh",
            ["a person walks", "walking"]),
        Row("reactidle_000", "extra/reactidle/000_genuine.bvh", ["a person stands idle", "standing idle"],
            fps=24),
    ]
    for content in ("walk", "wave left hand", "bow", "run"):
        for style in ("active", "tired", "happy"):
            for take in range(1, 6):
                slug = content.replace(" ", "-")
                rows.append(Row(f"bn2_{slug}_{style}_{take:03d}",
                                f"bandai_namco/dataset-2/data/dataset-2_{slug}_{style}_{take:03d}.bvh",
                                [content, f"{content}, {style} style"]))
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
