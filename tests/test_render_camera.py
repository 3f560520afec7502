"""The video's camera: fixed, or following the person (pan, zoom out, step back) over an extended plate."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from render_scenes import make_person
from vmclip.errors import InputError
from vmclip.geometry import leg_length, motion_leg_length
from vmclip.motion import Motion
from vmclip.person.background import extend_plate
from vmclip.render.camera import ease_up, follow_path, smooth_within
from vmclip.render.pipeline import RenderWarning, build_scene, in_view, render_frames
from vmclip.render.retarget import place_motion


@pytest.fixture(scope="module")
def body():
    from vmclip.person.body import anny_cache_path, load_body_model

    if not anny_cache_path().exists():
        pytest.skip("Anny body cache not built (bash setup.sh builds it)")
    return load_body_model("anny", device="cpu")


def walk(n: int, velocity: tuple[float, float]) -> Motion:
    """Arms down, legs swinging, the pelvis moving at `velocity` (x, z) metres per second."""
    t = np.arange(n) / 30.0
    aa = np.zeros((n, 24, 3))
    aa[:, 16, 2], aa[:, 17, 2] = -1.2, 1.2  # shoulders: arms down
    aa[:, 1, 0], aa[:, 2, 0] = 0.4 * np.sin(t * 8), -0.4 * np.sin(t * 8)  # hips
    trans = np.zeros((n, 3))
    trans[:, 1] = 0.9
    trans[:, 0], trans[:, 2] = velocity[0] * t, velocity[1] * t
    return Motion.from_axis_angle(aa.reshape(n, -1), trans)


def _path(body, person, motion, size=128):
    scene = build_scene(person, size=size, body=body)
    placed = place_motion(
        body, scene.shape, motion, scene.source_pose, scene.source_trans, scene.source_vertices
    )
    path = follow_path(
        scene.camera,
        placed.vertices,
        placed.trans,
        scene.source_vertices,
        scene.source_trans,
        (scene.width, scene.height),
    )
    return scene, placed, path


def test_ease_up_is_smooth_and_never_short():
    need = np.zeros(200)
    need[80:90] = 1.0
    need[150] = 0.5
    eased = ease_up(need)
    assert (eased >= need - 1e-12).all()
    assert eased[0] == 0.0 and eased[15] == 0.0  # nothing needed within two seconds: the photo's view
    assert np.abs(np.diff(eased, 2)).max() < 0.02  # no jumps: eases in and out over about a second
    assert not ease_up(np.zeros(10)).any()


def test_pan_stays_in_range_smoothly_and_rests_where_it_can():
    n = 300
    lo = np.full(n, -np.inf)
    hi = np.full(n, np.inf)
    lo[60:90] = np.linspace(0, 60, 30)  # the person drifts off to one side and comes back
    lo[90:100] = 60
    path = smooth_within(lo, hi, 0.0)
    assert (path >= lo - 1e-6).all()
    assert abs(path[0]) < 0.1 and abs(path[-1]) < 2.0  # opens on and returns to the photo's framing
    assert np.abs(np.diff(path, 2)).max() < 0.2  # smooth (no per-frame jitter)
    assert path.max() < 65  # no overshoot past what the person needs
    assert (smooth_within(np.full(5, -1.0), np.full(5, 1.0), 0.0) == 0.0).all()  # fits: untouched


@pytest.mark.parametrize("velocity", [(1.2, 0.0), (0.0, 1.4)], ids=["sideways", "towards"])
def test_follow_keeps_the_whole_travelling_person_in_view(body, velocity):
    """2.4 m to the side, or 2.8 m towards a camera 4 m away: the fixed camera loses the person (or
    ends on a close-up); the following one keeps every frame whole, with the motion's full travel."""
    person = make_person(body)
    motion = walk(60, velocity)
    scene, placed, path = _path(body, person, motion)
    fixed = in_view(scene, placed.vertices)
    follow = in_view(scene, placed.vertices, path.cameras)
    assert fixed.min() < 0.9
    assert follow.min() == 1.0
    assert not path.moved[0]  # opens on the photo's framing
    travel = np.linalg.norm(placed.trans[-1, [0, 2]] - placed.trans[0, [0, 2]])
    legs = leg_length(np.asarray(body.rest_joints(scene.shape))) / motion_leg_length()
    assert travel == pytest.approx(np.linalg.norm(velocity) * 59 / 30 * legs, rel=1e-3)  # not shortened
    assert np.abs(np.diff(path.centre, 2, axis=0)).max() < 1.5  # no jitter (pixels at 128)
    if velocity[1] > 0:  # coming closer: the camera steps back (smoothly) instead of cutting the head
        assert path.back.max() > 0.5 and (np.diff(path.back) >= -1e-9).all()  # steps back steadily
        assert np.abs(np.diff(path.back, 2)).max() < 0.02
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frames = list(render_frames(person, motion, size=128, body=body))
    assert len(frames) == 60 and frames[0].shape == (96, 128, 3)
    assert not [w for w in caught if issubclass(w.category, RenderWarning)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        list(render_frames(person, motion, size=128, body=body, camera="fixed"))
    assert any("travel was scaled" in str(w.message) for w in caught)


def test_follow_is_the_fixed_camera_when_the_person_stays_in_view(body):
    person = make_person(body)
    motion = walk(12, (0.0, 0.0))
    follow = np.stack(list(render_frames(person, motion, size=128, body=body)))
    fixed = np.stack(list(render_frames(person, motion, size=128, body=body, camera="fixed")))
    assert np.array_equal(follow, fixed)
    with pytest.raises(InputError, match="camera 'pan'"):
        next(render_frames(person, motion, size=128, body=body, camera="pan"))


def test_followed_frames_show_the_extended_plate_and_the_person(body):
    person = make_person(body)
    scene, placed, path = _path(body, person, walk(60, (1.2, 0.0)))
    frames = list(render_frames(person, walk(60, (1.2, 0.0)), size=128, body=body))
    last = frames[-1].astype(float)
    # The person is in the last frame: it differs from that frame's plate over the body.
    from vmclip.render.camera import attach_plate

    attach_plate(path, scene.background)
    plate = path.background(59, scene.background).astype(float)
    assert np.abs(last - plate).mean(-1).max() > 50
    assert (np.abs(last - plate).mean(-1) > 30).mean() > 0.03


def test_extend_plate_keeps_the_photo_and_fills_the_border():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:60, :80]
    plate = np.stack([100 + 60 * (yy > 40), 80 + 40 * np.sin(xx / 3.0), 120 + 0 * xx], -1).astype(np.uint8)
    plate = np.clip(plate + rng.integers(0, 6, plate.shape), 0, 255).astype(np.uint8)
    grown = extend_plate(plate, (10, 5, 20, 15))
    assert grown.shape == (80, 110, 3)
    assert np.array_equal(grown[5:65, 10:90], plate)
    # The floor (lower rows) continues as floor beside the photo, the wall as wall.
    assert abs(grown[60:65, 95:, 0].mean() - 160) < 15 and abs(grown[10:40, 95:, 0].mean() - 100) < 15
    assert extend_plate(plate, (0, 0, 0, 0)) is plate


