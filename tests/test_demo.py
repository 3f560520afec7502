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
