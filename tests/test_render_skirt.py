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


def _analysis(body, person):
    """The synthetic person as an analysis the server sends (its first photo)."""
    from vmclip.person.analysis import PersonAnalysis, ViewFit

    v = person.views[0]
    view = ViewFit(
        image=v.image,
        mask=v.mask,
        box=(0.0, 0.0, float(v.image.shape[1]), float(v.image.shape[0])),
        keypoints=np.zeros((33, 4)),
        joints2d=None,
        camera=v.camera,
        pose=v.pose,
        trans=v.trans,
        background=v.background,
        fit_error_px=0.0,
        iou=1.0,
    )
    return PersonAnalysis(shape=person.shape, body_kind="anny", views=[view])


def _skinned(body, shape, vertices, skin_joints, skin_weights, local_rot):
    """`vertices` (rest pose) skinned as Blender's Armature modifier skins them (a linear blend of the
    bones' transforms), posed by `local_rot` with the pelvis at the origin."""
    import torch
    from vmclip.person.body import lbs

    dense = np.zeros((len(vertices), 24), np.float32)
    np.add.at(dense, (np.arange(len(vertices))[:, None], skin_joints.astype(np.int64)), skin_weights)
    rest_j = torch.as_tensor(np.asarray(body.rest_joints(shape), np.float32))[None]
    verts, _ = lbs(
        torch.as_tensor(vertices, dtype=torch.float32)[None],
        rest_j,
        torch.as_tensor(dense),
        torch.as_tensor(np.asarray(local_rot, np.float32))[None],
        torch.zeros(1, 3),
    )
    return verts[0].numpy()


def test_the_blender_body_carries_the_skirt(body):
    """The analyze reply's body (what the add-on skins, shows and exports) carries the renderer's
    skirt: its shell follows the body's vertices, skinned to the pelvis and the thighs only, so that
    skinned as Blender skins it, it lands where the renderer draws it, in the photo's pose and in a
    stride; its texture is the cloth unrolled below the atlas (green all round, without the front's
    red dots on its back), and the body's own corners still find their atlas texels. Trousers add
    nothing."""
    import io

    import vmclip_protocol as vp
    from PIL import Image
    from vmclip.render.skirt import FOLLOWS
    from vmclip.server.body_payload import body_payload

    person = _person(body)
    analysis = _analysis(body, person)
    summary, frames, _ = body_payload(analysis)
    mesh = vp.BodyMesh.from_message(vp.decode(vp.encode("result", "x", {"mesh": summary}, frames)))
    n, k = len(body.rest_vertices(person.shape)), mesh.skirt_vertices
    assert k > 0 and len(mesh.vertices) == n + k
    joints, weights = mesh.skin_joints[n:], mesh.skin_weights[n:]
    assert set(np.unique(joints[weights > 0]).tolist()) <= set(FOLLOWS)
    assert mesh.faces[len(body.faces) :].min() == n  # its own faces, on its own vertices
    # Skinned by the bones, the shell lands on the renderer's shell (which follows the best rigid
    # motion of the body's parts: in a stride the pelvis part's vertices by the hips follow the
    # thighs a little, the bone does not).
    skirt = build_scene(person, size=512, body=body).sources[0].skirt
    stride = pose(left_hip=(-0.45, 0, 0), right_hip=(0.45, 0, 0), **ARMS_DOWN)
    for local_rot, tolerance in ((person.views[0].pose, 0.02), (stride, 0.05)):
        drawn = skirt.posed(body.pose_vertices(person.shape, local_rot[None], np.zeros((1, 3)))[0])
        skinned = _skinned(body, person.shape, mesh.vertices[n:], joints, weights, local_rot)
        assert np.linalg.norm(skinned - drawn, axis=1).max() < tolerance
    # The texture: the atlas unchanged on top, the skirt's cloth below it.
    texture = np.asarray(Image.open(io.BytesIO(mesh.texture)).convert("RGB"))
    atlas = analysis.avatar_texture()
    assert texture.shape[1] == atlas.shape[1] and texture.shape[0] > atlas.shape[0]
    assert np.array_equal(texture[: len(atlas)], atlas)
    rows = lambda uv: np.clip(((1.0 - uv[..., 1]) * len(texture)).astype(int), 0, len(texture) - 1)  # noqa: E731
    body_rows = rows(mesh.corner_uv[: len(body.faces)])
    assert body_rows.max() < len(atlas)  # every body corner is on the atlas
    # (and on the texel it had: the same v scaled into the taller image)
    shell = mesh.corner_uv[len(body.faces) :].mean(1)  # each shell face's middle
    assert rows(shell).min() >= len(atlas)
    cols = np.clip((shell[:, 0] * texture.shape[1]).astype(int), 0, texture.shape[1] - 1)
    cloth = texture[rows(shell), cols]
    assert _green(cloth).mean() > 0.85
    strip = texture[len(atlas) :]
    back = strip[:, strip.shape[1] // 2 :]  # (the columns half way round and on: the back half)
    assert _green(back).mean() > 0.9
    assert ((back[..., 0] > 150) & (back[..., 1] < 90)).mean() < 0.002  # no red dot
    front = strip[:, : strip.shape[1] // 2]
    assert ((front[..., 0] > 150) & (front[..., 1] < 90)).mean() > 0.01  # (the front keeps them)
    # Trousers: no shell, the body alone.
    trousers = _analysis(body, _person(body, skirt=False, trousers_px=4, trousers_colour=GREEN))
    summary, _, _ = body_payload(trousers)
    assert summary["skirt_vertices"] == 0 and summary["vertices"] == n
