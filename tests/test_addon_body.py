"""The fitted body in the viewport (headless `bpy`, the built add-on, a real `vmclip serve` on loopback):
Generate Motion with a photo in the list also analyses the person and puts their body on the rig,
skinned to the bones and textured by projecting the photo.

One Blender run (module fixture) presses Generate Motion once and reports everything the tests check:
the mesh and its vertex groups, modifier, material and UVs, the rig's rest pose against the person's
rest joints, and the evaluated (deformed) mesh at two frames. The deformed mesh is compared with the
backend's own skinning of the same body (`BodyModel.pose_vertices`) for the keyed pose.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation
from test_addon import (  # noqa: F401 - shared fixtures
    ADDON_MODULE,
    C,
    addon_zip,
    motion_server,
    run_bpy,
    vmclip_server,
)
from vmclip_protocol import BodyMesh, MotionPayload

HAND_BONE = "right_hand"


@pytest.fixture(scope="module")
def person_photo(vmclip_server) -> Path:  # noqa: F811
    """The project's own example person (rendered at set-up), else a photo from ../shared."""
    caps = vmclip_server[1].get("capabilities", {})
    if not caps.get("analyze", {}).get("available"):
        pytest.skip(f"the server cannot analyse photos: {caps.get('analyze')}")
    try:
        from vmclip.render.example import example_paths

        photo = Path(example_paths()["photo"])
        if photo.is_file():
            return photo
    except (ImportError, KeyError, OSError):
        pass
    photo = Path(__file__).resolve().parents[2] / "shared" / "data" / "photos" / "iper_p009_set_a_apose.jpg"
    if not photo.is_file():
        pytest.skip("no photo of a person (example person not rendered, ../shared absent)")
    return photo


SCRIPT = """
    from mathutils import Quaternion
    prefs.address, prefs.timeout_s = {address!r}, 60
    settings.prompt, settings.seconds, settings.seed = "a person walks forward and waves", 1.5, 4
    settings.plant_feet = False  # (rotations keyed as sent: planting turns the legs)
    settings.images.add().filepath = {photo!r}
    assert bpy.ops.vmclip.generate_motion() == {{"FINISHED"}}
    ctx = bpy.context
    scene = ctx.scene
    arm = settings.armature
    body = bpy.data.objects.get(arm.name + "_body")
    out = {{"status": state.status, "children": sorted(c.name for c in arm.children)}}
    if body is None:
        emit(out)
        raise SystemExit
    mesh = body.data
    uv = np.zeros(2 * len(mesh.loops))
    mesh.uv_layers[0].data.foreach_get("uv", uv)
    images = []
    for mat in mesh.materials:
        tex = [n for n in mat.node_tree.nodes if n.type == "TEX_IMAGE"]
        images.append([(t.image.name, t.image.packed_file is not None) for t in tex if t.image is not None])
    deps = ctx.evaluated_depsgraph_get()

    def evaluated(frame):
        scene.frame_set(frame)
        ev = body.evaluated_get(ctx.evaluated_depsgraph_get())
        co = np.zeros(3 * len(ev.data.vertices))
        ev.data.vertices.foreach_get("co", co)
        return co.reshape(-1, 3)

    # The vertex that follows the hand bone most (largest weight in its group).
    hand = body.vertex_groups[{hand!r}].index
    best, hand_vertex = 0.0, -1
    for v in mesh.vertices:
        for g in v.groups:
            if g.group == hand and g.weight > best:
                best, hand_vertex = g.weight, v.index
    rest_co = np.array([list(v.co) for v in mesh.vertices])
    keyed = keyed_quaternions(arm)
    sampled, sampled_t, _ = rig.sample_motion(ctx, arm, scene.frame_start, scene.frame_end)
    # The artist's tweak: raise the right arm at the last frame (so the two frames surely differ,
    # whatever the generated motion does there).
    frames = [scene.frame_start, scene.frame_end]
    scene.frame_set(frames[1])
    shoulder = arm.pose.bones["right_shoulder"]
    shoulder.rotation_quaternion = shoulder.rotation_quaternion @ Quaternion((1.0, 0.0, 0.0), 1.0)
    shoulder.keyframe_insert("rotation_quaternion", frame=frames[1])
    pb = arm.pose.bones[{hand!r}]
    evals, hand_pts, posed = [], [], []
    for f in frames:
        evals.append(evaluated(f))
        ev_arm = arm.evaluated_get(ctx.evaluated_depsgraph_get())
        m = np.array(ev_arm.pose.bones[{hand!r}].matrix) @ np.linalg.inv(np.array(pb.bone.matrix_local))
        hand_pts.append((m[:3, :3] @ rest_co[hand_vertex] + m[:3, 3]).tolist())
        posed.append(rig.sample_motion(ctx, arm, f, f)[0][0].tolist())
    out.update({{
        "parent": body.parent.name if body.parent else None,
        "groups": [g.name for g in body.vertex_groups],
        "bones": [b.name for b in arm.data.bones],
        "heads": {{b.name: list(b.head_local) for b in arm.data.bones}},
        "modifiers": [(m.type, m.object.name if m.object else None) for m in body.modifiers],
        "images": images, "uv_min": float(uv.min()), "uv_max": float(uv.max()),
        "n_vertices": len(mesh.vertices), "n_faces": len(mesh.polygons),
        "rest_co": rest_co.tolist(), "frames": frames, "evaluated": [e.tolist() for e in evals],
        "hand_vertex": hand_vertex, "hand_weight": best, "hand_pts": hand_pts, "posed": posed,
        "keyed": keyed, "sampled_t": sampled_t.tolist(), "sampled": sampled.tolist(),
        "color_type": scene.display.shading.color_type,
        "n_actions": len(bpy.data.actions), "action": arm.animation_data.action.name,
    }})
    # A second Generate with the same photo updates the body in place: one body, the first action kept.
    settings.seed = 5
    assert bpy.ops.vmclip.generate_motion() == {{"FINISHED"}}
    out["second"] = {{"bodies": sorted(c.name for c in arm.children),
                     "actions": sorted((a.name, a.use_fake_user) for a in bpy.data.actions)}}
    bpy.ops.wm.save_as_mainfile(filepath=os.path.abspath("body.blend"))  # (kept for looking at)
    emit(out)
"""


