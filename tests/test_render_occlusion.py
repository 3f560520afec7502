"""Limbs that hid the body in a photo (renderer, issue #5): a forearm held across the chest must not
leave a band of sleeve on the chest when the arm moves away, even where the fitted arm is a little
off the photo's arm; and a correct fit with the photo's keypoints still reproduces the photo."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import pytest
from render_scenes import ARMS_DOWN, background, camera, draw, make_person, pose, texture
from vmclip.geometry import project
from vmclip.motion import JOINT_INDEX
from vmclip.motion import rotations as R
from vmclip.render.pipeline import build_scene, composite, scene_warper
from vmclip.render.regions import JOINT_REGION, TRUNK
from vmclip.render.warp import Candidate

W, H = 192, 256


@pytest.fixture(scope="module")
def body():
    from vmclip.person.body import anny_cache_path, load_body_model

    if not anny_cache_path().exists():
        pytest.skip("Anny body cache not built (bash setup.sh builds it)")
    return load_body_model("anny", device="cpu")


@dataclass
class View:
    image: np.ndarray
    mask: np.ndarray
    camera: object
    pose: np.ndarray
    trans: np.ndarray
    background: np.ndarray
    joints2d: np.ndarray | None = None


@dataclass
class Person:
    views: list[View]
    shape: dict
    body_kind: str = "anny"


def forearm_across_chest(elbow: float) -> np.ndarray:
    """Left upper arm down and a little forward, the forearm bent across the chest (less bent: the
    forearm lies lower)."""
    rot = pose(right_shoulder=(0, 0, 1.2), left_elbow=(0, elbow, 0))
    rot[JOINT_INDEX["left_shoulder"]] = (
        R.axis_angle_to_matrix(np.array([-0.5, 0.0, 0.0]))
        @ R.axis_angle_to_matrix(np.array([0.0, 0.0, -1.3]))
        @ R.axis_angle_to_matrix(np.array([1.2, 0.0, 0.0]))
    )
    return rot


def keypoints(body, shape, rot, cam) -> np.ndarray:
    """What a keypoint detector would report: the true joints in the photo, confidence 1."""
    joints = body.pose_joints(shape, rot[None], np.zeros((1, 3)))[0]
    uv, _ = project(joints, cam.K, cam.R, cam.t)
    return np.concatenate([uv, np.ones((len(uv), 1))], 1)


def warp(body, person, target_rot):
    scene = build_scene(person, size=H, body=body)
    warper = scene_warper(scene, avatar=False)
    verts = body.pose_vertices(person.shape, target_rot[None], np.zeros((1, 3)))[0]
    warped = warper.warp(verts)
    return warper, warped, composite(scene, warped)


def test_forearm_across_the_chest_leaves_no_sleeve_band_when_it_moves_away(body):
    shape = body.default_shape()
    cam = camera(W, H, distance=3.0)
    # Bright body, black left arm (sleeve and hand): any dark pixel on the chest came from the arm.
    colours = 110.0 + 0.55 * texture(body, shape)
    arm = JOINT_REGION[np.asarray(body.skin_weights).argmax(1)] == JOINT_REGION[JOINT_INDEX["left_elbow"]]
    colours[arm] = 20.0
    true = forearm_across_chest(-1.9)
    bg = background(W, H)
    photo, mask = draw(body, shape, true, np.zeros(3), cam, W, H, colours, bg)
    # The fit's forearm lies a few pixels below the photo's (elbow less bent).
    fit = forearm_across_chest(-1.7)
    arms_down = pose(**ARMS_DOWN)
    dark = {}
    for name, kp in (("fit only", None), ("with keypoints", keypoints(body, shape, true, cam))):
        person = Person([View(photo, mask, cam, fit, np.zeros(3), bg, kp)], shape)
        warper, warped, _ = warp(body, person, arms_down)
        fl = warped.flow
        trunk = fl.body & (fl.part >= 0) & (warper.part_region[np.maximum(fl.part, 0)] == TRUNK)
        dark[name] = int((trunk & (warped.rgb.mean(-1) < 70)).sum())
        total = int(trunk.sum())
        if kp is not None:
            # The arm keeps its own (black) pixels where the frame shows what the photo saw of it.
            upper = fl.body & (fl.part == JOINT_INDEX["left_shoulder"]) & (fl.candidate == Candidate.SEEN)
            assert upper.sum() > 50 and np.median(warped.rgb[upper].mean(-1)) < 70
            assert not (warped.alpha[trunk] < 0.5).any()
    # Without the photo's keypoints the sleeve lies across the chest as a dark band (the defect this
    # guards against); with them, only a few pixels where the forearm meets the elbow and hand.
    assert dark["fit only"] > 0.05 * total, dark
    assert dark["with keypoints"] < 0.03 * total, dark
    assert dark["with keypoints"] < 0.25 * dark["fit only"], dark


def test_an_exact_fit_with_keypoints_still_reproduces_the_photo(body):
    shape = body.default_shape()
    for rot in (pose(**ARMS_DOWN), forearm_across_chest(-1.9)):
        person = make_person(body, shape=shape, width=W, height=H, local_rot=rot)
        view = person.views[0]
        kp = keypoints(body, shape, rot, view.camera)
        person = Person(
            [View(view.image, view.mask, view.camera, rot, view.trans, view.background, kp)], shape
        )
        _, warped, frame = warp(body, person, rot)
        err = np.abs(frame.astype(float) - view.image.astype(float)).mean(-1)
        interior = cv2.erode((view.mask > 0).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        # Exact but for a thin rim where the keypoint capsule of the hand reaches past the fingers.
        assert err[interior].mean() < 1.0
        assert (err[interior] > 2.0).mean() < 0.02
        assert not warped.flow.hole.any()


def test_back_behind_a_hidden_chest_takes_the_avatar_not_the_painted_out_photo(body):
    """Turned half round, the back's points project onto the chest the forearm hid; the photo with the
    forearm painted out there is the front (an open jacket's shirt), so with an atlas the back takes
    the atlas, and the back carries no pixel of the painted-out photo (issue 14)."""
    shape = body.default_shape()
    cam = camera(W, H, distance=3.0)
    colours = 110.0 + 0.55 * texture(body, shape)
    true = forearm_across_chest(-1.9)
    photo, mask = draw(body, shape, true, np.zeros(3), cam, W, H, colours, background(W, H))
    person = Person(
        [View(photo, mask, cam, true, np.zeros(3), background(W, H), keypoints(body, shape, true, cam))],
        shape,
    )
    scene = build_scene(person, size=H, body=body)
    assert scene.texture is not None and scene.sources[0].clean is not None
    turned = pose(**ARMS_DOWN)
    turned[0] = np.diag([-1.0, 1.0, -1.0]) @ turned[0]
    verts = body.pose_vertices(shape, turned[None], np.zeros((1, 3)))[0]
    painted = {}
    for name, avatar in (("without", False), ("with", True)):
        warper = scene_warper(scene, avatar=avatar)
        fl = warper.warp(verts).flow
        trunk = fl.body & (fl.part >= 0) & (warper.part_region[np.maximum(fl.part, 0)] == TRUNK)
        painted[name] = int((trunk & (fl.candidate == Candidate.PAINTED_OUT)).sum())
    # (without an atlas the painted-out photo stays the back's best guess: the case is real here)
    assert painted["without"] > 50, painted
    assert painted["with"] == 0, painted


def hands_in_front(elbow: float) -> np.ndarray:
    """Both upper arms down and a little forward, both forearms bent in front of the belly (hands
    together, as holding a phone; less bent: the forearms lie lower)."""
    rot = pose(left_elbow=(0, elbow, 0), right_elbow=(0, -elbow, 0))
    for side, sign in (("left", 1.0), ("right", -1.0)):
        rot[JOINT_INDEX[f"{side}_shoulder"]] = (
            R.axis_angle_to_matrix(np.array([-0.5, 0.0, 0.0]))
            @ R.axis_angle_to_matrix(np.array([0.0, 0.0, -1.3 * sign]))
            @ R.axis_angle_to_matrix(np.array([1.2, 0.0, 0.0]))
        )
    return rot


@pytest.mark.parametrize("true_bend, fit_bend", [(1.6, 1.6), (1.4, 1.2), (1.9, 1.6)])
def test_raised_forearms_held_in_front_keep_their_sleeves(body, true_bend, fit_bend):
    """Both forearms in front of the body in the photo (black sleeves over a bright body), the fit's
    forearms exact or a little lower: raised, the forearms are their sleeves, not the body the photo
    showed behind or beside them (issue 14: a raised forearm turned grey). Before: 14 %, 29 % and
    11 % of their pixels bright, from the photo with the other forearm painted out (filled from the
    body around it, never from a limb) and from the atlas, which took the shirt the photo showed
    where the fit put a forearm or a hand that the photo shows elsewhere. (Not yet right: fitted 0.3
    rad less bent than 1.6, 28 % bright, 20 % before: the fitted hands lie on the belly within the
    photo's hands' capsule, and the atlas completes the forearms from them.)"""
    shape = body.default_shape()
    cam = camera(W, H, distance=3.0)
    colours = 110.0 + 0.55 * texture(body, shape)
    part = np.asarray(body.skin_weights).argmax(1)
    arms = [JOINT_REGION[JOINT_INDEX["left_elbow"]], JOINT_REGION[JOINT_INDEX["right_elbow"]]]
    colours[np.isin(JOINT_REGION[part], arms)] = 20.0
    true = hands_in_front(-true_bend)
    bg = background(W, H)
    photo, mask = draw(body, shape, true, np.zeros(3), cam, W, H, colours, bg)
    kp = keypoints(body, shape, true, cam)
    person = Person([View(photo, mask, cam, hands_in_front(-fit_bend), np.zeros(3), bg, kp)], shape)
    scene = build_scene(person, size=H, body=body)
    assert scene.texture is not None
    raised = pose(left_shoulder=(0, 0, 0.3), left_elbow=(0, 0, 1.2), right_shoulder=(0, 0, -0.3))
    raised[JOINT_INDEX["right_elbow"]] = R.axis_angle_to_matrix(np.array([0.0, 0.0, -1.2]))
    warper = scene_warper(scene)
    warped = warper.warp(body.pose_vertices(shape, raised[None], np.zeros((1, 3)))[0])
    fl = warped.flow
    forearm = fl.body & np.isin(fl.part, [JOINT_INDEX["left_elbow"], JOINT_INDEX["right_elbow"]])
    bright = (warped.rgb[forearm].mean(-1) > 70).mean()
    print(f"raised forearms, bright share {bright:.3f}")
    assert forearm.sum() > 300
    assert bright < 0.04
