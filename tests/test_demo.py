"""`vmclip demo` (the README's main job): argument checks happen before any long work."""

import subprocess
import sys

import pytest


def _demo(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "vmclip", "demo", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--seconds", "99"], "seconds"),
        (["--prompt", ""], "prompt"),
        (["--prompt", "x" * 600], "prompt"),
        (["--image", "no-such-photo.jpg"], "no-such-photo.jpg"),
        (["--rig", "no-such-rig.fbx"], "no-such-rig.fbx: no such file"),
        (["--rig", "notes.txt"], "expected 'rigify' or a .blend"),
        (["--rig", "rigify", "--direct"], "--rig needs blender"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(tmp_path, args, needle):
    res = _demo("--out", str(tmp_path / "o"), *args, cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0].lower() and "Traceback" not in res.stderr
    assert not any((tmp_path / "o").glob("demo*"))


def test_out_must_be_a_folder(tmp_path):
    (tmp_path / "file").write_text("x")
    res = _demo("--out", str(tmp_path / "file"), cwd=tmp_path)
    assert res.returncode == 2 and "not a folder" in res.stderr


CRANE_BVH = """HIERARCHY
ROOT Base
{
  OFFSET 0.0 0.0 0.0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT Mast
  {
    OFFSET 0.0 100.0 0.0
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {
      OFFSET 50.0 0.0 0.0
    }
  }
}
MOTION
Frames: 1
Frame Time: 0.033333
0 0 0 0 0 0 0 0 0
"""


@pytest.mark.parametrize("rig", ["crane.bvh", "cat.blend"])
def test_a_rig_that_is_not_a_humanoid_gives_one_line_and_no_outputs(rig, tmp_path):
    """The rig is checked in Blender before anything else: one line, exit code 2, no demo files in the
    output folder, and the backend never started (no motion generated): a two-bone BVH, and Rigify's
    cat metarig, whose bones carry human names (thigh, shin, forearm, spine.006)."""
    pytest.importorskip("bpy")
    if rig == "crane.bvh":
        (tmp_path / rig).write_text(CRANE_BVH)
    else:
        script = (
            "import bpy, addon_utils\n"
            "bpy.ops.preferences.addon_enable(module='rigify')\n"
            "bpy.ops.object.armature_cat_metarig_add()\n"
            f"bpy.ops.wm.save_as_mainfile(filepath={str(tmp_path / rig)!r})\n"
        )
        subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, timeout=300)
    res = subprocess.run(
        [sys.executable, "-m", "vmclip", "demo", "--out", "o", "--rig", rig, "--seconds", "1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 2, res.stderr
    errors = [line for line in res.stderr.splitlines() if not line.startswith("demo: ")]
    want = "no bone found for pelvis" if rig == "crane.bvh" else "built like a four-legged animal"
    assert len(errors) == 1 and want in errors[0], res.stderr
    assert "Traceback" not in res.stderr
    assert not any((tmp_path / "o").glob("demo*"))
    # (the motion comes from the backend, which logs into server.log from its start)
    assert "backend starting" not in res.stderr and not (tmp_path / "o" / "server.log").exists()