def test_extend_plate_in_paints_the_photos_own_frame():
    """A letterboxed photo (white margins left and right) with black lines along its top and bottom
    edges: extended, the margins and lines are in-painted with the border (seen from farther back
    they were a white bar beside the person and black lines across the picture); the rest of the
    photo is kept exactly. A plain wall that goes on into the picture is no frame."""
    from vmclip.person.background import frame_border

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:60, :80]
    inner = np.stack([100 + 60 * (yy > 40), 80 + 40 * np.sin(xx / 3.0), 120 + 0 * xx], -1)
    plate = np.clip(inner + rng.integers(0, 6, inner.shape), 0, 255).astype(np.uint8)
    plate[:, :9] = plate[:, -9:] = 255
    plate[:2] = plate[-2:] = 0
    assert frame_border(plate) == (10, 3, 10, 3)
    grown = extend_plate(plate, (10, 5, 20, 15))
    assert np.array_equal(grown[5 + 3 : 65 - 3, 10 + 10 : 90 - 10], plate[3:-3, 10:-10])
    # No black line and no white bar left where the photo had them.
    assert grown[5:7, 20:80].mean() > 60 and grown[63:65, 20:80].mean() > 60
    assert grown[10:60, 10:19, 1].mean() < 200 and grown[10:60, 81:90, 1].mean() < 200
    # A plain wall along the top edge (the upper third of the photo) is the photo, not a frame.
    wall = plate[3:-3, 10:-10].copy()
    wall[:15] = (200, 200, 190)
    assert frame_border(wall) == (0, 0, 0, 0)


def test_still_frames_of_a_followed_video_have_no_photo_frame_either(body):
    """A photo with a black line along its top (iper_p009's first rows): the frames the camera moves
    in quilt over it, and the frames it rests in, sampling the photo's plate, showed it: a black line
    that blinked on and off at the top of the video. The still frames now take the photo's part of
    the extended plate: the line is gone, the rest of the photo is the same."""
    from vmclip.render.camera import attach_plate

    person = make_person(body)
    scene, placed, path = _path(body, person, walk(60, (1.2, 0.0)))
    assert path.moved.any() and not path.moved.all()
    plate = scene.background.copy()
    plate[:2] = 0
    attach_plate(path, plate)
    still = path.background(int(np.flatnonzero(~path.moved)[0]), plate)
    assert still.shape == plate.shape
    assert still[:2].mean() > 60  # (the line: 0)
    assert np.array_equal(still[4:-4, 4:-4], plate[4:-4, 4:-4])
