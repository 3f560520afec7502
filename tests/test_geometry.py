"""The one geometry module (issue #15): camera, projection, normals, the CPU rasterisers against the
OpenGL one, leg length."""

from __future__ import annotations

import numpy as np
import pytest
from vmclip.geometry import (
    Camera,
    facing,
    leg_length,
    motion_leg_length,
    project,
    silhouette,
    vertex_normals,
    zbuffer,
)
from vmclip.motion.skeleton import JOINT_INDEX, REST_OFFSETS


def _box(centre=(0.0, 0.0, 0.0), size=(0.4, 0.6, 0.3)) -> tuple[np.ndarray, np.ndarray]:
    """A closed box wound outwards (counter-clockwise seen from outside)."""
    c, s = np.asarray(centre, float), np.asarray(size, float) / 2
    v = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], float) * s + c
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    faces = np.array([f for a, b, c_, d in quads for f in ((a, b, c_), (a, c_, d))])
    return v, faces


def _camera(width: int = 120, height: int = 100) -> Camera:
    K = np.array([[150.0, 0, (width - 1) / 2], [0, 150.0, (height - 1) / 2], [0, 0, 1.0]])
    return Camera(K=K, R=np.diag([1.0, -1.0, -1.0]), t=np.array([0.0, 0.0, 3.0]))


def test_camera_projects_world_and_camera_frame_alike_and_round_trips():
    cam = _camera()
    pts = np.array([[0.0, 0.0, 0.0], [0.3, 0.2, -0.1], [-0.2, 0.5, 0.4]])
    uv, z = cam.project_depth(pts)
    np.testing.assert_allclose(uv[0], cam.K[:2, 2])  # the origin lies on the optical axis
    np.testing.assert_allclose(z, 3.0 - pts[:, 2])  # the camera looks along world -Z from z = 3
    np.testing.assert_allclose(cam.centre, [0.0, 0.0, 3.0])
    uv_cam, z_cam = project(pts @ cam.R.T + cam.t, cam.K)
    np.testing.assert_allclose(uv_cam, uv, atol=1e-12)
    np.testing.assert_allclose(z_cam, z, atol=1e-12)
    back = Camera.from_dict(cam.to_dict())
    np.testing.assert_array_equal(back.K, cam.K)
    np.testing.assert_array_equal(back.t, cam.t)


def test_scaled_camera_keeps_pixel_centres_on_pixel_centres():
    cam = _camera(120, 100)
    half = cam.scaled(0.5, 0.5)
    pts = np.array([[0.1, 0.3, 0.2], [-0.3, -0.1, 0.0]])
    # Pixel centre x in the full image covers [x - 0.5, x + 0.5]; at half size it is (x + 0.5) / 2 - 0.5.
    np.testing.assert_allclose(half.project(pts), (cam.project(pts) + 0.5) * 0.5 - 0.5, atol=1e-9)


@pytest.mark.parametrize("flip", [False, True])
def test_vertex_normals_point_outwards_whatever_the_winding(flip):
    v, faces = _box()
    if flip:
        faces = faces[:, ::-1]
    n = vertex_normals(v, faces)
    np.testing.assert_allclose(np.linalg.norm(n, axis=1), 1.0)
    assert ((n * v).sum(1) > 0).all()  # the box is centred on the origin: outwards = away from it
    cos = facing(v, n, _camera())
    assert (cos[v[:, 2] > 0] > 0).all() and (cos[v[:, 2] < 0] < 0).all()  # the front faces the camera


def test_cpu_rasterisers_agree_with_the_opengl_one():
    from vmclip.render.raster import get_rasterizer

    width, height = 120, 100
    cam = _camera(width, height)
    near, faces_a = _box((0.1, 0.0, 0.3), (0.3, 0.3, 0.2))
    far, faces_b = _box((-0.1, 0.1, -0.3), (0.6, 0.5, 0.2))
    verts = np.concatenate([near, far])
    faces = np.concatenate([faces_a, faces_b + len(near)])
    px, z = cam.project_depth(verts)
    buf = zbuffer(px, z, faces, width, height)
    ras = get_rasterizer().render(verts, faces, cam.K, cam.R, cam.t, width, height)
    both = np.isfinite(buf) & ras.mask
    # Coverage: the same pixels up to the triangles' edges (different tie rules at pixel centres).
    assert (np.isfinite(buf) ^ ras.mask).sum() < 0.05 * both.sum()
    np.testing.assert_allclose(buf[both], ras.depth[both], atol=1e-4)
    assert np.isclose(buf[both].min(), 3.0 - 0.4, atol=1e-4)  # the near box's front face
    sil = silhouette(px, faces, (height, width)).astype(bool)
    assert (sil ^ ras.mask).sum() < 0.1 * both.sum()


def test_leg_length_of_the_motion_skeleton():
    J = JOINT_INDEX
    rest = np.zeros((24, 3))
    for name in ("left", "right"):
        rest[J[f"{name}_hip"]] = REST_OFFSETS[J[f"{name}_hip"]]
        rest[J[f"{name}_knee"]] = rest[J[f"{name}_hip"]] + REST_OFFSETS[J[f"{name}_knee"]]
        rest[J[f"{name}_ankle"]] = rest[J[f"{name}_knee"]] + REST_OFFSETS[J[f"{name}_ankle"]]
    assert leg_length(rest) == pytest.approx(motion_leg_length(), rel=1e-6)
    assert 0.7 < motion_leg_length() < 1.0
    shin = REST_OFFSETS[J["right_ankle"]]
    rest[J["right_ankle"]] += 0.1 * shin / np.linalg.norm(shin)  # one longer shin: the mean of both legs
    assert leg_length(rest) == pytest.approx(motion_leg_length() + 0.05, rel=1e-6)
