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


# A wall this far behind the person (metres), meeting the floor in a line; the camera is at the
# pelvis's height, WALL_Z from the wall along the optical axis.
WALL_Z = -0.5
CAMERA_Z = 4.0


def photo(body, lift: float, shadow: bool = True, wall: bool = False):
    """The body `lift` metres above a lit floor, with a soft contact shadow on the floor under it
    and/or (`wall`) a darker wall behind meeting the floor in a line."""
    shape = body.default_shape()
    rot = pose(**ARMS_DOWN)
    cam = camera(W, H)
    rest = body.pose_vertices(shape, rot[None], np.zeros((1, 3)))[0]
    floor_y = float(np.asarray(rest)[:, 1].min())  # the floor, where the soles stand at lift 0
    rng = np.random.default_rng(0)
    bg = np.clip(190 + rng.normal(0, 4, (H, W, 3)), 0, 255).astype(np.uint8)
    if wall:
        seam = int(round(cam.project(np.array([0.0, floor_y, WALL_Z]))[1]))
        bg[:seam] = np.clip(bg[:seam].astype(int) - 60, 0, 255).astype(np.uint8)
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


def test_the_floor_line_of_the_plate_lands_a_person_in_mid_air_without_a_shadow(body):
    """No shadow, but the wall meets the floor below the feet in the photo: the person was off the
    floor; the floor goes at least as low as that line's ray at the feet's distance."""
    person, floor_y = photo(body, 0.4, shadow=False, wall=True)
    scene = build_scene(person, size=H, body=body)
    assert scene.floor.source == "floor line"
    soles = floor_y + 0.4
    # The line's ray at the feet's distance (the camera at height 0, the wall behind the feet).
    bound = floor_y * CAMERA_Z / (CAMERA_Z - WALL_Z)
    assert floor_y - 0.02 <= scene.floor.ground_y <= bound + 0.03
    assert scene.floor.ground_y < soles - 0.25
    motion = Motion.from_matrices(np.repeat(pose(**ARMS_DOWN)[None], 3, 0), np.tile([0.0, 0.9, 0.0], (3, 1)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        list(render_frames(person, motion, size=H, body=body, camera="fixed", shadow=False))
    said = [str(w.message) for w in caught if issubclass(w.category, RenderWarning)]
    assert any("mid-air" in m and "floor line" in m for m in said), said


def test_a_floor_line_behind_a_standing_person_keeps_the_soles(body):
    person, floor_y = photo(body, 0.0, shadow=False, wall=True)
    scene = build_scene(person, size=H, body=body)
    assert scene.floor.source == "soles" and scene.floor.warning is None
    assert scene.floor.ground_y == pytest.approx(floor_y, abs=1e-6)


def test_no_floor_at_all_keeps_the_soles_and_warns(body):
    """A person high in a photo of plain background (no shadow, no floor line) although the photo
    shows much below the feet: the soles stay the floor, with one warning saying so."""
    person, _ = photo(body, 0.4, shadow=False)
    motion = Motion.from_matrices(np.repeat(pose(**ARMS_DOWN)[None], 3, 0), np.tile([0.0, 0.9, 0.0], (3, 1)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        list(render_frames(person, motion, size=H, body=body, camera="fixed", shadow=False))
    said = [str(w.message) for w in caught if issubclass(w.category, RenderWarning)]
    assert sum("no floor found" in m for m in said) == 1, said
    assert not any("mid-air in the photo:" in m for m in said)


def test_the_photos_beside_the_repository_keep_their_soles(photos_dir):
    """None of the real photos (all standing) moves its floor or warns about it."""
    pytest.importorskip("mediapipe")
    from vmclip.person import analyze

    names = [
        "econ_cloth_man_side_351f52b9.jpg",
        "econ_cloth_woman_blue_skirt_e80b36c7.jpg",
        "imp_internet_ins8.jpg",
        "iper_p009_set_a_apose.jpg",
        "iper_p009_set_b_random.jpg",
        "pifu_ryota.png",
    ]
    for name in names:
        person = analyze([str(photos_dir / name)], texture=False)
        scene = build_scene(person, size=512)
        assert scene.floor.source == "soles" and scene.floor.warning is None, (name, scene.floor)