@pytest.fixture(scope="module")
def body_run(tmp_path_factory, addon_zip, motion_server, person_photo):  # noqa: F811
    from test_addon import Relay

    relay = Relay(motion_server[0])
    tmp = tmp_path_factory.mktemp("body")
    try:
        result = run_bpy(
            SCRIPT.format(address=relay.address, photo=str(person_photo), hand=HAND_BONE),
            tmp,
            addon_zip,
            timeout=600,
        )
    finally:
        relay.close()
    assert "groups" in result, result["status"]
    analyses = relay.results("analyze")
    assert len(analyses) == 2  # one per Generate (the server answers the second from its cache)
    analysis = analyses[0]
    generated = relay.results("generate_motion")
    first_motion = [
        m for m in generated if m.id == next(s.id for s in relay.sent if s.type == "generate_motion")
    ][0]
    result["mesh"] = BodyMesh.from_message(analysis)
    result["analysis"] = analysis.body
    result["motion"] = MotionPayload.from_message(first_motion)
    result["photo"] = person_photo
    result["blend"] = tmp / "body.blend"
    return result


def keyed_pelvis(r) -> np.ndarray:
    """The pelvis path the add-on keyed (motion frame), from the raw root-location keys."""
    loc = np.array(r["keyed"]["loc"]).T
    b0 = np.array(r["keyed"]["rest"]["pelvis"])
    return (C.T @ (np.array(r["keyed"]["root_head"]) + loc @ b0.T).T).T


def test_body_mesh_is_skinned_and_textured(body_run):
    r = body_run
    mesh: BodyMesh = r["mesh"]
    assert r["parent"] == "VMCLIP_Armature"
    assert r["children"] == ["VMCLIP_Armature_body"]  # the fitted body replaced the mannequin
    assert sorted(r["groups"]) == sorted(r["bones"]) and len(r["groups"]) == 24
    assert r["modifiers"] == [["ARMATURE", "VMCLIP_Armature"]]
    # one material: the person's avatar atlas, packed into the .blend (issue #14)
    assert r["images"] == [[["VMCLIP_Armature_body_avatar", True]]]
    assert mesh.texture is not None and mesh.corner_uv.shape == (len(mesh.faces), 3, 2)
    assert 0.0 <= r["uv_min"] < 0.5 < r["uv_max"] <= 1.0
    assert (r["n_vertices"], r["n_faces"]) == (len(mesh.vertices), len(mesh.faces))
    assert r["color_type"] == "TEXTURE"
    assert "the person's body is on the rig" in r["status"]
    # A second Generate with the same photo updates the body in place; the first action is kept.
    assert r["second"]["bodies"] == ["VMCLIP_Armature_body"]
    # (two takes and the tweak layer)
    assert len(r["second"]["actions"]) == 3 and all(fake for _, fake in r["second"]["actions"])


def test_rig_rest_pose_is_the_persons(body_run):
    r = body_run
    mesh: BodyMesh = r["mesh"]
    from vmclip.motion import JOINT_NAMES

    names = r["bones"]
    heads = np.array([r["heads"][n] for n in names])
    pelvis = np.array(r["heads"]["pelvis"])
    expect = (C @ mesh.joints[[list(JOINT_NAMES).index(n) for n in names]].T).T + pelvis
    assert np.abs(heads - expect).max() < 1e-4
    assert abs(pelvis[2] - mesh.floor_offset) < 1e-4 and abs(pelvis[:2]).max() < 1e-6
    rest = np.array(r["rest_co"])
    assert np.abs(rest - ((C @ mesh.vertices.T).T + pelvis)).max() < 1e-4
    assert abs(rest[:, 2].min()) < 1e-3  # the T-pose stands on the floor


