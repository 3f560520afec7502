"""`vmclip motion convert`: conversions through the real CLI (subprocess-free: vmclip.cli.main), and bad
input each giving exit 2, one line on stderr naming the file, and no output file left behind."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from vmclip.cli import main
from vmclip.motion import JOINT_INDEX, Motion, load_npz, write_bvh
from vmclip.motion.skeleton import pelvis_height


def _motion(frames: int = 12, fps: float = 30.0) -> Motion:
    t = np.arange(frames) / fps
    aa = np.zeros((frames, 24, 3))
    aa[:, JOINT_INDEX["left_hip"], 0] = 0.4 * np.sin(2 * np.pi * t)
    aa[:, JOINT_INDEX["right_shoulder"], 2] = 1.0
    aa[:, 0, 1] = 0.3  # turned a little: the heading must survive conversions
    trans = np.stack([0.2 * t, np.full(frames, pelvis_height()), t], axis=1)
    return Motion.from_axis_angle(aa, trans, fps, ["a person walks and lifts the right arm"])


def _angle(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.spatial.transform import Rotation

    rel = np.swapaxes(a, -1, -2) @ b
    return float(Rotation.from_matrix(rel.reshape(-1, 3, 3)).magnitude().max())


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["motion", "convert", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_npz_to_bvh_and_preview(tmp_path: Path, capsys) -> None:
    src = _motion().save_npz(tmp_path / "in.npz")
    code, out, err = _run(
        capsys, src, "-o", tmp_path / "out.bvh", "--preview", tmp_path / "out.mp4", "--size", "128"
    )
    assert code == 0, err
    assert "12 frames" in out
    assert (tmp_path / "out.bvh").read_text().startswith("HIERARCHY")
    with av.open(str(tmp_path / "out.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) == 12


def test_npz_resample(tmp_path: Path, capsys) -> None:
    src = _motion(31).save_npz(tmp_path / "in.npz")
    code, _, err = _run(capsys, src, "-o", tmp_path / "out.npz", "--fps", "15", "--text", "hello")
    assert code == 0, err
    back = load_npz(tmp_path / "out.npz")
    assert back.fps == 15 and back.num_frames == 16 and back.texts == ["hello"]


def test_bvh_to_npz_keeps_the_motion(tmp_path: Path, capsys) -> None:
    pytest.importorskip("vmclip.motion.mocap")
    motion = _motion(20)
    src = write_bvh(motion, tmp_path / "in.bvh")
    code, _, err = _run(capsys, src, "-o", tmp_path / "out.npz")
    assert code == 0, err
    back = load_npz(tmp_path / "out.npz")
    assert back.num_frames == 20
    assert _angle(motion.matrices(), back.matrices()) < 1e-3
    assert np.abs(back.trans - motion.trans).max() < 1e-3


def _truncated_bvh(tmp_path: Path) -> Path:
    text = write_bvh(_motion(), tmp_path / "full.bvh").read_text()
    (tmp_path / "full.bvh").unlink()
    p = tmp_path / "cut.bvh"
    p.write_text(text[: int(len(text) * 0.7)])
    return p


def _unknown_joints(tmp_path: Path) -> Path:
    text = write_bvh(_motion(), tmp_path / "full.bvh").read_text()
    (tmp_path / "full.bvh").unlink()
    for i, name in enumerate(
        [
            "left_hip",
            "right_hip",
            "left_knee",
            "right_knee",
            "left_shoulder",
            "right_shoulder",
            "spine1",
            "spine2",
            "spine3",
            "neck",
            "head",
            "pelvis",
        ]
    ):
        text = text.replace(f" {name}\n", f" bone{i:02d}\n")
    p = tmp_path / "odd.bvh"
    p.write_text(text)
    return p


def _nan_bvh(tmp_path: Path) -> Path:
    text = write_bvh(_motion(), tmp_path / "full.bvh").read_text()
    (tmp_path / "full.bvh").unlink()
    head, motion = text.split("Frame Time:")
    lines = motion.splitlines()
    lines[3] = "nan " + lines[3].split(" ", 1)[1]
    p = tmp_path / "nan.bvh"
    p.write_text(head + "Frame Time:" + "\n".join(lines) + "\n")
    return p


def _zero_frames_bvh(tmp_path: Path) -> Path:
    text = write_bvh(_motion(), tmp_path / "full.bvh").read_text()
    (tmp_path / "full.bvh").unlink()
    head = text.split("MOTION")[0]
    p = tmp_path / "empty.bvh"
    p.write_text(head + "MOTION\nFrames: 0\nFrame Time: 0.033333\n")
    return p


def _npz(tmp_path: Path, **arrays) -> Path:
    p = tmp_path / "bad.npz"
    with open(p, "wb") as fh:
        np.savez(fh, **arrays)
    return p


def _file(name: str, content: str | bytes):
    def make(d: Path) -> Path:
        p = d / name
        p.write_bytes(content if isinstance(content, bytes) else content.encode())
        return p

    return make


def _real_amc(d: Path, cut: float) -> Path:
    from conftest import MOTION_DATA

    if not MOTION_DATA.is_dir():
        pytest.skip("../shared/data/motion is absent")
    from vmclip.motion.sources import read_member

    _file("01.asf", read_member(MOTION_DATA, "cmu/asfamc120/01/01.asf"))(d)
    amc = read_member(MOTION_DATA, "cmu/asfamc120/01/01_01.amc")
    lines = amc.splitlines(keepends=True)
    return _file("01_01.amc", b"".join(lines[: int(len(lines) * cut)]) + b"root 1.0 2.0")(d)


BAD_INPUTS = {
    "missing file": lambda d: d / "nope.bvh",
    "wrong input extension": _file("m.fbx", b"x"),
    "not a bvh": _file("junk.bvh", b"\x00\x01garbage"),
    "empty bvh": _file("e.bvh", b""),
    "truncated bvh": _truncated_bvh,
    "unknown joint names": _unknown_joints,
    "nan in bvh": _nan_bvh,
    "zero-length bvh": _zero_frames_bvh,
    "truncated amc": lambda d: _real_amc(d, 0.01),
    "bad asf": lambda d: (
        _file("01.asf", ":version 1.10\n:name VICON\n")(d)
        and _file("01_02.amc", ":FULLY-SPECIFIED\n:DEGREES\n1\nroot 0 0 0 0 0 0\n")(d)
    ),
    "amc without asf": _file("02_01.amc", ":FULLY-SPECIFIED\n:DEGREES\n"),
    "npz wrong keys": lambda d: _npz(d, rotations=np.zeros((4, 72)), translation=np.zeros((4, 3))),
    "npz nan": lambda d: _npz(
        d, poses=np.full((4, 72), np.nan), trans=np.zeros((4, 3)), mocap_framerate=30.0
    ),
    "npz zero-length": lambda d: _npz(d, poses=np.zeros((0, 72)), trans=np.zeros((0, 3))),
    "npz wrong shape": lambda d: _npz(d, poses=np.zeros((4, 10)), trans=np.zeros((4, 3))),
    "npz not a zip": _file("x.npz", b"PK\x03\x04broken"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input(tmp_path: Path, capsys, case: str) -> None:
    if "bvh" in case or "joint" in case:
        pytest.importorskip("vmclip.motion.mocap")
    if "amc" in case or "asf" in case:
        pytest.importorskip("vmclip.motion.amc")
    src_dir = tmp_path / "in"
    src_dir.mkdir()
    src = BAD_INPUTS[case](src_dir)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code, out, err = _run(capsys, src, "-o", out_dir / "m.npz", "--preview", out_dir / "m.mp4")
    assert code == 2, (case, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vmclip: error:"), err
    assert src.name in lines[0] or "unsupported" in lines[0] or ".asf" in lines[0], lines[0]
    assert list(out_dir.iterdir()) == []


@pytest.mark.parametrize(
    "outputs",
    [
        ("-o", "OUT/m.txt"),
        ("-o", "OUT/m"),
        ("--preview", "OUT/m.gif"),
        ("-o", "OUT/missing/m.npz"),
        ("-o", "OUT/m.npz", "--preview", "OUT/missing/p.mp4"),
        (),
        ("-o", "OUT/m.npz", "--fps", "0"),
        ("-o", "OUT/dir.npz"),
    ],
)
def test_bad_outputs(tmp_path: Path, capsys, outputs: tuple[str, ...]) -> None:
    src = _motion().save_npz(tmp_path / "in.npz")
    out_dir = tmp_path / "o"
    out_dir.mkdir()
    (out_dir / "dir.npz").mkdir()
    args = [a.replace("OUT", str(out_dir)) for a in outputs]
    code, _, err = _run(capsys, src, *args)
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in out_dir.iterdir()) == ["dir.npz"]


def test_unwritable_folder(tmp_path: Path, capsys) -> None:
    import os

    src = _motion().save_npz(tmp_path / "in.npz")
    if os.geteuid() == 0:  # root ignores permission bits; /proc refuses new files even to root
        locked = Path("/proc/self")
        if os.access(locked, os.W_OK):
            pytest.skip("no folder here is unwritable for root")
        code, _, err = _run(capsys, src, "-o", locked / "m.bvh", "--preview", tmp_path / "p.mp4")
        assert code == 2 and "not writable" in err and len(err.strip().splitlines()) == 1
        assert not (tmp_path / "p.mp4").exists()
        return
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code, _, err = _run(capsys, src, "-o", locked / "m.bvh")
    finally:
        locked.chmod(0o700)
    assert code == 2 and "not writable" in err
    assert list(locked.iterdir()) == []


def test_asf_only_with_amc(tmp_path: Path, capsys) -> None:
    src = _motion().save_npz(tmp_path / "in.npz")
    code, _, err = _run(capsys, src, "--asf", tmp_path / "x.asf", "-o", tmp_path / "o.bvh")
    assert code == 2 and "--asf" in err
    assert not (tmp_path / "o.bvh").exists()


def test_help_explains(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["motion", "convert", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--preview" in out and ".amc" in out and "atomically" in out


def test_real_recordings(motion_data: Path, tmp_path: Path, capsys) -> None:
    """A Bandai BVH and a CMU ASF/AMC trial through the CLI: retargeted to 30 fps, written, re-read."""
    from vmclip.motion.bvh_write import read_smpl_bvh
    from vmclip.motion.sources import read_member

    bvh = tmp_path / "wave.bvh"
    bvh.write_bytes(read_member(motion_data, "bandai_namco/dataset-1/data/dataset-1_bye_active_001.bvh"))
    code, out, err = _run(
        capsys, bvh, "-o", tmp_path / "wave_smpl.bvh", "--preview", tmp_path / "wave.mp4", "--size", "96"
    )
    assert code == 0, err
    motion = read_smpl_bvh(tmp_path / "wave_smpl.bvh")
    assert motion.fps == 30.0 and motion.num_frames > 30
    assert (tmp_path / "wave.mp4").stat().st_size > 1000

    (tmp_path / "02.asf").write_bytes(read_member(motion_data, "cmu/asfamc120/02/02.asf"))
    amc = tmp_path / "02_01.amc"
    amc.write_bytes(read_member(motion_data, "cmu/asfamc120/02/02_01.amc"))
    code, out, err = _run(capsys, amc, "-o", tmp_path / "walk.npz")  # finds 02.asf beside it
    assert code == 0, err
    walk = load_npz(tmp_path / "walk.npz")
    assert walk.fps == 30.0 and abs(walk.num_frames - 343 / 4) < 3  # 343 frames at 120 fps
    travelled = np.linalg.norm(walk.trans[-1, [0, 2]] - walk.trans[0, [0, 2]])
    assert travelled > 1.0  # it is a walk
