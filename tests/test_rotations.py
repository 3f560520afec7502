import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.spatial.transform import Rotation
from vmclip.motion import rotations as R

finite = st.floats(-3.0, 3.0, allow_nan=False, allow_infinity=False)
axis_angles = arrays(np.float64, (8, 3), elements=finite)


@settings(max_examples=200, deadline=None)
@given(axis_angles)
def test_axis_angle_matrix_matches_scipy_and_round_trips(aa):
    m = R.axis_angle_to_matrix(aa)
    np.testing.assert_allclose(m, Rotation.from_rotvec(aa).as_matrix(), atol=1e-9)
    np.testing.assert_allclose(R.axis_angle_to_matrix(R.matrix_to_axis_angle(m)), m, atol=1e-8)


@settings(max_examples=200, deadline=None)
@given(axis_angles)
def test_quaternion_and_6d_round_trip(aa):
    m = R.axis_angle_to_matrix(aa)
    q = R.matrix_to_quaternion(m)
    np.testing.assert_allclose(np.linalg.norm(q, axis=-1), 1.0, atol=1e-12)
    np.testing.assert_allclose(R.quaternion_to_matrix(q), m, atol=1e-9)
    np.testing.assert_allclose(R.rotation_6d_to_matrix(R.matrix_to_rotation_6d(m)), m, atol=1e-9)
    np.testing.assert_allclose(R.quaternion_to_matrix(R.axis_angle_to_quaternion(aa)), m, atol=1e-9)


@settings(max_examples=100, deadline=None)
@given(
    arrays(np.float64, (6, 3), elements=st.floats(-1.5, 1.5)),
    st.sampled_from(["XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX"]),
)
def test_euler_matches_scipy_intrinsic_and_inverts(angles, order):
    m = R.euler_to_matrix(angles, order)
    np.testing.assert_allclose(m, Rotation.from_euler(order, angles).as_matrix(), atol=1e-9)
    np.testing.assert_allclose(R.euler_to_matrix(R.matrix_to_euler(m, order), order), m, atol=1e-8)


def test_tiny_and_half_turn_rotations():
    tiny = np.array([[1e-9, -2e-9, 3e-10]])
    np.testing.assert_allclose(R.matrix_to_axis_angle(R.axis_angle_to_matrix(tiny)), tiny, atol=1e-15)
    half = np.array([[np.pi, 0.0, 0.0], [0.0, 0.0, -np.pi]])
    back = R.axis_angle_to_matrix(R.matrix_to_axis_angle(R.axis_angle_to_matrix(half)))
    np.testing.assert_allclose(back, R.axis_angle_to_matrix(half), atol=1e-9)


def test_6d_decoding_orthonormalises_noisy_input():
    d6 = torch.randn(100, 6, generator=torch.Generator().manual_seed(1))
    m = R.rotation_6d_to_matrix(d6)
    eye = torch.eye(3).expand(100, 3, 3)
    torch.testing.assert_close(m @ m.transpose(-1, -2), eye, atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.linalg.det(m), torch.ones(100), atol=1e-5, rtol=0)


def test_torch_and_numpy_agree_and_gradients_flow():
    aa = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    m = R.axis_angle_to_matrix(aa)
    np.testing.assert_allclose(m.detach().numpy(), R.axis_angle_to_matrix(aa.detach().numpy()))
    m.sum().backward()
    assert torch.isfinite(aa.grad).all() and aa.grad.abs().sum() > 0
