"""The shared bone-name rules (vmclip_protocol.rig_roles): one set for the backend's mocap retargeter
and the Blender add-on's rig retargeter."""

from __future__ import annotations

import numpy as np
import pytest
from vmclip.motion import retarget, skeleton
from vmclip_protocol import rig_roles


def test_constants_are_the_backends():
    assert rig_roles.PARENTS == skeleton.PARENTS
    assert np.allclose(rig_roles.SPINE_FRACTIONS, retarget._SPINE_FRACTIONS)
    assert list(rig_roles.PRIMARY_CHILD) == list(retarget._PRIMARY_CHILD)
    assert retarget.normalise is rig_roles.normalise  # the retargeter uses the shared rules


@pytest.mark.parametrize(
    "name, normalised",
    [
        ("mixamorig:LeftUpLeg", "leftupleg"),
        ("CC_Base_L_Thigh", "lthigh"),
        ("DEF-thigh.L", "thighl"),
        ("J_Bip_L_UpperArm", "lupperarm"),
        ("J_Bip_C_Hips", "hips"),
        ("thigh_stretch.l", "thighl"),
        ("root.x", "root"),
        ("toe3-1.L", "toe31l"),
    ],
)
def test_normalise(name, normalised):
    assert rig_roles.normalise(name) == normalised


@pytest.mark.parametrize(
    "names, expect",
    [
        (["Hips", "LeftUpLeg", "LeftLeg", "LeftFoot", "LeftToeBase"], {"left_ankle": 3, "left_foot": 4}),
        (["pelvis", "thigh_l", "calf_l", "foot_l", "ball_l"], {"left_knee": 2, "left_foot": 4}),
        (["root", "upperleg01.L", "lowerleg01.L", "foot.L", "toe3-1.L"], {"pelvis": 0, "left_hip": 1}),
        (["spine", "spine.004", "spine.006", "thigh.L", "thigh.R"], {"pelvis": 0, "neck": 1, "head": 2}),
    ],
)
def test_match_names(names, expect):
    found = rig_roles.match_names(names)
    assert {r: found[r][0] for r in expect} == expect


def test_smpl_names_map_one_to_one():
    found = rig_roles.match_names(list(skeleton.JOINT_NAMES))
    assert {r: i for r, (i, _) in found.items()} == skeleton.JOINT_INDEX


def test_rest_calibration_of_an_a_pose_arm():
    rest = skeleton.rest_positions().copy()
    elbow, shoulder = skeleton.JOINT_INDEX["left_elbow"], skeleton.JOINT_INDEX["left_shoulder"]
    bone = rest[elbow] - rest[shoulder]
    down = np.array([bone[0] * np.cos(0.7), -np.linalg.norm(bone) * np.sin(0.7), bone[2]])
    rest[elbow] = rest[shoulder] + down
    cal = rig_roles.rest_calibration("left_shoulder", skeleton.REST_OFFSETS, rest)
    got = cal @ skeleton.REST_OFFSETS[elbow]
    assert np.allclose(got / np.linalg.norm(got), down / np.linalg.norm(down), atol=1e-9)
