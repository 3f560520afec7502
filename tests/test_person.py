"""Person analysis on photos the tests make (the Anny body rendered in a known pose), bad input, the
CLI, and (when ../shared is present) the real photos."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from scipy.spatial.transform import Rotation
from vmclip.errors import InputError
from vmclip.motion.skeleton import JOINT_INDEX, NUM_JOINTS
from vmclip.person import PersonAnalysis, analyze, load_body_model
from vmclip.person.background import background_plate, hole_mask
from vmclip.person.debug import shaded_render
from vmclip.person.detect import MP, mp_to_smpl24
from vmclip.person.fit import CAM_FROM_WORLD, iou, rasterize

J = JOINT_INDEX


def _pose(yaw: float = 20.0, arms: tuple[float, float] = (-70.0, 50.0), knee: float = 30.0) -> np.ndarray:
    rot = np.tile(np.eye(3), (NUM_JOINTS, 1, 1))
    rot[0] = CAM_FROM_WORLD @ Rotation.from_euler("y", yaw, degrees=True).as_matrix()  # body -> camera
    rot[J["left_shoulder"]] = Rotation.from_euler("z", arms[0], degrees=True).as_matrix()
    rot[J["right_shoulder"]] = Rotation.from_euler("z", arms[1], degrees=True).as_matrix()
    rot[J["right_elbow"]] = Rotation.from_euler("y", 60, degrees=True).as_matrix()
    rot[J["left_knee"]] = Rotation.from_euler("x", knee, degrees=True).as_matrix()
    return rot


def _camera(size: int) -> np.ndarray:
    return np.array([[1.2 * size, 0, size / 2], [0, 1.2 * size, size / 2], [0, 0, 1.0]])


def _background(size: int) -> np.ndarray:
    bg = np.zeros((size, size, 3), np.uint8)
    bg[:] = (90, 120, 150)
    bg[int(size * 0.75) :] = (110, 100, 80)
    return bg


def render_person(
    shape=None, pose=None, trans=(0.0, 0.0, 3.2), size: int = 256, background: np.ndarray | None = None
):
    """A synthetic photo: the Anny body, shaded, in camera coordinates; returns (image, vertices, joints)."""
    body = load_body_model("anny", device="cpu")
    pose = _pose() if pose is None else pose
    verts = body.pose_vertices(shape, pose[None], np.asarray(trans)[None])[0]
    joints = body.pose_joints(shape, pose[None], np.asarray(trans)[None])[0]
    bg = _background(size) if background is None else background
    return shaded_render(verts, body.faces, _camera(size), bg), verts, joints


def _project(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    return points[:, :2] / points[:, 2:3] * [K[0, 0], K[1, 1]] + [K[0, 2], K[1, 2]]


@pytest.fixture(scope="module")
def synthetic():
    image, verts, joints = render_person()
    return image, verts, joints, analyze([image])


def test_mediapipe_to_smpl24_mapping():
    kp = np.zeros((33, 4))
    kp[:, 3] = 1.0
    kp[:, 0] = np.arange(33)
    j = mp_to_smpl24(kp)
    assert j.shape == (24, 3)
    assert j[J["left_shoulder"], 0] == MP["left_shoulder"] and j[J["right_knee"], 0] == MP["right_knee"]
    assert j[J["pelvis"], 0] == (MP["left_hip"] + MP["right_hip"]) / 2
    assert (j[:, 2] > 0).all() and (j[:, 2] <= 1).all()


def test_fit_recovers_a_rendered_body(synthetic):
    image, verts, joints, result = synthetic
    assert result.body_kind == "anny" and len(result.views) == 1 and not result.warnings
    view = result.views[0]
    height = view.box[3] - view.box[1]
    assert view.fit_error_pct < 3.0 and view.iou > 0.8
    # The fitted body, posed in the world and seen through the fitted camera, lands on the rendered one,
    # left limbs on left limbs.
    body = load_body_model("anny")
    fitted = body.pose_joints(result.shape, view.pose[None], view.trans[None])[0]
    seen = view.camera.project(fitted)
    truth = _project(joints, _camera(256))
    for name in ("left_wrist", "right_wrist", "left_ankle", "right_ankle", "left_elbow", "head"):
        assert np.linalg.norm(seen[J[name]] - truth[J[name]]) < 0.06 * height, name
    # The reported IoU is the camera's view of the posed mesh against the mask.
    posed = result.posed_vertices(0)
    sil = rasterize(posed @ view.camera.R.T + view.camera.t, body.faces, view.camera.K, image.shape[:2])
    assert abs(iou(sil, view.mask > 0.5) - view.iou) < 0.02
    # World frame: feet on the floor, upright (head above pelvis), pelvis above the origin.
    assert abs(posed[:, 1].min()) < 1e-3
    assert fitted[J["head"], 1] > fitted[J["pelvis"], 1] + 0.3
    np.testing.assert_allclose(view.trans[[0, 2]], 0.0, atol=1e-6)
    assert view.pose.shape == (24, 3, 3) and view.joints2d.shape == (24, 3)
    assert view.keypoints.shape == (33, 4)
    eye = np.broadcast_to(np.eye(3), (24, 3, 3))
    np.testing.assert_allclose(view.pose @ np.swapaxes(view.pose, 1, 2), eye, atol=1e-4)


def test_save_and_load_round_trip(synthetic, tmp_path):
    *_, result = synthetic
    path = result.save_json(tmp_path / "person.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "person.json",
        "person.texture.png",  # the avatar's atlas (issue #14)
        "person.view0.background.png",
        "person.view0.image.png",
        "person.view0.mask.png",
    ]
    doc = json.loads(path.read_text())
    assert doc["body_kind"] == "anny" and doc["shape"] == result.shape
    back = PersonAnalysis.load_json(path)
    a, b = result.views[0], back.views[0]
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.background, b.background)
    np.testing.assert_allclose(a.mask, b.mask, atol=1 / 255)
    np.testing.assert_allclose(a.pose, b.pose)
    np.testing.assert_allclose(a.camera.K, b.camera.K)
    np.testing.assert_allclose(a.keypoints, b.keypoints, atol=1e-3)
    assert b.iou == pytest.approx(a.iou, abs=1e-4)
    assert result.texture.shape == (1024, 1024, 3)
    np.testing.assert_array_equal(back.texture, result.texture)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputError, match="not a person analysis"):
        PersonAnalysis.load_json(tmp_path / "bad.json")


def test_background_plate_removes_the_person(synthetic):
    image, *_, result = synthetic
    view = result.views[0]
    hole = hole_mask(view.mask, view.box).astype(bool)
    assert hole[view.mask > 0.5].all()
    plate = view.background
    np.testing.assert_array_equal(plate[~hole], image[~hole])
    # The plate's hole looks like the background (blue wall / brown floor), not like skin.
    skin = np.array([200, 160, 130], float)
    person = view.mask > 0.5
    before = np.abs(image[person].astype(float) - skin).mean()
    assert before < np.abs(plate[person].astype(float) - skin).mean()
    wall = np.array([90, 120, 150], float)
    assert np.abs(plate[person][:, 2].astype(float) - wall[2]).mean() < 60
    telea = background_plate(image, view.mask, view.box, method="telea")
    np.testing.assert_array_equal(telea[~hole], image[~hole])


def test_background_plate_continues_a_brick_wall_and_plinth():
    """Rows of bricks over a dark plinth behind a person-sized hole: the plate continues both (the
    fallback Telea in-painting smears them: about 26 grey levels off on average)."""
    import cv2

    rng = np.random.default_rng(0)
    h, w = 384, 256
    wall = np.zeros((h, w, 3), np.uint8)
    for y in range(h):
        wall[y] = (170, 60, 40) if (y // 14) % 2 == 0 else (200, 190, 180)
    for y in range(0, h, 28):
        wall[y : y + 14, (0 if (y // 28) % 2 == 0 else 20) :: 40] = (200, 190, 180)
    plinth_top = int(h * 0.7)
    wall[plinth_top:] = (60, 62, 66)
    wall = np.clip(wall.astype(int) + rng.integers(-8, 9, wall.shape), 0, 255).astype(np.uint8)
    mask = np.zeros((h, w), np.float32)
    cv2.ellipse(mask, (w // 2, h // 2), (40, 170), 0, 0, 360, 1.0, -1)
    box = (w / 2 - 40, h / 2 - 170, w / 2 + 40, h / 2 + 170)
    photo = wall.copy()
    photo[mask > 0] = (0, 200, 0)
    plate = background_plate(photo, mask, box, seed=0)
    hole = hole_mask(mask, box).astype(bool)
    error = np.abs(plate.astype(int) - wall.astype(int))[hole]
    assert error.mean() < 12, error.mean()
    rows = np.arange(h)[:, None].repeat(w, 1)
    dark = plate[hole & (rows > plinth_top + 10)].mean(0)
    assert dark.max() < 100  # the plinth stays dark grey
    bricks = plate[hole & (rows < plinth_top - 10)].astype(float)
    assert bricks[:, 0].mean() > 150 and bricks[:, 1].mean() < 150  # reddish brick rows, no green


def test_several_photos_share_one_shape():
    shape = {"height": 0.7, "weight": 0.7}
    a, *_ = render_person(shape, _pose(yaw=0.0))
    b, *_ = render_person(shape, _pose(yaw=35.0, arms=(-20.0, 80.0), knee=5.0))
    result = analyze([a, b], background=False)
    assert len(result.views) == 2
    body = load_body_model()
    assert set(result.shape) == {*body.shape_keys, "offsets"}
    assert len(result.shape["offsets"]) == len(body.skin_weights)
    for view in result.views:
        assert view.fit_error_pct < 3.0 and view.iou > 0.75


def test_image_formats(synthetic, tmp_path):
    image = synthetic[0]
    grey = image.mean(2).astype(np.uint8)
    rgba = np.dstack([image, np.full(image.shape[:2], 255, np.uint8)])
    sixteen = image.astype(np.uint16) * 257
    Image.fromarray(grey).save(tmp_path / "grey.png")
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    Image.fromarray(image).save(tmp_path / "photo.jpg", quality=90)
    np.save(tmp_path / "unused.npy", sixteen)
    encoded = (tmp_path / "photo.jpg").read_bytes()  # as the server receives photos
    for src in (tmp_path / "grey.png", tmp_path / "rgba.png", tmp_path / "photo.jpg", sixteen, encoded):
        result = analyze([src], fit=False, background=False)
        view = result.views[0]
        assert view.image.dtype == np.uint8 and view.image.shape == (256, 256, 3)
        assert view.keypoints[:, 3].mean() > 0.8


def test_bad_input_gets_one_line_errors(tmp_path):
    noise = np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)
    with pytest.raises(InputError, match="no person"):
        analyze([np.zeros((200, 200, 3), np.uint8)])
    with pytest.raises(InputError, match="no person|torso"):
        analyze([noise])
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(InputError, match="broken.jpg"):
        analyze([tmp_path / "broken.jpg"])
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match="not an image"):
        analyze([tmp_path / "notes.txt"])
    with pytest.raises(InputError, match="no such file"):
        analyze([tmp_path / "missing.png"])
    with pytest.raises(InputError, match="only 20x20"):
        analyze([np.zeros((20, 20, 3), np.uint8)])
    Image.new("L", (8000, 7000)).save(tmp_path / "huge.png")
    with pytest.raises(InputError, match="56 MP"):
        analyze([tmp_path / "huge.png"])
    with pytest.raises(InputError, match="no images"):
        analyze([])
    with pytest.raises(InputError, match="image 1: not an image"):
        analyze([b"definitely not a photo"])


def test_big_photo_is_downscaled_and_cut_off_person_warns():
    image, *_ = render_person(size=256)
    big = np.asarray(Image.fromarray(image).resize((1600, 1600)))
    result = analyze([big], fit=False, background=False)
    assert max(result.views[0].image.shape[:2]) == 1024
    crop = image[:170]  # legs cut off at the knees
    result = analyze([crop], fit=False, background=False)
    assert any("cut off" in w for w in result.warnings)


def test_several_people_keep_the_largest():
    big, *_ = render_person(trans=(0.35, 0.0, 3.0), size=320)
    both, *_ = render_person(trans=(-1.1, 0.3, 6.0), size=320, background=big)
    result = analyze([both], fit=False, background=False)
    assert any("several people" in w for w in result.warnings)
    box = result.views[0].box
    assert box[3] - box[1] > 150  # the near (large) person, not the far one


def test_cli_writes_json_and_debug_overlays(synthetic, tmp_path, capsys):
    from vmclip.cli import main

    Image.fromarray(synthetic[0]).save(tmp_path / "me.png")
    code = main(["analyze", str(tmp_path / "me.png"), "-o", str(tmp_path / "out" / "person.json")])
    assert code == 2 and "does not exist" in capsys.readouterr().err
    code = main(
        [
            "analyze",
            str(tmp_path / "me.png"),
            "-o",
            str(tmp_path / "person.json"),
            "--debug",
            str(tmp_path / "dbg"),
            "--no-background",
        ]
    )
    assert code == 0
    assert "IoU" in capsys.readouterr().out
    names = sorted(p.name for p in (tmp_path / "dbg").iterdir())
    assert names == ["00_me_background.png", "00_me_fit.png"]
    assert Image.open(tmp_path / "dbg" / "00_me_fit.png").size == (768, 768)
    assert PersonAnalysis.load_json(tmp_path / "person.json").views[0].source.endswith("me.png")
    (tmp_path / "bad.png").write_bytes(b"garbage")
    assert main(["analyze", str(tmp_path / "bad.png"), "-o", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.png" in err and "Traceback" not in err
    assert not (tmp_path / "x.json").exists()


@pytest.mark.shared_data
@pytest.mark.slow
def test_real_photos(photos_dir):
    photos = sorted(
        p for p in photos_dir.iterdir() if p.suffix.lower() in (".jpg", ".png") and "mask" not in p.name
    )
    assert photos
    for photo in photos:
        person = analyze([photo], background=False)
        view = person.views[0]
        assert view.fit_error_pct < 3.0, photo.name
        assert view.iou >= 0.8, photo.name  # body plus clothing offsets (a flared skirt included)
        # Only the blue-skirt woman holds something (a basket): nobody else loses a part as an object.
        held = any("held in a hand" in w for w in person.warnings)
        assert held == ("blue_skirt" in photo.name), photo.name


@pytest.mark.shared_data
def test_two_photos_of_one_person_give_one_shape(photos_dir):
    pair = [photos_dir / "iper_p009_set_a_apose.jpg", photos_dir / "iper_p009_set_b_random.jpg"]
    if not all(p.exists() for p in pair):
        pytest.skip("the iper_p009 pair is absent")
    result = analyze(pair, background=False)
    assert len(result.views) == 2
    for view in result.views:
        assert view.fit_error_pct < 3.0 and view.iou >= 0.8


def test_clothing_offsets_fill_a_skirt_and_stay_a_smooth_surface():
    """A skirt spanning both legs (drawn over a rendered body): the offsets must cover it, between the
    legs included, while hands stay bare and the dressed mesh stays smooth (no spikes) when re-posed."""
    import cv2
    from vmclip.person.fit import CLOTH_MAX, CLOTH_MAX_SEGMENT

    pose = _pose(yaw=0.0, arms=(-70.0, 70.0), knee=0.0)
    pose[J["left_hip"]] = Rotation.from_euler("z", 12, degrees=True).as_matrix()
    pose[J["right_hip"]] = Rotation.from_euler("z", -12, degrees=True).as_matrix()
    image, _, joints = render_person(pose=pose, size=320)
    j = _project(joints, _camera(320))
    lh, rh, lk, rk = (j[J[n]] for n in ("left_hip", "right_hip", "left_knee", "right_knee"))
    thigh = abs(lk[1] - lh[1])
    top, bottom = (lh[1] + rh[1]) / 2 - 0.1 * thigh, (lk[1] + rk[1]) / 2 + 0.1 * thigh
    cx, w_top, w_bottom = (lh[0] + rh[0]) / 2, abs(lh[0] - rh[0]) * 1.3, abs(lk[0] - rk[0]) * 1.6 + 20
    skirt = np.array(
        [
            [cx - w_top / 2, top],
            [cx + w_top / 2, top],
            [cx + w_bottom / 2, bottom],
            [cx - w_bottom / 2, bottom],
        ],
        np.int32,
    )
    cv2.fillPoly(image, [skirt], (40, 70, 160))
    result = analyze([image], background=False)
    view = result.views[0]
    # (The former sparse-chamfer offsets reached 0.80 here, 0.04 over the bare body.)
    assert view.iou >= 0.83 and view.iou >= view.iou_body + 0.05, (view.iou, view.iou_body)

    body = load_body_model("anny", device="cpu")
    off = np.asarray(result.shape["offsets"])
    segment = body.skin_weights.argmax(1)
    hands = np.isin(segment, [J["left_hand"], J["right_hand"]])
    assert off.min() >= 0 and off.max() <= CLOTH_MAX + 1e-6
    assert off[hands].max() <= CLOTH_MAX_SEGMENT["hand"] + 1e-6
    sil = rasterize(
        result.posed_vertices() @ view.camera.R.T + view.camera.t, body.faces, view.camera.K, image.shape[:2]
    )
    drawn = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(drawn, [skirt], 1)
    assert sil[drawn > 0].mean() >= 0.85  # the skirt, between the thighs included, is covered

    # Re-posed (raised arms, a stride): no triangle of the dressed body is stretched far beyond the
    # bare body's, so the offsets form a smooth surface rather than spikes.
    bare = {k: v for k, v in result.shape.items() if k != "offsets"}
    poses = np.tile(np.eye(3), (2, NUM_JOINTS, 1, 1))
    poses[0, J["left_shoulder"]] = Rotation.from_euler("z", 75, degrees=True).as_matrix()
    poses[0, J["right_shoulder"]] = Rotation.from_euler("z", -75, degrees=True).as_matrix()
    poses[1, J["left_hip"]] = Rotation.from_euler("x", -35, degrees=True).as_matrix()
    poses[1, J["right_hip"]] = Rotation.from_euler("x", 30, degrees=True).as_matrix()
    poses[1, J["right_knee"]] = Rotation.from_euler("x", 45, degrees=True).as_matrix()
    trans = np.zeros((2, 3))
    dressed = body.pose_vertices(result.shape, poses, trans)
    naked = body.pose_vertices(bare, poses, trans)
    for d, b in zip(dressed, naked, strict=True):
        assert np.isfinite(d).all()
        edge_d = np.linalg.norm(d[body.faces] - d[np.roll(body.faces, 1, 1)], axis=-1)
        edge_b = np.linalg.norm(b[body.faces] - b[np.roll(body.faces, 1, 1)], axis=-1)
        assert np.percentile(edge_d / np.maximum(edge_b, 1e-4), 99.9) < 6.0
        assert np.abs(d - b).max() <= CLOTH_MAX + 1e-4


def test_native_stderr_filter_drops_start_up_chatter_only(capfd):
    import os

    from vmclip.person.detect import _native_stderr_filtered

    with _native_stderr_filtered():
        os.write(2, b"W0000 00:00:1795622465.111372   13198 feedback.cc:114] chatter one\n")
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
        os.write(2, b"E0000 00:00:1795622465.111372   13198 graph.cc:12] a real error\n")
        os.write(2, b"something else\n")
    err = capfd.readouterr().err
    assert "chatter" not in err and "XNNPACK" not in err
    assert "a real error" in err and "something else" in err


def test_mediapipe_start_up_prints_nothing(tmp_path):
    """A fresh process finding a person writes nothing to stderr (MediaPipe's native start-up chatter
    is filtered)."""
    import subprocess
    import sys

    image, *_ = render_person(size=192)
    Image.fromarray(image).save(tmp_path / "p.png")
    code = (
        "import sys; from vmclip.person.images import load_image; "
        "from vmclip.person.detect import detect; detect(load_image(sys.argv[1]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "p.png")], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", done.stderr
