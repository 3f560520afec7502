"""Mocap import: BVH parser, sources (zips + manifests), load_mocap on synthetic and real clips."""

from __future__ import annotations

import numpy as np
import pytest
from vmclip.errors import InputError
from vmclip.motion.bvh_read import bvh_to_source, parse_bvh
from vmclip.motion.mocap import load_mocap
from vmclip.motion.skeleton import JOINT_INDEX

# A tiny standing human in centimetres, Y up, facing +Z, with a 2-frame motion: frame 1 bends the
# left knee by 90 degrees (rotation about X, ZXY channel order) and moves the root.
_JOINTS = [
    ("Hips", None, (0, 90, 0)),
    ("Spine", "Hips", (0, 15, 0)),
    ("Chest", "Spine", (0, 15, 0)),
    ("Neck", "Chest", (0, 20, 0)),
    ("Head", "Neck", (0, 10, 0)),
    ("LeftShoulder", "Chest", (3, 18, 0)),
    ("LeftArm", "LeftShoulder", (14, 0, 0)),
    ("LeftForeArm", "LeftArm", (28, 0, 0)),
    ("LeftHand", "LeftForeArm", (25, 0, 0)),
    ("RightShoulder", "Chest", (-3, 18, 0)),
    ("RightArm", "RightShoulder", (-14, 0, 0)),
    ("RightForeArm", "RightArm", (-28, 0, 0)),
    ("RightHand", "RightForeArm", (-25, 0, 0)),
    ("LeftUpLeg", "Hips", (9, -5, 0)),
    ("LeftLeg", "LeftUpLeg", (0, -42, 0)),
    ("LeftFoot", "LeftLeg", (0, -41, 0)),
    ("LeftToeBase", "LeftFoot", (0, -5, 14)),
    ("RightUpLeg", "Hips", (-9, -5, 0)),
    ("RightLeg", "RightUpLeg", (0, -42, 0)),
    ("RightFoot", "RightLeg", (0, -41, 0)),
    ("RightToeBase", "RightFoot", (0, -5, 14)),
]


def synthetic_bvh(
    frames: list[list[float]] | None = None,
    *,
    n_frames: int | None = None,
    names: dict[str, str] | None = None,
) -> str:
    names = names or {}
    children: dict[str | None, list[str]] = {}
    for n, p, _ in _JOINTS:
        children.setdefault(p, []).append(n)
    off = {n: o for n, _, o in _JOINTS}
    lines = ["HIERARCHY"]

    def emit(n: str, depth: int, root: bool) -> None:
        ind = "  " * depth
        lines.append(f"{ind}{'ROOT' if root else 'JOINT'} {names.get(n, n)}")
        lines.append(ind + "{")
        lines.append(f"{ind}  OFFSET {off[n][0]} {off[n][1]} {off[n][2]}")
        chans = "Xposition Yposition Zposition " if root else ""
        lines.append(f"{ind}  CHANNELS {6 if root else 3} {chans}Zrotation Xrotation Yrotation")
        for c in children.get(n, []):
            emit(c, depth + 1, False)
        if n not in children:
            lines.extend([f"{ind}  End Site", ind + "  {", f"{ind}    OFFSET 0 0 5", ind + "  }"])
        lines.append(ind + "}")

    emit("Hips", 0, True)
    n_ch = 6 + 3 * (len(_JOINTS) - 1)
    if frames is None:
        f0 = [0.0] * n_ch
        f0[1] = 90.0
        f1 = list(f0)
        f1[0], f1[2] = 10.0, 20.0
        knee = [n for n, _, _ in _JOINTS].index("LeftLeg")
        f1[6 + 3 * (knee - 1) + 1] = 90.0  # X rotation of the left knee
        frames = [f0, f1]
    lines += ["MOTION", f"Frames: {len(frames) if n_frames is None else n_frames}", "Frame Time: 0.0333333"]
    lines += [" ".join(f"{v:.6f}" for v in fr) for fr in frames]
    return "\n".join(lines) + "\n"


def test_parse_bvh_structure_and_fk() -> None:
    bvh = parse_bvh(synthetic_bvh(), "synthetic.bvh")
    assert len(bvh.names) == len(_JOINTS) and bvh.parents[0] == -1
    assert bvh.values.shape == (2, 6 + 3 * (len(_JOINTS) - 1))
    src = bvh_to_source(bvh)
    i_knee, i_ankle = bvh.names.index("LeftLeg"), bvh.names.index("LeftFoot")
    # frame 1: knee bent 90 degrees about +X: the shin (0,-41,0) turns to (0,0,-41)
    np.testing.assert_allclose(src.pos[1, i_ankle] - src.pos[1, i_knee], [0, 0, -41], atol=1e-9)
    np.testing.assert_allclose(src.pos[1, 0], [10, 90, 20])
    assert src.fps == pytest.approx(30.0, rel=1e-4)