def test_keys_and_bake_sampling_use_the_persons_scale(body_run):
    """Rotations are keyed as sent; the pelvis path is scaled to the person's legs (and lifted to
    their floor); sampling for the bake undoes exactly that, so the renderer gets the motion as sent."""
    r = body_run
    motion: MotionPayload = r["motion"]
    mesh: BodyMesh = r["mesh"]
    sent = Rotation.from_rotvec(motion.poses.reshape(-1, 3).astype(np.float64))
    sampled = Rotation.from_rotvec(np.array(r["sampled"]).reshape(-1, 3))
    assert (sent.inv() * sampled).magnitude().max() < 1e-4
    assert np.abs(np.array(r["sampled_t"]) - motion.trans).max() < 1e-4
    pelvis = keyed_pelvis(r)
    s = mesh.trans_scale
    assert 0.8 < s < 1.25 and s != 1.0
    assert np.abs((pelvis - pelvis[0]) - s * (motion.trans - motion.trans[0])).max() < 1e-4


def test_posing_the_rig_moves_the_body_like_the_backend_skins_it(body_run):
    r = body_run
    a, b = (np.array(e) for e in r["evaluated"])
    hand = r["hand_vertex"]
    assert np.linalg.norm(a[hand] - b[hand]) > 0.2, "the hand did not move between the two frames"
    # The vertex bound most to the hand bone goes where that bone takes it.
    assert r["hand_weight"] > 0.9
    for evaluated, point in zip(r["evaluated"], r["hand_pts"], strict=True):
        assert np.linalg.norm(np.array(evaluated)[hand] - point) < 0.01
    # The whole deformed mesh is the backend's own skinning of the body in the rig's pose.
    from vmclip.person.body import load_body_model

    body = load_body_model(r["analysis"]["body_kind"], device="cpu")
    pelvis = keyed_pelvis(r)
    for frame, evaluated, posed in zip(r["frames"], r["evaluated"], r["posed"], strict=True):
        local = Rotation.from_rotvec(np.array(posed)).as_matrix()
        ref = body.pose_vertices(r["analysis"]["shape"], local[None], pelvis[frame - r["frames"][0]][None])[0]
        got = (C.T @ np.array(evaluated).T).T
        err = np.linalg.norm(got - ref, axis=1)  # (the add-on keeps 4 of up to 6 skin weights)
        print(
            f"frame {frame}: Blender vs backend skinning, median {np.median(err) * 1000:.2f} mm, "
            f"99.5% {np.percentile(err, 99.5) * 1000:.1f} mm, max {err.max() * 1000:.1f} mm"
        )
        assert np.median(err) < 0.003 and np.percentile(err, 99.5) < 0.02


def test_photo_choice_and_filling_of_unseen_vertices(tmp_path, addon_zip):  # noqa: F811
    """Two photos: a triangle takes the first photo that sees it whole (another only when it sees it
    much more squarely); vertices a photo does not see take the UV of the nearest squarely seen vertex
    of the same body part (else of any part), never their own projection."""
    result = run_bpy(
        f"""
        body = import_module({ADDON_MODULE!r} + ".body")
        faces = np.array([[0, 1, 2], [3, 4, 5], [0, 2, 6]])
        vis = [np.array([1, 1, 1, 0, 1, 1, 1], bool), np.array([1, 1, 1, 1, 1, 1, 0], bool)]
        squarely = [np.array([.5, .5, .5, 0, .9, .9, .9]), np.array([.9, .9, .9, .9, .9, .9, 0])]
        chosen = body.face_views(faces, vis, squarely).tolist()
        # part 0: 10 points on x in 0..0.9; part 1: 10 points on x in 3..3.9, one slanted at x = 1.25,
        # and the unseen vertex at x = 1.2 (nearer to part 0 and to the slanted one)
        x = np.concatenate([np.arange(10) * 0.1, 3 + np.arange(10) * 0.1, [1.25, 1.2]])
        pts = np.stack([x, np.zeros_like(x), np.zeros_like(x)], 1)
        part = np.array([0] * 10 + [1] * 10 + [1, 1])
        seen = np.array([True] * 21 + [False])
        facing = np.array([0.9] * 20 + [0.2, 0.0])
        uv = np.stack([x / 4, x / 8], 1).astype(np.float32)
        by_part = body.fill_unseen(pts, uv, seen, facing, part)
        anywhere = body.fill_unseen(pts, uv, seen, facing)
        emit({{"chosen": chosen, "by_part": by_part.tolist(), "anywhere": anywhere.tolist(),
              "uv": uv.tolist()}})
    """,
        tmp_path,
        addon_zip,
    )
    # face 0: both photos see it whole, the second far more squarely (0.9 vs 0.5, beyond the first's
    # bonus); face 1: only the second sees it whole; face 2: only the first does
    assert result["chosen"] == [1, 1, 0]
    uv = np.array(result["uv"])
    by_part, anywhere = np.array(result["by_part"]), np.array(result["anywhere"])
    assert np.array_equal(by_part[:21], uv[:21]) and np.array_equal(anywhere[:21], uv[:21])
    assert np.array_equal(by_part[21], uv[10])  # its own part's nearest squarely seen vertex (x = 3)
    assert np.array_equal(anywhere[21], uv[9])  # without parts: the nearest squarely seen (x = 0.9)
