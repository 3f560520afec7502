"""The add-on zip builder and the add-on's pure-numpy parts (no Blender needed)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation
from vmclip.motion import skeleton

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
import build_addon  # noqa: E402


def _load_smpl():
    # blender_addon/__init__.py imports bpy; smpl.py alone is numpy only.
    spec = importlib.util.spec_from_file_location("vmclip_addon_smpl", REPO / "blender_addon" / "smpl.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


smpl = _load_smpl()


def test_build_zip_bundles_protocol_and_manifest_wheels(tmp_path):
    cache = build_addon.WHEEL_CACHE
    zip_path = build_addon.build(tmp_path, offline=True, log=lambda *_: None)
    manifest_src = build_addon.read_manifest()
    assert zip_path.name == f"{manifest_src['id']}-{manifest_src['version']}.zip"
    with zipfile.ZipFile(zip_path) as zf:
        names = set(zf.namelist())
        top = manifest_src["id"]
        assert all(n.startswith(f"{top}/") for n in names)  # one folder: extension and legacy add-on
        manifest = tomllib.loads(zf.read(f"{top}/blender_manifest.toml").decode())
        for src in sorted((REPO / "shared" / "vmclip_protocol").glob("*.py")):
            assert zf.read(f"{top}/vmclip_protocol/{src.name}") == src.read_bytes()
        assert f"{top}/__init__.py" in names and b"bl_info" in zf.read(f"{top}/__init__.py")
        bundled = sorted(n.split("/")[-1] for n in names if n.endswith(".whl"))
    listed = sorted(Path(w).name for w in manifest.get("wheels", []))
    assert bundled == listed  # the manifest never lists a wheel the zip lacks
    have_all = all((cache / Path(w).name).is_file() for w in manifest_src["wheels"])
    if have_all:  # cache present: offline build bundles all four platforms
        plats = " ".join(listed)
        assert "manylinux" in plats and "win_amd64" in plats and "universal2" in plats
        for name in listed:
            with zipfile.ZipFile(cache / name) as whl:
                assert any(n.startswith("zmq/") for n in whl.namelist())


def test_build_without_reachable_wheels_says_so(tmp_path):
    notes = []
    empty = tmp_path / "empty-cache"
    zip_path = build_addon.build(tmp_path / "out", offline=True, cache=empty, log=notes.append)
    assert any("WITHOUT bundled pyzmq wheels" in n for n in notes)
    with zipfile.ZipFile(zip_path) as zf:
        manifest = tomllib.loads(zf.read("videomotionclip/blender_manifest.toml").decode())
        assert "wheels" not in manifest and not any(n.endswith(".whl") for n in zf.namelist())
        assert manifest["id"] == "videomotionclip" and "permissions" in manifest
    with pytest.raises(build_addon.BuildError, match="wheels unavailable"):
        build_addon.build(
            tmp_path / "out2", offline=True, require_wheels=True, cache=empty, log=lambda *_: None
        )


def test_build_cli_reports_errors_in_one_line(tmp_path, capsys):
    bad = tmp_path / "file"
    bad.write_text("x")
    assert build_addon.main(["--offline", "--out", str(bad / "sub")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("build_addon: error:")


def test_addon_skeleton_matches_backend():
    """One copy: the add-on, the backend and the wire format all take the skeleton from
    vmclip_protocol.skeleton."""
    import vmclip_protocol
    from vmclip_protocol import skeleton as shared

    assert smpl.JOINT_NAMES is skeleton.JOINT_NAMES is vmclip_protocol.JOINT_NAMES is shared.JOINT_NAMES
    assert smpl.REST_OFFSETS is skeleton.REST_OFFSETS is shared.REST_OFFSETS
    assert smpl.JOINT_NAMES == skeleton.JOINT_NAMES
    assert smpl.PARENTS == skeleton.PARENTS
    np.testing.assert_array_equal(smpl.REST_OFFSETS, skeleton.REST_OFFSETS)
    assert smpl.Skeleton().pelvis_height() == pytest.approx(skeleton.pelvis_height())
    np.testing.assert_allclose(smpl.Skeleton().rest_positions(), skeleton.rest_positions())


def test_built_addon_loads_its_vendored_skeleton_without_pyzmq(tmp_path):
    """The zip's smpl.py imports the vendored vmclip_protocol.skeleton; with pyzmq missing (a Blender
    without the bundled wheels) the armature code still loads and the client reports the problem."""
    zip_path = build_addon.build(tmp_path, offline=True, log=lambda *_: None)
    top = build_addon.read_manifest()["id"]
    with zipfile.ZipFile(zip_path) as zf:
        assert (
            zf.read(f"{top}/vmclip_protocol/skeleton.py")
            == (REPO / "shared" / "vmclip_protocol" / "skeleton.py").read_bytes()
        )
        zf.extractall(tmp_path / "addons")
    code = (
        "import sys; sys.modules['zmq'] = None; sys.path[:0] = [sys.argv[1]]; "
        "sys.modules.pop('vmclip_protocol', None); "
        f"import {top}.smpl as smpl, {top}.backend as backend; "
        f"from {top}.vmclip_protocol import skeleton; "
        "assert smpl.JOINT_NAMES is skeleton.JOINT_NAMES and len(smpl.Skeleton().names) == 24; "
        "assert backend.protocol is None; "
        "print(skeleton.__file__)"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the zip's copy, not the checkout's
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "addons")], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().startswith(str(tmp_path / "addons" / top))


rotvecs = st.lists(st.floats(-3.0, 3.0), min_size=3, max_size=3)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_bone_quaternions_round_trip_through_posed_matrices(seed):
    """Keying (motion -> pose-bone quaternions) and baking (posed bone matrices -> motion) are inverse,
    for arbitrary bone rest orientations and an arbitrarily turned armature object."""
    rng = np.random.default_rng(seed)
    n_frames, parents = 3, smpl.PARENTS
    local = Rotation.random(n_frames * 24, random_state=rng).as_matrix().reshape(n_frames, 24, 3, 3)
    rest = Rotation.random(24, random_state=rng).as_matrix()
    q = smpl.motion_to_bone_quaternions(local, rest)
    basis = smpl.quaternion_to_matrix(q)
    # Blender's chain: posed = parent_posed @ (parent_rest^T rest) @ basis; root: object @ rest @ basis.
    world = Rotation.random(n_frames, random_state=rng).as_matrix()
    posed = np.empty_like(local)
    for j, p in enumerate(parents):
        rel = rest[j] if p < 0 else posed[:, p] @ rest[p].T @ rest[j]
        posed[:, j] = rel @ basis[:, j]
    back = smpl.pose_to_motion(posed, rest, parents, np.broadcast_to(np.eye(3), (n_frames, 3, 3)))
    np.testing.assert_allclose(back, local, atol=1e-9)
    # Turning the object turns the root in the motion frame, nothing else.
    turned = smpl.pose_to_motion(posed, rest, parents, world)
    expect_root = smpl.C.T @ world @ smpl.C @ local[:, 0]
    np.testing.assert_allclose(turned[:, 0], expect_root, atol=1e-9)
    np.testing.assert_allclose(turned[:, 1:], local[:, 1:], atol=1e-9)


@given(rotvecs)
def test_axis_angle_matrix_quaternion_agree_with_scipy(v):
    aa = np.array(v)
    m = smpl.axis_angle_to_matrix(aa)
    np.testing.assert_allclose(m, Rotation.from_rotvec(aa).as_matrix(), atol=1e-9)
    q = smpl.matrix_to_quaternion(m)
    ref = Rotation.from_rotvec(aa).as_quat()[[3, 0, 1, 2]]
    assert min(np.abs(q - ref).max(), np.abs(q + ref).max()) < 1e-9
    back = smpl.matrix_to_axis_angle(m)
    assert (Rotation.from_rotvec(back).inv() * Rotation.from_rotvec(aa)).magnitude() < 1e-9


def test_continuous_quaternions_take_the_short_way():
    q = np.array([[[1.0, 0, 0, 0]], [[-1.0, 0, 0, 0]], [[-0.9, 0.1, 0, 0]]])
    out = smpl.continuous_quaternions(q)
    assert (np.sum(out[1:] * out[:-1], -1) > 0).all()


def _blender_ext_cli() -> Path | None:
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(spec.submodule_search_locations[0])
    found = sorted(root.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    return found[-1] if found else None


@pytest.mark.parametrize("with_wheels", [True, False], ids=["cached-wheels", "no-wheels"])
def test_zip_passes_blenders_extension_validator(tmp_path, with_wheels):
    """Blender's own `extension validate` (manifest schema: field lengths, tags, permissions, wheels)."""
    import subprocess

    cli = _blender_ext_cli()
    if cli is None:
        pytest.skip("the bpy module is not installed")
    cache = build_addon.WHEEL_CACHE if with_wheels else tmp_path / "empty-cache"
    zip_path = build_addon.build(tmp_path / "out", offline=True, cache=cache, log=lambda *_: None)
    proc = subprocess.run(
        [sys.executable, str(cli), "validate", str(zip_path)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0 and "Success" in proc.stdout, proc.stdout + proc.stderr