def test_load_mocap_synthetic_bends_knee_and_stands_on_floor() -> None:
    m = load_mocap("synthetic.bvh", data=synthetic_bvh().encode(), fps=30.0)
    assert m.fps == 30.0 and m.num_frames == 2
    pos = m.joint_positions()
    knee, ankle, hip = (JOINT_INDEX[n] for n in ("left_knee", "left_ankle", "left_hip"))
    shin = pos[1, ankle] - pos[1, knee]
    assert shin[2] < -0.9 * np.linalg.norm(shin)  # shin points backwards (-Z) when the knee bends
    thigh0 = pos[0, knee] - pos[0, hip]
    assert thigh0[1] < -0.95 * np.linalg.norm(thigh0)
    feet = [JOINT_INDEX[n] for n in ("left_ankle", "right_ankle", "left_foot", "right_foot")]
    assert pos[:, feet, 1].min() == pytest.approx(0.02, abs=1e-4)  # sole on y = 0


@pytest.mark.parametrize(
    "text,problem",
    [
        ("", "empty"),
        ("hello world", "not a BVH"),
        ("\x00\xff\x10binary" * 20, "not a BVH"),
        (synthetic_bvh().split("MOTION")[0], "no MOTION"),
        (synthetic_bvh()[:-200], "truncated"),
        (synthetic_bvh(n_frames=0), "zero-length"),
        (synthetic_bvh().replace(" 0.000000", " nan", 3), "NaN"),
        (synthetic_bvh(names={n: f"Bone{i}" for i, (n, _, _) in enumerate(_JOINTS)}), "unknown skeleton"),
    ],
)
def test_bad_bvh_raises_input_error_naming_file(text: str, problem: str) -> None:
    with pytest.raises(InputError) as err:
        load_mocap("bad_clip.bvh", data=text.encode())
    msg = str(err.value)
    assert "bad_clip.bvh" in msg and problem.lower() in msg.lower() and "\n" not in msg


def test_missing_file_and_unknown_format(tmp_path) -> None:
    with pytest.raises(InputError, match="no such file"):
        load_mocap(tmp_path / "absent.bvh")
    with pytest.raises(InputError, match="unsupported"):
        load_mocap(tmp_path / "clip.fbx", data=b"x")


def test_sources_manifest_and_members(motion_data) -> None:
    from vmclip.motion.sources import iter_manifest, read_member

    rows = list(iter_manifest(motion_data))
    assert len(rows) > 1000
    assert any(r.path.startswith("extra/") for r in rows)
    amc = next(r for r in rows if r.format == "amc")
    assert read_member(motion_data, amc.asf_path).lstrip().startswith(b"#")
    first = rows[0]
    assert read_member(motion_data, first.path).startswith(b"HIERARCHY")
    with pytest.raises(InputError, match="no member"):
        read_member(motion_data, "cmu/iclone_bvh60/999/none.bvh")


# --- ASF/AMC ------------------------------------------------------------------------------------
_ASF = """# tiny skeleton
:version 1.10
:units
  length 1.0
  angle deg
:root
   order TX TY TZ RX RY RZ
   axis XYZ
   position 0 0 0
   orientation 0 0 0
:bonedata
  begin
     id 1
     name a
     direction 0 1 0
     length 2
     axis 0 0 90  XYZ
    dof rx ry rz
    limits (-180.0 180.0)
           (-180.0 180.0)
           (-180.0 180.0)
  end
  begin
     id 2
     name b
     direction 1 0 0
     length 1
     axis 0 0 0  XYZ
    dof rz
  end
:hierarchy
  begin
    root a
    a b
  end
"""
_AMC = """:FULLY-SPECIFIED
:DEGREES
1
root 1 2 3 0 0 0
a 0 0 0
b 0
2
root 1 2 3 0 0 0
a 0 0 90
b 0
3
root 1 2 3 0 0 0
a 90 0 0
b 0
"""


def test_asf_amc_forward_kinematics() -> None:
    from vmclip.motion.amc import amc_to_source, parse_amc, parse_asf

    skel = parse_asf(_ASF, "tiny.asf")
    assert skel.names == ["root", "a", "b"] and skel.parents == [-1, 0, 1]
    src = amc_to_source(skel, parse_amc(_AMC, skel, "tiny.amc"), 120.0, "tiny.amc")
    i_b = 2
    np.testing.assert_allclose(src.pos[0, i_b], [1, 4, 3], atol=1e-9)  # rest: a points up 2 units
    np.testing.assert_allclose(src.pos[1, i_b], [-1, 2, 3], atol=1e-9)  # rz 90: a points along -x
    # rx is about a's own x axis, which `axis 0 0 90` turns onto world +y: a keeps pointing up and
    # b (along +x) swings to -z
    np.testing.assert_allclose(src.pos[2, i_b], [1, 4, 3], atol=1e-9)
    tip = src.pos[2, i_b] + src.rot[2, i_b] @ src.end_sites[i_b]
    np.testing.assert_allclose(tip, [1, 4, 2], atol=1e-9)


