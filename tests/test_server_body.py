"""The fitted body in the analyze reply: the projection/visibility maths on geometry with a known answer,
the wire format (BodyMesh), and a real `analyze` of the example person through the server on loopback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import vmclip_protocol as vp
from vmclip.geometry import vertex_normals
from vmclip.server.body_payload import project_view, skin_top


def uv_sphere(centre, radius: float, rings: int = 40, segments: int = 60) -> tuple[np.ndarray, np.ndarray]:
    theta = np.linspace(0, np.pi, rings + 1)[1:-1]
    phi = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    pts = np.stack([np.sin(t) * np.cos(p), np.cos(t), np.sin(t) * np.sin(p)], -1).reshape(-1, 3)
    verts = np.concatenate([[[0, 1, 0]], pts, [[0, -1, 0]]]) * radius + np.asarray(centre, float)
    faces = []
    for s in range(segments):
        n = (s + 1) % segments
        faces.append((0, 1 + n, 1 + s))
        last = 1 + (rings - 2) * segments
        faces.append((len(verts) - 1, last + s, last + n))
    for r in range(rings - 2):
        for s in range(segments):
            n = (s + 1) % segments
            a, b = 1 + r * segments + s, 1 + r * segments + n
            c, d = a + segments, b + segments
            faces += [(a, b, d), (a, d, c)]
    return verts, np.array(faces)


def test_visibility_of_a_sphere_behind_another():
    """A big sphere partly hidden behind a small one: the flags match ray casting."""
    far, fr = np.array([0.0, 0.0, 3.0]), 0.6
    near, nr = np.array([0.25, 0.1, 2.0]), 0.25
    v1, f1 = uv_sphere(far, fr)
    v2, f2 = uv_sphere(near, nr)
    verts = np.concatenate([v1, v2])
    faces = np.concatenate([f1, f2 + len(v1)])
    size = 400
    K = np.array([[500.0, 0, size / 2], [0, 500.0, size / 2], [0, 0, 1]])
    uv, visible, facing = project_view(verts, faces, K, np.eye(3), np.zeros(3), size, size)
    assert uv.dtype == np.float32 and uv.shape == (len(verts), 2) and visible.shape == (len(verts),)
    # Ground truth for the far sphere: faces the camera (at the origin) and the ray to the camera
    # does not pass through the near sphere.
    x = v1
    normal = (x - far) / fr
    to_cam = -x / np.linalg.norm(x, axis=1, keepdims=True)
    facing_far = (normal * to_cam).sum(1)
    d = x / np.linalg.norm(x, axis=1, keepdims=True)  # ray from the camera through the vertex
    proj = d @ near
    blocked = (np.linalg.norm(near - proj[:, None] * d, axis=1) < nr) & (proj < np.linalg.norm(x, axis=1))
    clear = (facing_far > 0.4) & ~blocked
    hidden = (facing_far < 0.2) | blocked
    # margins around the decision boundaries (grazing angle, the near sphere's outline) are left out
    near_outline = np.abs(np.linalg.norm(near - proj[:, None] * d, axis=1) - nr) < 0.02
    assert visible[: len(v1)][clear & ~near_outline].mean() > 0.98
    assert not visible[: len(v1)][hidden & ~near_outline].any()
    assert blocked.sum() > 50 and (clear & ~near_outline).sum() > 200  # both cases really occur
    # The near sphere is not hidden by anything: visible exactly where it faces the camera.
    n2 = (v2 - near) / nr
    f2c = (n2 * -v2 / np.linalg.norm(v2, axis=1, keepdims=True)).sum(1)
    assert visible[len(v1) :][f2c > 0.4].all() and not visible[len(v1) :][f2c < 0.2].any()
    # Texture coordinates: the pixel of the projection, v up.
    px = (verts @ K.T)[:, :2] / verts[:, 2:]
    assert np.allclose(uv[:, 0], (px[:, 0] + 0.5) / size, atol=1e-5)
    assert np.allclose(uv[:, 1], 1 - (px[:, 1] + 0.5) / size, atol=1e-5)
    # Facing: the cosine to the camera where seen, 0 where not.
    seen = visible[: len(v1)]
    assert (facing[~visible] == 0).all()
    assert np.abs(facing[: len(v1)][seen] - facing_far[seen]).max() < 0.05, np.abs(
        facing[: len(v1)][seen] - facing_far[seen]
    ).max()


def test_mask_and_frame_limit_visibility():
    v, f = uv_sphere((0.0, 0.0, 2.0), 0.5)
    K = np.array([[300.0, 0, 100], [0, 300.0, 100], [0, 0, 1]])
    mask = np.zeros((200, 200), np.float32)
    mask[:, :100] = 1.0  # the person only covers the left half of the photo
    _, visible, _ = project_view(v, f, K, np.eye(3), np.zeros(3), 200, 200, mask)
    px = (v @ K.T)[:, 0] / v[:, 2]
    assert visible.any() and not visible[px > 100.5].any()
    uv, visible, _ = project_view(v + [2.0, 0, 0], f, K, np.eye(3), np.zeros(3), 200, 200)  # off frame
    assert not visible.any() and uv.min() >= 0 and uv.max() <= 1


def test_normals_point_outwards_whatever_the_winding():
    v, f = uv_sphere((1.0, 2.0, 3.0), 0.5)
    for faces in (f, f[:, ::-1]):
        n = vertex_normals(v, faces)
        assert ((n * (v - [1.0, 2.0, 3.0])).sum(1) > 0.9 * 0.5).all()


def test_skin_top_keeps_the_strongest_joints():
    rng = np.random.default_rng(1)
    w = rng.random((50, 24)) ** 6
    w /= w.sum(1, keepdims=True)
    idx, top = skin_top(w)
    assert idx.dtype == np.uint8 and top.dtype == np.float32 and idx.shape == top.shape == (50, 4)
    assert np.allclose(top.sum(1), 1.0, atol=1e-6)
    assert (np.take_along_axis(w, idx.astype(int), 1)[:, 0] == w.max(1)).all()
    assert (top[:, :-1] >= top[:, 1:]).all()


def _mesh(n_views: int = 2) -> vp.BodyMesh:
    v, f = uv_sphere((0, 0, 0), 0.3, 6, 8)
    n = len(v)
    rng = np.random.default_rng(0)
    return vp.BodyMesh(
        v,
        f,
        rng.random((24, 3)),
        rng.integers(0, 24, (n, 4)),
        np.full((n, 4), 0.25),
        [rng.random((n, 2)) for _ in range(n_views)],
        [rng.random(n) > 0.5 for _ in range(n_views)],
        [rng.random(n) for _ in range(n_views)],
        trans_scale=1.05,
        floor_offset=0.93,
    )


def test_body_mesh_travels_on_the_wire():
    mesh = _mesh()
    body, frames = mesh.to_wire()
    msg = vp.decode(vp.encode("result", "x", {"body_kind": "anny", "mesh": body}, frames))
    back = vp.BodyMesh.from_message(msg)
    for name in ("vertices", "faces", "joints", "skin_joints", "skin_weights"):
        assert np.array_equal(getattr(back, name), getattr(mesh, name)), name
    assert len(back.uv) == len(back.visible) == 2 and back.visible[1].dtype == bool
    assert np.array_equal(back.uv[1], mesh.uv[1]) and np.array_equal(back.visible[0], mesh.visible[0])
    assert np.abs(back.facing[1] - mesh.facing[1]).max() <= 0.5 / 255 + 1e-6
    assert (back.trans_scale, back.floor_offset) == (1.05, 0.93)
    assert back.skirt_vertices == 0  # (no skirt's shell among its vertices)
    # A reply without the body (an older server) reads as None.
    assert vp.BodyMesh.from_message(vp.decode(vp.encode("result", "x", {"views": []}))) is None
    # Inconsistent arrays are a protocol error, never an IndexError later.
    bad = [(n, (a + 1000 if n == "body_faces" else a)) for n, a in frames]
    with pytest.raises(vp.ProtocolError, match="outside"):
        vp.BodyMesh.from_message(vp.decode(vp.encode("result", "x", {"mesh": body}, bad)))
    short = [(n, a[:-1] if n == "view_uv" else a) for n, a in frames]
    with pytest.raises(vp.ProtocolError, match="do not match"):
        vp.BodyMesh.from_message(vp.decode(vp.encode("result", "x", {"mesh": body}, short)))
    # The last vertices may be a skirt's shell: a count the mesh has, else a protocol error.
    skirted = vp.BodyMesh.from_message(
        vp.decode(vp.encode("result", "x", {"mesh": {**body, "skirt_vertices": 5}}, frames))
    )
    assert skirted.skirt_vertices == 5
    for bad_count in (len(mesh.vertices), -1, "many"):
        with pytest.raises(vp.ProtocolError, match="skirt_vertices"):
            vp.BodyMesh.from_message(
                vp.decode(vp.encode("result", "x", {"mesh": {**body, "skirt_vertices": bad_count}}, frames))
            )


def test_avatar_travels_on_the_wire():
    """The atlas (PNG bytes) and the per-corner UVs go out as two frames and come back equal; a
    half-sent avatar, a wrong shape or a texture that is no PNG file are protocol errors."""
    import io

    from PIL import Image

    base = _mesh()
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(2).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(buf, "PNG")
    corner = np.random.default_rng(3).random((len(base.faces), 3, 2)).astype(np.float32)
    mesh = vp.BodyMesh(
        *(getattr(base, k) for k in ("vertices", "faces", "joints", "skin_joints", "skin_weights")),
        base.uv,
        base.visible,
        base.facing,
        texture=buf.getvalue(),
        corner_uv=corner,
    )
    body, frames = mesh.to_wire()
    assert [n for n, *_ in frames][-2:] == ["texture", "body_corner_uv"]
    back = vp.BodyMesh.from_message(vp.decode(vp.encode("result", "x", {"mesh": body}, frames)))
    assert back.texture == buf.getvalue() and np.array_equal(back.corner_uv, corner)
    # (a reply without them still reads, as before)
    assert (
        vp.BodyMesh.from_message(vp.decode(vp.encode("result", "x", {"mesh": body}, frames[:-2]))).texture
        is None
    )
    for broken, match in (
        (frames[:-1], "come together"),
        ([*frames[:-1], ("body_corner_uv", corner[:-1])], "expected"),
        ([*frames[:-2], ("texture", b"GIF89a..."), frames[-1]], "not a PNG"),
    ):
        with pytest.raises(vp.ProtocolError, match=match):
            vp.BodyMesh.from_message(vp.decode(vp.encode("result", "x", {"mesh": body}, broken)))


@pytest.fixture(scope="module")
def example_person() -> dict:
    try:
        from vmclip.render.example import example_paths

        paths = example_paths()
    except ImportError as exc:
        pytest.skip(f"renderer not installed: {exc}")
    if not paths["photo"].is_file():
        pytest.skip("the example person has not been rendered (setup.sh prepares it)")
    return paths


def test_real_analyze_reply_carries_the_fitted_body(example_person):
    from server_support import start_server
    from vmclip.person.body import load_body_model
    from vmclip.server import Pipeline

    pipeline = Pipeline(device="cpu")
    if not pipeline.capabilities()["analyze"]["available"]:
        pytest.skip("person analysis unavailable")
    server = start_server(pipeline)
    try:
        with vp.Client(server.address, timeout_s=60, retries=0) as client:
            reply = client.analyze([Path(example_person["photo"])], deadline_s=600)
    finally:
        server.stop()
    mesh = reply["body_mesh"]
    body = load_body_model(reply["body_kind"], device="cpu")
    shape = reply["shape"]
    n = len(body.skin_weights)
    assert mesh.vertices.shape == (n, 3) and mesh.faces.shape == body.faces.shape
    assert reply["mesh"]["vertices"] == n and reply["mesh"]["faces"] == len(body.faces)
    assert np.abs(mesh.vertices - body.rest_vertices(shape)).max() < 1e-5  # clothing offsets included
    assert np.abs(mesh.joints - body.rest_joints(shape)).max() < 1e-5
    assert np.abs(mesh.joints[0]).max() < 1e-6  # pelvis at the origin
    assert np.allclose(mesh.skin_weights.sum(1), 1.0, atol=1e-5)
    assert (body.skin_weights[np.arange(n), mesh.skin_joints[:, 0]] == body.skin_weights.max(1)).all()
    assert abs(mesh.floor_offset + mesh.vertices[:, 1].min()) < 1e-5 and 0.7 < mesh.floor_offset < 1.2
    assert 0.8 < mesh.trans_scale < 1.25
    # The avatar: a 1024-pixel atlas and each triangle corner's place in it.
    import io

    from PIL import Image

    atlas = np.asarray(Image.open(io.BytesIO(mesh.texture)))
    assert atlas.shape == (1024, 1024, 3) and mesh.corner_uv.shape == (len(body.faces), 3, 2)
    assert 0.0 <= mesh.corner_uv.min() and mesh.corner_uv.max() <= 1.0
    (uv,), (visible,), (facing,) = mesh.uv, mesh.visible, mesh.facing
    assert (facing[~visible] == 0).all() and facing[visible].min() >= 0.29
    assert uv.min() >= 0.0 and uv.max() <= 1.0
    # A photo of the front sees roughly a third of the body (not the back, not between the legs).
    assert 0.15 < visible.mean() < 0.55, visible.mean()
    assert reply["views"][0]["visible_fraction"] == pytest.approx(visible.mean(), abs=1e-3)
    # The visible vertices land on the person, not on the room: the example's true silhouette (its
    # known body, pose and camera, drawn with the same z-buffer) is where they must fall.
    import json

    from scipy.ndimage import binary_dilation
    from vmclip.geometry import zbuffer

    truth = json.loads(Path(example_person["truth"]).read_text())
    w, h = reply["views"][0]["image_size"]
    pose, trans = np.asarray(truth["pose"])[None], np.asarray(truth["trans"])[None]
    true_v = body.pose_vertices(truth["shape"], pose, trans)[0]
    cam = true_v @ np.asarray(truth["R"]).T + np.asarray(truth["t"])
    px = (cam @ np.asarray(truth["K"]).T)[:, :2] / cam[:, 2:]
    silhouette = binary_dilation(np.isfinite(zbuffer(px, cam[:, 2], body.faces, w, h)), iterations=2)
    x = np.clip((uv[visible, 0] * w - 0.5).round().astype(int), 0, w - 1)
    y = np.clip(((1 - uv[visible, 1]) * h - 0.5).round().astype(int), 0, h - 1)
    on_person = silhouette[y, x]
    assert on_person.mean() > 0.98, on_person.mean()
    # ... and they cover the person from head to feet.
    rows = np.nonzero(silhouette.any(1))[0]
    assert y.min() - rows.min() < 0.05 * h and rows.max() - y.max() < 0.05 * h
