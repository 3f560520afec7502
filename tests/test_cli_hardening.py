"""Every CLI entry point turns malformed files into exit 2 with one line (issue 17): motion files with
fields of the wrong type, motions past the shared frame limit, and SIGTERM cleaned up like Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from vmclip.cli import main
from vmclip.limits import MAX_MOTION_FRAMES
from vmclip.server import Limits

TESTS = Path(__file__).resolve().parent


def _photo(path: Path) -> str:
    Image.fromarray(np.full((96, 64, 3), 128, np.uint8)).save(path)
    return str(path)


def _npz(path: Path, frames: int = 10, **fields) -> Path:
    data = {
        "poses": np.zeros((frames, 72), np.float32),
        "trans": np.zeros((frames, 3), np.float32),
        "mocap_framerate": np.float64(30.0),
        "text": np.asarray("a person stands"),
    }
    data.update(fields)
    np.savez(path, **data)
    return path


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("vmclip: error: "), err
    return err


BAD_FIELDS = {
    "poses as text": {"poses": np.asarray("walk")},
    "poses as text rows": {"poses": np.full((10, 72), "x")},
    "trans as text": {"trans": np.full((10, 3), "0")},
    "framerate as text": {"mocap_framerate": np.asarray("thirty")},
    "framerate as a list": {"mocap_framerate": np.asarray([30.0, 60.0])},
    "text as numbers": {"text": np.arange(3)},
    "betas as text": {"betas": np.asarray(["tall"])},
}


@pytest.mark.parametrize("case", sorted(BAD_FIELDS))
def test_motion_files_with_fields_of_the_wrong_type_are_exit_2(case, tmp_path, capsys) -> None:
    bad = _npz(tmp_path / "bad.npz", **BAD_FIELDS[case])
    out = tmp_path / "o.mp4"
    assert main(["animate", _photo(tmp_path / "a.png"), "--motion", str(bad), "-o", str(out)]) == 2
    assert "bad.npz" in _one_line_error(capsys)
    assert main(["motion", "convert", str(bad), "-o", str(tmp_path / "o.bvh")]) == 2
    assert "bad.npz" in _one_line_error(capsys)
    assert not out.exists() and not (tmp_path / "o.bvh").exists()


def test_a_motion_past_the_frame_limit_is_refused_at_once(tmp_path, capsys) -> None:
    assert Limits().max_motion_frames == MAX_MOTION_FRAMES  # one limit for the CLI and the server
    long = _npz(tmp_path / "long.npz", frames=100_000)
    out = tmp_path / "o.mp4"
    t0 = time.monotonic()
    assert main(["animate", _photo(tmp_path / "a.png"), "--motion", str(long), "-o", str(out)]) == 2
    assert time.monotonic() - t0 < 10
    err = _one_line_error(capsys)
    assert "100000 frames" in err and str(MAX_MOTION_FRAMES) in err
    png = _photo(tmp_path / "b.png")  # the client refuses it before sending anything
    argv = ["client", "render", png, "--motion", str(long), "-o", str(out), "--server", "tcp://127.0.0.1:9"]
    assert main(argv) == 2 and str(MAX_MOTION_FRAMES) in _one_line_error(capsys)
    assert not out.exists()
    # the limit is stated in --help
    for argv in (["animate", "--help"], ["client", "render", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
        assert f"at most {MAX_MOTION_FRAMES} frames" in " ".join(capsys.readouterr().out.split())
    # at the limit is fine (the file loads; here the missing model or photo is what stops it)
    from vmclip.motion import load_npz

    assert (
        load_npz(_npz(tmp_path / "limit.npz", frames=MAX_MOTION_FRAMES), MAX_MOTION_FRAMES).num_frames == 9000
    )


def test_a_motion_file_that_unpacks_to_gigabytes_is_refused(tmp_path, capsys) -> None:
    bomb = tmp_path / "bomb.npz"
    zeros = np.zeros((1_000_000, 72), np.float32)  # 288 MB unpacked, a few hundred KB packed
    np.savez_compressed(bomb, poses=zeros, trans=np.zeros((1_000_000, 3), np.float32))
    assert bomb.stat().st_size < 2_000_000
    assert main(["motion", "convert", str(bomb), "-o", str(tmp_path / "o.bvh")]) == 2
    assert "values" in _one_line_error(capsys)


def _person_json(tmp_path: Path) -> tuple[Path, Path]:
    """A saved analysis of a person the test makes (as test_render_cli does), and its photo."""
    from render_scenes import make_person
    from vmclip.person.analysis import Camera, PersonAnalysis, ViewFit
    from vmclip.person.body import anny_cache_path, load_body_model

    if not anny_cache_path().exists():
        pytest.skip("Anny body cache not built (bash setup.sh builds it)")
    synthetic = make_person(load_body_model("anny", device="cpu"))
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
    person = PersonAnalysis(shape=synthetic.shape, body_kind="anny", views=[view]).save_json(
        tmp_path / "person.json"
    )
    photo = tmp_path / "photo.png"
    Image.fromarray(v.image).save(photo)
    return person, photo


def test_sigterm_mid_render_leaves_no_temporary_file(tmp_path) -> None:
    person, photo = _person_json(tmp_path)
    t = np.arange(3000) / 30.0  # long enough that the signal lands mid-render
    poses = np.zeros((3000, 72), np.float32)
    poses[:, 16 * 3 + 2] = -1.2 + np.sin(2 * t)
    trans = np.stack([np.zeros_like(t), np.full_like(t, 0.9), np.zeros_like(t)], 1)
    motion = _npz(tmp_path / "wave.npz", frames=3000, poses=poses, trans=trans.astype(np.float32))
    out = tmp_path / "out" / "video.mp4"
    out.parent.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    argv = ["animate", str(photo), "--person", str(person), "--motion", str(motion), "-o", str(out)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "vmclip", *argv, "--size", "128"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 120
        while not list(out.parent.iterdir()):  # the hidden temporary MP4 appears when frames start
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "rendering never started"
            time.sleep(0.05)
        time.sleep(0.5)
        assert proc.poll() is None, "finished before the signal: make the motion longer"
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
        err = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert code == 128 + signal.SIGTERM, err
    assert err.strip().splitlines()[-1] == "vmclip: terminated"
    assert list(out.parent.iterdir()) == []  # neither the video nor its hidden temporary file


@pytest.mark.parametrize(
    "doc",
    [
        {"format": "vmclip-person", "views": [{}]},  # a field missing
        {"format": "vmclip-person", "views": "x"},  # of the wrong type
        {"format": "vmclip-person", "shape": [], "body_kind": "anny", "views": [{"image": 3}]},
    ],
)
def test_malformed_saved_analysis_is_exit_2(doc, tmp_path, capsys) -> None:
    import json

    person = tmp_path / "person.json"
    person.write_text(json.dumps(doc))
    motion = _npz(tmp_path / "m.npz")
    argv = ["animate", _photo(tmp_path / "a.png"), "--person", str(person), "--motion", str(motion)]
    assert main([*argv, "-o", str(tmp_path / "o.mp4")]) == 2
    assert "person.json: not a valid person analysis" in _one_line_error(capsys)


def test_the_parser_imports_no_heavy_library() -> None:
    """`vmclip --help` (and a typo'd option) answers at once: building the parser imports none of the
    stages' libraries (the motion package's eager imports brought in torch: 3.7 s)."""
    probe = (
        "import sys; from vmclip.cli import build_parser; build_parser(); "
        "print(sorted(m for m in ('torch', 'cv2', 'mediapipe', 'scipy', 'av', 'bpy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
