"""A skirt drawn as a shell around the hips and legs (`vmclip.render.skirt`): found where the photo
shows cloth bridging the legs well below the crotch and flaring beyond them, not for trousers; whole
from every side and between parting legs; the photo itself where the photo's view sees it."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from render_scenes import ARMS_DOWN, make_person, pose
from vmclip.motion import JOINT_INDEX
from vmclip.render.pipeline import build_scene, composite, scene_warper

SKIN = (205.0, 160.0, 135.0)
GREEN = (40, 170, 60)
STANCE = {"left_hip": (0, 0, 0.2), "right_hip": (0, 0, -0.2), **ARMS_DOWN}


@pytest.fixture(scope="module")
def body():
    from vmclip.person.body import anny_cache_path, load_body_model

    if not anny_cache_path().exists():
        pytest.skip("Anny body cache not built (bash setup.sh builds it)")
    return load_body_model("anny", device="cpu")


def _legs(body, person, vi=0):
    """Photo `vi`'s hip and knee joints (2, 2) each, and the thigh's length in rows."""
    view = person.views[vi]
    joints = body.pose_joints(person.shape, view.pose[None], view.trans[None])[0]
    uv = view.camera.project(np.asarray(joints))
    hips = uv[[JOINT_INDEX["left_hip"], JOINT_INDEX["right_hip"]]]
    knees = uv[[JOINT_INDEX["left_knee"], JOINT_INDEX["right_knee"]]]
    return hips, knees, float(knees[:, 1].mean() - hips[:, 1].mean())


def _person(
    body, stance=STANCE, skirt=True, trousers_px=0, trousers_colour=None, trousers_to=None, back=None
):
    """A bare-legged person photographed from the front; with a green skirt (a trapezoid from the
    hips to below the knees, flaring 12 px beyond the legs at the top and 40 px at the hem, with
    red dots smaller than the back texture's filter on it), or with trousers `trousers_px` wider
    than the legs on each side. With `back` (a colour), a second photo from behind shows the skirt's
    back in that colour."""
    shape = body.default_shape()
    colours = np.tile(np.asarray(SKIN, np.float32), (len(body.rest_vertices(shape)), 1))
    person = make_person(
        body,
        shape,
        width=384,
        height=512,
        colors=colours,
        local_rot=pose(**stance),
        behind_view=back is not None,
    )
    if back is not None:
        part = build_scene(person, size=512, body=body).sources[1].part
        _paint(body, person, 1, part, back, dots=False)
    return _dress(body, person, skirt, trousers_px, trousers_colour, trousers_to)


def _paint(body, person, vi, part, colour, dots=True):
    """Paint the skirt onto photo `vi` (its body's part map `part`)."""
    view = person.views[vi]
    arms = np.isin(
        part,
        [JOINT_INDEX[f"{s}_{j}"] for s in ("left", "right") for j in ("shoulder", "elbow", "wrist", "hand")],
    )
    legs = np.isin(
        part, [JOINT_INDEX[f"{s}_{j}"] for s in ("left", "right") for j in ("hip", "knee", "ankle")]
    )
    hips, _, thigh = _legs(body, person, vi)
    top, hem = int(hips[:, 1].mean() - 0.1 * thigh), int(hips[:, 1].mean() + 1.3 * thigh)
    rows = np.arange(view.image.shape[0])[:, None]
    cols = np.arange(view.image.shape[1])[None, :]
    xs = np.nonzero(legs[top:hem].any(0))[0]
    share = np.clip((rows - top) / (hem - top), 0, 1)
    left, right = xs.min() - 12 - 28 * share, xs.max() + 12 + 28 * share
    cloth = (rows >= top) & (rows < hem) & (cols >= left) & (cols <= right) & ~arms
    view.image[cloth] = colour
    if dots:
        view.image[cloth & ((rows % 24) < 4) & ((cols % 24) < 4)] = (220, 30, 30)
    view.mask[cloth] = 1.0


def _dress(body, person, skirt, trousers_px, trousers_colour, trousers_to):
    view = person.views[0]
    part = build_scene(person, size=512, body=body).sources[0].part
    arms = np.isin(
        part,
        [JOINT_INDEX[f"{s}_{j}"] for s in ("left", "right") for j in ("shoulder", "elbow", "wrist", "hand")],
    )
    legs = np.isin(
        part, [JOINT_INDEX[f"{s}_{j}"] for s in ("left", "right") for j in ("hip", "knee", "ankle")]
    )
    hips, _, thigh = _legs(body, person)
    if skirt:
        _paint(body, person, 0, part, GREEN)
    if trousers_px:
        k = 2 * trousers_px + 1
        grown = cv2.dilate(legs.astype(np.uint8), np.ones((k, k), np.uint8)).astype(bool) & ~arms
        if trousers_to is not None:  # shorts: down to this share of the thigh below the hips
            rows = np.arange(view.image.shape[0])[:, None]
            grown &= rows < hips[:, 1].mean() + trousers_to * thigh
        if trousers_colour is None:
            view.image[grown & ~legs] = view.image[legs].mean(0).astype(np.uint8)
        else:
            view.image[grown] = trousers_colour
        view.mask[grown] = 1.0
    return person


def _frame(body, person, target):
    scene = build_scene(person, size=512, body=body)
    warper = scene_warper(scene)
    verts = body.pose_vertices(person.shape, target[None], np.zeros((1, 3)))[0]
    warped = warper.warp(verts)
    return scene, warped, composite(scene, warped)


def _green(px: np.ndarray) -> np.ndarray:
    px = px.astype(int)
    return (px[..., 1] > 120) & (px[..., 0] < 110) & (px[..., 2] < 110)


def test_a_skirt_is_found_and_trousers_are_not(body):
    person = _person(body)
    skirt = build_scene(person, size=512, body=body).sources[0].skirt
    assert skirt is not None
    painted = _green(person.views[0].image)
    assert skirt.footprint[painted].mean() > 0.9  # the shell shows the skirt's cloth
    assert not skirt.footprint[~(person.views[0].mask > 0)].any()
    # Standing with the legs together, the skirt ends where its colour does.
    together = _person(body, stance=ARMS_DOWN)
    skirt = build_scene(together, size=512, body=body).sources[0].skirt
    assert skirt is not None
    image = together.views[0].image.astype(int)
    painted = _green(image) | ((image[..., 0] > 180) & (image[..., 1] < 80))  # the cloth and its dots
    assert skirt.footprint[painted].mean() > 0.9
    assert skirt.footprint[~painted & (together.views[0].mask > 0)].sum() < 20  # (the outline's pixels)
    # Bare legs apart, and trousers a little wider than the legs (standing apart or together, in the
    # legs' colour or their own), or shorts: none.
    assert build_scene(_person(body, skirt=False), size=512, body=body).sources[0].skirt is None
    for stance in (STANCE, ARMS_DOWN):
        for colour, to in ((None, None), (GREEN, None), (GREEN, 0.6)):
            trousers = _person(body, stance, False, trousers_px=4, trousers_colour=colour, trousers_to=to)
            assert build_scene(trousers, size=512, body=body).sources[0].skirt is None, (stance, colour, to)


def test_the_photos_own_pose_shows_the_photo(body):
    person = _person(body)
    _, warped, frame = _frame(body, person, person.views[0].pose)
    photo = person.views[0].image
    cloth = cv2.erode(_green(photo).astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    err = np.abs(frame.astype(float) - photo.astype(float)).mean(-1)
    assert err[cloth].mean() < 3.0
    red = (photo[..., 0] > 180) & (photo[..., 1] < 80)
    assert (np.abs(frame[red].astype(int) - photo[red].astype(int)).max(-1) < 40).mean() > 0.9


def test_a_turned_skirt_is_whole_from_behind_without_the_front_details(body):
    """Turned round, the legs apart: the skirt spans the gap between the legs below the crotch (a
    skirt carried pixel by pixel from the legs was split there), and the front's small red dots are
    not on its back."""
    person = _person(body)
    hips, knees, thigh = _legs(body, person)
    turned = pose(pelvis=(0, np.pi, 0), **STANCE)
    _, warped, frame = _frame(body, person, turned)
    centre = int(round(person.views[0].image.shape[1] / 2))
    rows = slice(int(hips[:, 1].mean() + 0.4 * thigh), int(hips[:, 1].mean() + 1.2 * thigh))
    between = frame[rows, centre - 3 : centre + 4]
    assert _green(between).mean() > 0.95
    skirt = np.zeros(frame.shape[:2], bool)
    h, w = warped.alpha.shape
    skirt[warped.y0 : warped.y0 + h, warped.x0 : warped.x0 + w] = (warped.flow.part == 0) & warped.flow.body
    assert skirt.sum() > 5000
    px = frame[skirt].astype(int)
    assert ((px[:, 0] > 150) & (px[:, 1] < 90)).mean() < 0.002  # no red dot
    assert _green(frame[skirt]).mean() > 0.9


def test_a_skirt_stays_closed_when_the_legs_part(body):
    """Seen from the side in mid-stride, the skirt hangs as one piece between the legs, and the legs
    below it show."""
    person = _person(body)
    hips, knees, thigh = _legs(body, person)
    stride = pose(pelvis=(0, np.pi / 2, 0), left_hip=(-0.45, 0, 0), right_hip=(0.45, 0, 0), **ARMS_DOWN)
    scene, warped, frame = _frame(body, person, stride)
    row = int(hips[:, 1].mean() + 1.0 * thigh)
    green = np.flatnonzero(_green(frame[row]))
    assert len(green) > 40
    # one piece: nothing of the background between the legs
    across = slice(green[0], green[-1] + 1)
    plate = np.abs(frame[row, across].astype(int) - scene.background[row, across].astype(int)).max(-1) < 20
    assert not plate.any()
    assert _green(frame[row, across]).mean() > 0.9
    knee_row = int(knees[:, 1].mean() + 0.7 * thigh)  # below the hem: the shins, apart
    skin = np.abs(frame[knee_row].astype(float) - SKIN).max(-1) < 40
    runs = np.flatnonzero(np.diff(np.concatenate([[0], skin.astype(int), [0]])) != 0).reshape(-1, 2)
    assert len(runs) >= 2


def test_a_raised_arm_leaves_the_skirt_behind(body):
    """Cloth of the skirt's colour beside a forearm (a hand holding the hem out) is the skirt's: the
    raised arm does not carry it along."""
    person = _person(body)
    view = person.views[0]
    joints = body.pose_joints(person.shape, view.pose[None], view.trans[None])[0]
    uv = view.camera.project(np.asarray(joints))
    part = build_scene(person, size=512, body=body).sources[0].part
    held = np.zeros(part.shape, bool)
    for side, out in (("left", 1), ("right", -1)):
        x, y = np.rint(uv[JOINT_INDEX[f"{side}_wrist"]]).astype(int)
        arm = np.isin(part, [JOINT_INDEX[f"{side}_{j}"] for j in ("elbow", "wrist", "hand")])
        cols = np.flatnonzero(arm[y - 4 : y + 20].any(0))
        edge = cols.max() if out > 0 else cols.min()
        x0, x1 = sorted((edge + out, edge + out * 16))
        held[y - 4 : y + 20, x0 : x1 + 1] = True
    held &= part < 0
    view.image[held] = GREEN
    view.mask[held] = 1.0
    assert held.sum() > 300
    scene = build_scene(person, size=512, body=body)
    assert scene.sources[0].skirt is not None
    raised = pose(
        left_shoulder=(0, 0, 0.2),
        right_shoulder=(0, 0, -0.2),
        **{k: v for k, v in STANCE.items() if "hip" in k},
    )
    _, warped, frame = _frame(body, person, raised)
    top = int(np.nonzero(_green(view.image))[0].min())
    # Carried cloth (the hands' own outline samples the photo a pixel into the green beside it)
    carried = np.zeros(frame.shape[:2], bool)
    h, w = warped.alpha.shape
    carried[warped.y0 : warped.y0 + h, warped.x0 : warped.x0 + w] = warped.flow.part <= -2
    assert (_green(frame) & carried)[: top - 4].sum() < 20  # no green raised with the arms (86 before)


def test_a_hand_over_the_skirt_does_not_take_its_cloth(body):
    """Where the fitted hand lies over the skirt's cloth in the photo (a hand holding the hem, fitted
    a little off), the hand is not given the cloth's colour, in the frames or the avatar's atlas."""
    person = _person(body)
    view = person.views[0]
    part = build_scene(person, size=512, body=body).sources[0].part
    hands = np.isin(part, [JOINT_INDEX[f"{s}_{j}"] for s in ("left", "right") for j in ("wrist", "hand")])
    rows = np.arange(part.shape[0])[:, None]
    over = hands & (rows > np.nonzero(hands)[0].mean())  # the lower half of each hand
    view.image[over] = GREEN
    assert over.sum() > 100
    raised = pose(
        left_shoulder=(0, 0, 0.2), right_shoulder=(0, 0, -0.2), left_hip=(0, 0, 0.2), right_hip=(0, 0, -0.2)
    )
    scene, warped, frame = _frame(body, person, raised)
    assert scene.sources[0].skirt is not None
    on_hands = np.zeros(frame.shape[:2], bool)
    h, w = warped.alpha.shape
    flow_hands = np.isin(
        warped.flow.part, [JOINT_INDEX[f"{s}_{j}"] for s in ("left", "right") for j in ("wrist", "hand")]
    )
    on_hands[warped.y0 : warped.y0 + h, warped.x0 : warped.x0 + w] = flow_hands & warped.flow.body
    assert on_hands.sum() > 200
    assert _green(frame[on_hands]).mean() < 0.02


def test_a_photo_from_behind_gives_the_skirt_its_back(body):
    """With a second photo from behind, the turned skirt's back is that photo's (blue here), not the
    front's colours."""
    blue = (40, 60, 200)
    person = _person(body, back=blue)
    turned = pose(pelvis=(0, np.pi, 0), **STANCE)
    _, warped, frame = _frame(body, person, turned)
    skirt = np.zeros(frame.shape[:2], bool)
    h, w = warped.alpha.shape
    skirt[warped.y0 : warped.y0 + h, warped.x0 : warped.x0 + w] = (warped.flow.part == 0) & warped.flow.body
    px = frame[skirt].astype(int)
    assert len(px) > 5000
    is_blue = (px[:, 2] > 150) & (px[:, 0] < 90) & (px[:, 1] < 110)
    assert is_blue.mean() > 0.8  # (none without the photo from behind)
    assert _green(frame[skirt]).mean() < 0.1  # (a thin rim: the outline that photo saw edge-on)
