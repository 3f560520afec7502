"""Shared fixtures. Tests that read ../shared (mocap, photos) skip cleanly where it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

# The property and fuzz tests draw the same examples on every run, so CI passes or fails on the
# code, not on the draw; `VMCLIP_HYPOTHESIS_PROFILE=explore` draws new ones when hunting bugs.
settings.register_profile("reproducible", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("VMCLIP_HYPOTHESIS_PROFILE", "reproducible"))

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("VMCLIP_SHARED", REPO.parent / "shared"))
MOTION_DATA = SHARED / "data" / "motion"
PHOTOS = SHARED / "data" / "photos"

# No test may touch the network or the user's home cache.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def motion_data() -> Path:
    if not MOTION_DATA.is_dir():
        pytest.skip("../shared/data/motion is absent")
    return MOTION_DATA


@pytest.fixture(scope="session")
def photos_dir() -> Path:
    if not PHOTOS.is_dir():
        pytest.skip("../shared/data/photos is absent")
    return PHOTOS