@pytest.mark.parametrize(
    "amc,problem",
    [
        (_AMC[: _AMC.rindex("b 0")], "truncated"),
        (_AMC.replace("a 0 0 90", "zz 0 0 90"), "does not have"),
        (_AMC.replace("a 0 0 90", "a 0 0 nan"), "NaN"),
        (":FULLY-SPECIFIED\n", "zero-length"),
    ],
)
def test_bad_amc_raises_input_error(amc: str, problem: str) -> None:
    with pytest.raises(InputError) as err:
        load_mocap("bad_take.amc", data=amc.encode(), asf=_ASF.encode())
    assert "bad_take.amc" in str(err.value) and problem.lower() in str(err.value).lower()


def test_amc_without_asf_and_unknown_asf_skeleton(tmp_path) -> None:
    with pytest.raises(InputError, match="ASF"):
        load_mocap("lonely.amc", data=_AMC.encode())
    with pytest.raises(InputError, match="unknown skeleton"):
        load_mocap("tiny.amc", data=_AMC.encode(), asf=_ASF.encode())
    with pytest.raises(InputError, match="not an ASF"):
        load_mocap("tiny.amc", data=_AMC.encode(), asf=b"hello")


def test_real_cmu_amc_loads(motion_data) -> None:
    from vmclip.motion.sources import iter_manifest, load_clip

    row = next(r for r in iter_manifest(motion_data) if r.clip_id == "cmuamc_02_01")
    m = load_clip(motion_data, row)
    assert m.fps == 30.0 and m.num_frames == pytest.approx((row.end_frame - 1) / 120 * 30 + 1, abs=1)
    assert m.texts == row.texts
    travel = np.linalg.norm((m.trans[-1] - m.trans[0])[[0, 2]])
    assert travel > 1.0  # a walk goes somewhere


def test_bvh_reader_matches_bvhio(motion_data) -> None:
    """Our vectorised FK against bvhio (maintained PyPI parser) on real files of two rigs."""
    bvhio = pytest.importorskip("bvhio")
    import tempfile

    from vmclip.motion.sources import read_member

    for rel in (
        "extra/deepmimic/humanoid3d_walk.bvh",  # Zrot Xrot Yrot, end sites
        "extra/xia_test/neutral_16_000.bvh",  # Zrot Yrot Xrot, zero-length joints
        "bandai_namco/dataset-2/data/dataset-2_walk_normal_001.bvh",  # position channels on every joint
    ):
        data = read_member(motion_data, rel)
        src = bvh_to_source(parse_bvh(data.decode(), rel))
        with tempfile.NamedTemporaryFile(suffix=".bvh") as fh:
            fh.write(data)
            fh.flush()
            root = bvhio.readAsHierarchy(fh.name)
        joints = {j.Name: j for j, _, _ in root.layout()}
        for frame in (0, src.num_frames // 2):
            root.loadPose(frame)
            ref = np.array([joints[n].PositionWorld for n in src.names])
            np.testing.assert_allclose(src.pos[frame], ref, atol=1e-3 * np.abs(ref).max())


def test_sources_resolve_zips_and_plain_files(tmp_path) -> None:
    """Manifest paths map to the longest leading folder that has a zip; files outside zips are read
    directly; a folder without manifests is an input error."""
    import zipfile

    from vmclip.motion.sources import iter_manifest, read_member, resolve_member

    (tmp_path / "set").mkdir()
    with zipfile.ZipFile(tmp_path / "set" / "takes.zip", "w") as zf:
        zf.writestr("a/clip.bvh", synthetic_bvh())
    (tmp_path / "loose.bvh").write_text("HIERARCHY")
    zpath, member = resolve_member(tmp_path, "set/takes/a/clip.bvh")
    assert zpath == tmp_path / "set" / "takes.zip" and member == "a/clip.bvh"
    m = load_mocap(
        "set/takes/a/clip.bvh",
        data=read_member(tmp_path, "set/takes/a/clip.bvh"),
        frames=(0, 1),
        source="clip-1",
    )
    assert m.num_frames == 1
    assert read_member(tmp_path, "loose.bvh") == b"HIERARCHY"
    with pytest.raises(InputError, match="not found"):
        read_member(tmp_path, "absent/x.bvh")
    with pytest.raises(InputError, match="no manifest"):
        list(iter_manifest(tmp_path))
    with pytest.raises(InputError, match=r"clip-2.*empty"):
        load_mocap("c.bvh", data=synthetic_bvh().encode(), frames=(5, 9), source="clip-2")
