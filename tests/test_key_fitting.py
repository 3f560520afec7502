"""The add-on's key fitting (blender_addon/fitting.py, numpy only): its segments are SciPy's cubic
Hermite spline, the keys it picks keep a curve within the tolerance on every frame, and a quaternion
sign flip costs no key. Blender's own evaluation of the written keys is checked in
tests/test_addon_rigs.py (`_check_curves`)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from scipy.interpolate import CubicHermiteSpline
from scipy.spatial.transform import Rotation

REPO = Path(__file__).resolve().parents[1]


def _load():
    # (blender_addon/__init__.py imports bpy; fitting.py alone is numpy only)
    spec = importlib.util.spec_from_file_location(
        "vmclip_addon_fitting", REPO / "blender_addon" / "fitting.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fitting = _load()


def test_basis_is_scipys_cubic_hermite_spline():
    rng = np.random.default_rng(0)
    frames = 1.0 + np.cumsum(rng.uniform(0.5, 1.5, 90))
    keys = np.unique(np.r_[0, rng.choice(np.arange(1, 89), 12, replace=False), 89])
    values, slopes = rng.normal(size=len(keys)), rng.normal(size=len(keys))
    got = fitting.basis(frames, keys) @ np.r_[values, slopes]
    want = CubicHermiteSpline(frames[keys], values, slopes)(frames)
    np.testing.assert_allclose(got, want, atol=1e-9)


def test_handles_a_third_of_the_way_along_the_slope():
    at, slopes, values = np.array([1.0, 4.0, 10.0]), np.array([0.5, -1.0, 2.0]), np.array([0.0, 1.0, 3.0])
    left, right = fitting.handles(at, slopes, values)
    np.testing.assert_allclose(right[0], [2.0, 0.5])
    np.testing.assert_allclose(left[1], [3.0, 2.0])
    np.testing.assert_allclose(right[1], [6.0, -1.0])
    np.testing.assert_allclose(left[2], [8.0, -1.0])


def _walk_like(n: int = 120, seed: int = 0) -> np.ndarray:
    """A joint's quaternions (w, x, y, z) over n frames: a swing with harmonics and a little noise."""
    t = np.linspace(0, 4, n)
    rng = np.random.default_rng(seed)
    rv = np.stack(
        [0.6 * np.sin(2 * np.pi * t) + 0.1 * np.sin(6 * np.pi * t), 0.2 * np.cos(2 * np.pi * t), 0.1 * t], -1
    )
    rv += rng.normal(scale=0.001, size=rv.shape)
    return Rotation.from_rotvec(rv).as_quat()[:, [3, 0, 1, 2]]


@pytest.mark.parametrize("tol_deg", [0.5, 0.2])
def test_keys_keep_the_curve_within_tolerance(tol_deg):
    q = _walk_like()
    frames = 1.0 + np.arange(len(q))
    tol = np.full(len(q), tol_deg)
    keep = fitting.select_keys(frames, q, "rotation_quaternion", 1.0, tol)
    assert keep[0] and keep[-1] and keep.sum() < len(q) / 4, keep.sum()
    _, _, err = fitting.fit(frames, q, np.flatnonzero(keep), "rotation_quaternion", 1.0, tol)
    # (the error is the angle of the rotation between curve and sample, checked here by SciPy)
    vals, slopes, _ = fitting.fit(frames, q, np.flatnonzero(keep), "rotation_quaternion", 1.0, tol)
    curve = fitting.basis(frames, np.flatnonzero(keep)) @ np.concatenate([vals, slopes])
    got, want = (Rotation.from_quat(x[:, [1, 2, 3, 0]]) for x in (curve, q))
    angle = np.degrees((got.inv() * want).magnitude())
    np.testing.assert_allclose(angle, err, atol=1e-4)
    assert angle.max() <= tol_deg * fitting.MARGIN + 1e-9


def test_a_quaternion_sign_flip_costs_no_key():
    q = _walk_like(seed=1)
    frames = 1.0 + np.arange(len(q))
    tol = np.full(len(q), 0.5)
    flipped = q.copy()
    flipped[40:70] *= -1  # the same rotations, as a retarget may hand them over
    same = fitting.same_hemisphere(flipped)
    np.testing.assert_allclose(same, q * np.sign(q[0] @ same[0]), atol=1e-12)
    plain = fitting.select_keys(frames, q, "rotation_quaternion", 1.0, tol).sum()
    assert fitting.select_keys(frames, same, "rotation_quaternion", 1.0, tol).sum() == plain


def test_location_tolerance_in_metres_of_the_character():
    """A root path in centimetre units (unit 0.01 m) keeps 5 mm in metres on every frame, per frame
    tolerances (tighter where a foot is planted) included."""
    t = np.linspace(0, 4, 120)
    path = np.stack([100 * t, 3 * np.sin(2 * np.pi * t), 90 + 2 * np.cos(4 * np.pi * t)], -1)  # cm
    frames = 1.0 + np.arange(len(t))
    tol = np.where((t > 1) & (t < 2), 0.0025, 0.005)
    keep = fitting.select_keys(frames, path, "location", 0.01, tol)
    _, _, err = fitting.fit(frames, path, np.flatnonzero(keep), "location", 0.01, tol)
    assert (err <= tol).all() and keep.sum() < 40
