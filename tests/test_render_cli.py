"""`vmclip animate` argument checks and the Blender scene used for the example person and the benchmark."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from vmclip.cli import main


def _photo(path, w=64, h=48):
    Image.fromarray(np.full((h, w, 3), 128, np.uint8)).save(path)
    return str(path)


def _run(capsys, *argv):
    code = main(list(argv))
    return code, capsys.readouterr().err


def test_animate_needs_a_prompt_or_motion(tmp_path, capsys):
    code, err = _run(capsys, "animate", _photo(tmp_path / "a.png"), "-o", str(tmp_path / "o.mp4"))
    assert code == 2 and "--prompt" in err


def test_animate_takes_at_most_eight_photos(tmp_path, capsys):
    photos = [_photo(tmp_path / f"p{i}.png", 64 + 8 * i, 48) for i in range(9)]  # sizes may differ
    code, err = _run(capsys, "animate", *photos, "--prompt", "wave", "-o", str(tmp_path / "o.mp4"))
    assert code == 2 and "9 photos: at most 8" in err and err.count("\n") == 1
    assert not (tmp_path / "o.mp4").exists()


@pytest.mark.parametrize("out, message", [("missing/o.mp4", "does not exist"), ("o.avi", "must end in .mp4")])
def test_animate_checks_the_output_before_working(tmp_path, capsys, out, message):
    code, err = _run(
        capsys, "animate", _photo(tmp_path / "a.png"), "--prompt", "wave", "-o", str(tmp_path / out)
    )
    assert code == 2 and message in err
    assert err.count("\n") == 1  # one line, no traceback


def test_animate_rejects_unreadable_photo_and_zero_length_motion(tmp_path, capsys):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    code, err = _run(capsys, "animate", str(bad), "--prompt", "wave", "-o", str(tmp_path / "o.mp4"))
    assert code == 2 and "not a readable image" in err
    empty = tmp_path / "empty.npz"
    np.savez(
        empty, poses=np.zeros((0, 72), np.float32), trans=np.zeros((0, 3), np.float32), mocap_framerate=30.0
    )
    code, err = _run(
        capsys, "animate", _photo(tmp_path / "a.png"), "--motion", str(empty), "-o", str(tmp_path / "o.mp4")
    )
    assert code == 2 and "zero-length" in err
    assert not (tmp_path / "o.mp4").exists()


def test_animate_help_explains(capsys):
    with pytest.raises(SystemExit):
        main(["animate", "--help"])
    out = capsys.readouterr().out
    assert "--prompt" in out and "--motion" in out and "--gif" in out and "--frames" in out


_BLENDER_SCRIPT = r"""
import sys
import numpy as np
from vmclip.person.body import load_body_model
from vmclip.render.example import look_at_camera, outfit_colors, render_person
from vmclip.render.raster import get_rasterizer
body = load_body_model("anny", device="cpu")
shape = body.default_shape()
rot = np.tile(np.eye(3), (24, 1, 1))
trans = np.array([0.0, -float(body.rest_vertices(shape)[:, 1].min()), 0.0])
verts = body.pose_vertices(shape, rot[None], trans[None])[0]
cam = look_at_camera((0.4, 1.2, 4.0), (0.0, 0.9, 0.0), 96, 72)
out = sys.argv[1]
render_person(out + "/p.png", verts, body.faces, outfit_colors(body, shape), cam, 96, 72, samples=2)
render_person(out + "/e.png", None, body.faces, outfit_colors(body, shape), cam, 96, 72, samples=2)
ras = get_rasterizer().render(verts, body.faces, cam.K, cam.R, cam.t, 96, 72)
np.save(out + "/mask.npy", ras.mask)
"""


def test_blender_scene_camera_matches_our_rasteriser(tmp_path):
    """The Blender camera made from an OpenCV camera sees the body where our rasteriser draws it."""
    pytest.importorskip("bpy")
    from vmclip.person.body import anny_cache_path

    if not anny_cache_path().exists():
        pytest.skip("Anny body cache not built (bash setup.sh builds it)")
    subprocess.run(
        [sys.executable, "-c", _BLENDER_SCRIPT, str(tmp_path)], check=True, capture_output=True, timeout=300
    )
    person = np.asarray(Image.open(tmp_path / "p.png").convert("RGB"), float)
    empty = np.asarray(Image.open(tmp_path / "e.png").convert("RGB"), float)
    diff = np.abs(person - empty).sum(-1)
    mask = np.load(tmp_path / "mask.npy")
    near = np.zeros_like(mask)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            near |= np.roll(np.roll(mask, dy, 0), dx, 1)
    strong = diff > 150  # the person itself, not its (weaker) shadow on the wall and floor
    assert (strong & near).sum() / strong.sum() > 0.95
    assert (diff[mask] > 60).mean() > 0.8


def test_animate_from_saved_analysis_and_motion_file(tmp_path, capsys):
    """The whole command on a person the test makes (exact fit), with a motion file: MP4, GIF, PNGs."""
    from render_scenes import make_person
    from test_render import wave_motion
    from vmclip.person.analysis import Camera, PersonAnalysis, ViewFit
    from vmclip.person.body import anny_cache_path, load_body_model
    from vmclip.video import read_frames

    if not anny_cache_path().exists():
        pytest.skip("Anny body cache not built (bash setup.sh builds it)")
    body = load_body_model("anny", device="cpu")
    synthetic = make_person(body)
    v = synthetic.views[0]
    rows, cols = np.nonzero(v.mask > 0)
    view = ViewFit(
        image=v.image,
        mask=v.mask,
        box=(cols.min(), rows.min(), cols.max(), rows.max()),
        keypoints=np.zeros((33, 4)),
        joints2d=np.zeros((24, 3)),
        camera=Camera(K=v.camera.K, R=v.camera.R, t=v.camera.t),
        pose=v.pose,
        trans=v.trans,
        background=v.background,
        fit_error_px=0.0,
        iou=1.0,
    )
    person_json = PersonAnalysis(shape=synthetic.shape, body_kind="anny", views=[view]).save_json(
        tmp_path / "person.json"
    )
    photo = tmp_path / "photo.png"
    Image.fromarray(v.image).save(photo)
    motion = tmp_path / "wave.npz"
    wave_motion(12).save_npz(motion)
    out = tmp_path / "out.mp4"
    code = main(
        [
            "animate",
            str(photo),
            "--person",
            str(person_json),
            "--motion",
            str(motion),
            "-o",
            str(out),
            "--size",
            "256",
            "--gif",
            str(tmp_path / "out.gif"),
            "--frames",
            str(tmp_path / "frames"),
        ]
    )
    assert code == 0, capsys.readouterr().err
    frames = read_frames(out)
    assert len(frames) == 12 and frames[0].shape == (192, 256, 3)
    assert (tmp_path / "out.gif").exists() and len(list((tmp_path / "frames").glob("*.png"))) == 12


def test_animate_with_a_prompt_fails_fast_without_the_motion_model(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("VMCLIP_T2M_CHECKPOINT", str(tmp_path / "absent.pt"))
    code, err = _run(
        capsys, "animate", _photo(tmp_path / "a.png"), "--prompt", "wave", "-o", str(tmp_path / "o.mp4")
    )
    assert code == 2 and "absent.pt" in err and err.count("\n") == 1
    assert not (tmp_path / "o.mp4").exists()
