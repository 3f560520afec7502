"""A person photographed in mid-air lands on the floor the photo shows (its contact shadow)."""

from __future__ import annotations

import warnings

import cv2
import numpy as np
import pytest
from render_scenes import ARMS_DOWN, Person, View, camera, draw, pose, texture
from vmclip.motion import Motion
from vmclip.render.floor import photo_floor
from vmclip.render.pipeline import RenderWarning, build_scene, render_frames

W, H = 256, 320


@pytest.fixture(scope="module")
def body():
    from vmclip.person.body import anny_cache_path, load_body_model

    if not anny_cache_path().exists():
        pytest.skip("Anny body cache not built (bash setup.sh builds it)")
    return load_body_model("anny", device="cpu")


def photo(body, lift: float, shadow: bool = True):
    """The body `lift` metres above a lit floor, with a soft contact shadow on the floor under it."""
    shape = body.default_shape()
    rot = pose(**ARMS_DOWN)
    cam = camera(W, H)
    rest = body.pose_vertices(shape, rot[None], np.zeros((1, 3)))[0]
    floor_y = float(np.asarray(rest)[:, 1].min())  # the floor, where the soles stand at lift 0
    rng = np.random.default_rng(0)
    bg = np.clip(190 + rng.normal(0, 4, (H, W, 3)), 0, 255).astype(np.uint8)
    if shadow:
        centre = cam.project(np.array([0.0, floor_y, 0.0]))
        blob = np.zeros((H, W), np.float32)
        cv2.ellipse(blob, (int(centre[0]), int(centre[1])), (34, 6), 0, 0, 360, 1.0, -1)
        blob = cv2.GaussianBlur(blob, (0, 0), 2.0)
        bg = (bg * (1.0 - 0.55 * blob[..., None])).astype(np.uint8)
    trans = np.array([0.0, lift, 0.0])
    img, mask = draw(body, shape, rot, trans, cam, W, H, texture(body, shape), bg)
    return Person([View(img, mask, cam, rot, trans, bg)], shape), floor_y


def test_the_floor_is_found_at_the_contact_shadow_of_a_person_in_mid_air(body):
    person, floor_y = photo(body, 0.4)
    scene = build_scene(person, size=H, body=body)
    assert scene.floor.source == "shadow"
    assert scene.floor.ground_y == pytest.approx(floor_y, abs=0.05)
    # Standing: the motion lands on that floor (a still pose's lowest point at the floor).
    motion = Motion.from_matrices(np.repeat(pose(**ARMS_DOWN)[None], 3, 0), np.tile([0.0, 0.9, 0.0], (3, 1)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frames = list(render_frames(person, motion, size=H, body=body, camera="fixed", shadow=False))
    assert any(issubclass(w.category, RenderWarning) and "mid-air" in str(w.message) for w in caught)
    # The rendered feet are near the shadow, far below where the photo shows them.
    photo_feet = np.nonzero(person.views[0].mask.any(1))[0].max()
    diff = np.abs(frames[0].astype(int) - person.views[0].background.astype(int)).sum(-1) > 60
    assert np.nonzero(diff.any(1))[0].max() > photo_feet + 0.6 * (0.4 * 1.4 * H / 4.0)


@pytest.mark.parametrize("lift, shadow", [(0.0, True), (0.4, False)], ids=["standing", "no-shadow"])
def test_the_soles_stay_the_floor_without_evidence_of_a_gap(body, lift, shadow):
    """A shadow that touches the feet, or none at all: the fitted soles are the floor."""
    person, _ = photo(body, lift, shadow)
    view = person.views[0]
    verts = body.pose_vertices(person.shape, view.pose[None], view.trans[None])[0]
    floor = photo_floor(view.image, view.mask, view.camera, np.asarray(verts))
    assert floor.source == "soles" and floor.ground_y == pytest.approx(float(np.asarray(verts)[:, 1].min()))
