"""The avatar in Blender (headless `bpy`, the built add-on): a body mesh that carries the person's
texture atlas wears it (one material, the image packed into the .blend, the "VMCLIP_avatar" UV map
with the backend's per-corner coordinates), and the FBX and glTF exports embed it. The atlas comes
from the synthetic front photo of tests/test_texture.py (a shirt with a tie, hair on the crown); a
Workbench render from behind shows the back of the textured body."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from test_addon import ADDON_MODULE, addon_zip, run_bpy  # noqa: F401 - shared fixtures
from test_texture import HAIR, SHIRT, TIE, TROUSERS, _front_photo

# The body from mesh.npz and atlas.png (saved by `_save_body`), on a fitted SMPL-24 armature.
BODY = """
    from importlib import import_module
    ctx = bpy.context
    smpl = import_module({module!r} + ".smpl")
    body = import_module({module!r} + ".body")
    proto = import_module({module!r} + ".vmclip_protocol")
    d = np.load("mesh.npz")
    with open("atlas.png", "rb") as fh:
        png = fh.read()
    mesh = proto.BodyMesh(
        d["vertices"], d["faces"], d["joints"], d["skin_joints"], d["skin_weights"], [d["uv"]],
        [d["visible"]], [d["facing"]], 1.0, float(d["floor"]), png, d["corner_uv"], int(d["skirt"]))
    arm = rig.ensure_armature(ctx, smpl.Skeleton())
    settings.armature = arm
    rig.fit_rest_to_person(ctx, arm, mesh.joints, mesh.floor_offset, mesh.trans_scale)
    obj = body.build_body(ctx, arm, mesh, [os.path.abspath({photo!r})])
"""

# A Workbench render of the body alone with texture colours (the viewport's Solid shading), from a
# camera at `location` turned by the Euler angles `rotation`: {"render": path}, or {"render_error":
# why} where this Blender cannot render.
WORKBENCH = """
    import math
    from mathutils import Euler
    def render_workbench(name, location, rotation):
        scene = ctx.scene
        scene.render.engine = "BLENDER_WORKBENCH"
        scene.display.shading.light = "FLAT"
        scene.display.shading.color_type = "TEXTURE"
        scene.render.resolution_x, scene.render.resolution_y = 320, 480
        scene.render.film_transparent = True
        scene.view_settings.view_transform = "Standard"  # the texture's own colours
        for o in [o for o in scene.objects if o.type == "MESH" and o != obj]:  # the start-up cube
            bpy.data.objects.remove(o)
        cam = bpy.data.objects.new("cam", bpy.data.cameras.new("cam"))
        scene.collection.objects.link(cam)
        cam.location, cam.rotation_euler = location, Euler(rotation, "XYZ")
        scene.camera = cam
        scene.render.filepath = os.path.abspath(name)
        try:
            bpy.ops.render.render(write_still=True)
            return {{"render": os.path.abspath(name)}}
        except RuntimeError as exc:
            return {{"render_error": str(exc)}}
"""

SCRIPT = (
    BODY
    + WORKBENCH
    + """
    me = obj.data
    uv = np.zeros(2 * len(me.loops))
    me.uv_layers[body.AVATAR_UV].data.foreach_get("uv", uv)
    mats = [m.name for m in me.materials]
    tex = [n for n in me.materials[0].node_tree.nodes if n.type == "TEX_IMAGE"][0]
    img = tex.image
    px = np.zeros(img.size[0] * img.size[1] * 4, np.float32)
    img.pixels.foreach_get(px)
    out = {{"mats": mats, "uv_layers": [u.name for u in me.uv_layers], "uv": uv.tolist(),
           "groups": [g.name for g in obj.vertex_groups],
           "skin": [[[g.group, g.weight] for g in v.groups] for v in me.vertices],
           "packed": img.packed_file is not None, "size": list(img.size),
           "pixels": np.round(px.reshape(img.size[1], img.size[0], 4)[::-1, :, :3] * 255)
                     .astype(int)[::37, ::37].tolist()}}
    # A short motion, then the exports.
    T = 10
    poses = np.zeros((T, 24, 3)); trans = np.zeros((T, 3)); trans[:, 1] = 0.95
    rig.apply_motion(ctx, arm, poses, trans, 30.0, list(smpl.JOINT_NAMES), "stand")
    assert bpy.ops.vmclip.export_fbx(filepath=os.path.abspath("out.fbx")) == {{"FINISHED"}}
    assert bpy.ops.vmclip.export_gltf(filepath=os.path.abspath("out.glb")) == {{"FINISHED"}}
    # The back (the body faces -Y in Blender), in the viewport's texture colours.
    ctx.scene.frame_set(1)
    out.update(render_workbench("back.png", (0.0, 4.0, 0.95), (math.pi / 2, 0.0, math.pi)))
    # The FBX read back: its mesh still wears an image of the atlas's size.
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.import_scene.fbx(filepath=os.path.abspath("out.fbx"))
    sizes = [list(i.size) for i in bpy.data.images if i.size[0] > 0]
    out["fbx_images"] = sizes
    emit(out)
"""
)


def _frames(frames: list) -> dict:
    """An analyze reply's binary frames by name (the first of each: the first photo's)."""
    out: dict = {}
    for name, data, *_ in frames:
        out.setdefault(name, data)
    return out


def _save_body(folder, summary: dict, frames: list) -> None:
    """The reply's body as the Blender scripts read it: mesh.npz and atlas.png in `folder`."""
    f = _frames(frames)
    np.savez(
        folder / "mesh.npz",
        vertices=f["body_vertices"],
        faces=f["body_faces"],
        joints=f["body_joints"],
        skin_joints=f["skin_joints"],
        skin_weights=f["skin_weights"],
        uv=f["view_uv"],
        visible=f["view_visible"],
        facing=f["view_facing"].astype(np.float32) / 255,
        floor=summary["floor_offset"],
        corner_uv=f["body_corner_uv"],
        skirt=summary["skirt_vertices"],
    )
    (folder / "atlas.png").write_bytes(f["texture"])


@pytest.fixture(scope="module")
def avatar_run(tmp_path_factory, addon_zip):  # noqa: F811
    pytest.importorskip("moderngl")
    from PIL import Image
    from vmclip.person.analysis import PersonAnalysis, ViewFit
    from vmclip.person.body import load_body_model
    from vmclip.server.body_payload import body_payload

    tmp = tmp_path_factory.mktemp("avatar")
    body = load_body_model("anny")
    shape = body.default_shape()
    v = _front_photo(body, shape)
    view = ViewFit(
        image=v.image,
        mask=v.mask,
        box=(0.0, 0.0, 512.0, 512.0),
        keypoints=np.zeros((33, 4)),
        joints2d=np.zeros((24, 3)),
        camera=v.camera,
        pose=v.pose,
        trans=v.trans,
        background=np.zeros_like(v.image),
        fit_error_px=0.0,
        iou=1.0,
    )
    person = PersonAnalysis(shape=shape, body_kind="anny", views=[view])
    summary, frames, _ = body_payload(person)
    f = _frames(frames)
    _save_body(tmp, summary, frames)
    Image.fromarray(v.image).save(tmp / "photo.png")
    result = run_bpy(SCRIPT.format(module=ADDON_MODULE, photo="photo.png"), tmp, addon_zip, timeout=400)
    result["atlas"] = np.asarray(Image.open(io.BytesIO(f["texture"])).convert("RGB"))
    result["corner_uv"] = np.asarray(f["body_corner_uv"])
    result["skin_joints"] = np.asarray(f["skin_joints"])
    result["skin_weights"] = np.asarray(f["skin_weights"])
    result["dir"] = tmp
    return result


def test_body_wears_the_packed_atlas(avatar_run):
    r = avatar_run
    assert r["mats"] == ["VMCLIP_Armature_body_avatar"]  # one material: the avatar
    assert "VMCLIP_avatar" in r["uv_layers"]
    assert np.allclose(np.array(r["uv"]), r["corner_uv"].ravel(), atol=1e-6)
    assert r["packed"] and r["size"] == [r["atlas"].shape[1], r["atlas"].shape[0]]
    # The image Blender holds is the atlas (rows bottom-up in Blender, compared top-down).
    assert np.abs(np.array(r["pixels"]) - r["atlas"][::37, ::37].astype(int)).max() <= 1


def test_vertex_groups_hold_the_skin_weights_exactly(avatar_run):
    """Every vertex is in the group of each joint it has a positive weight for, with that float32
    weight exactly, listed in the order of its skin slots; in no other group."""
    from vmclip_protocol import JOINT_NAMES

    r = avatar_run
    assert r["groups"] == list(JOINT_NAMES)
    joints, weights = r["skin_joints"], r["skin_weights"]
    assert weights.dtype == np.float32 and (weights > 0).sum(1).min() >= 1
    expect = [
        [[int(j), float(w)] for j, w in zip(js, ws, strict=True) if w > 0.0]
        for js, ws in zip(joints, weights, strict=True)
    ]
    assert len(r["skin"]) == len(expect)
    bad = [v for v, (got, want) in enumerate(zip(r["skin"], expect, strict=True)) if got != want]
    assert not bad, f"{len(bad)} vertices differ, e.g. {bad[0]}: {r['skin'][bad[0]]} != {expect[bad[0]]}"


def test_exports_embed_the_atlas(avatar_run):
    r = avatar_run
    fbx = (r["dir"] / "out.fbx").read_bytes()
    assert b"\x89PNG\r\n\x1a\n" in fbx  # the atlas's PNG file inside the FBX
    assert [r["atlas"].shape[1], r["atlas"].shape[0]] in r["fbx_images"]
    glb = (r["dir"] / "out.glb").read_bytes()
    gltf = json.loads(glb[20 : 20 + int.from_bytes(glb[12:16], "little")])
    assert any(i.get("mimeType") == "image/png" for i in gltf.get("images", []))
    assert gltf.get("textures") and gltf.get("materials")


def test_render_from_behind_shows_the_shirt_not_the_tie(avatar_run):
    r = avatar_run
    if "render" not in r:
        pytest.skip(f"no Workbench render here: {r.get('render_error')}")
    from PIL import Image

    img = np.asarray(Image.open(r["render"]).convert("RGBA")).astype(float)
    body = img[..., 3] > 200
    assert body.sum() > 2000
    rgb = img[..., :3][body]
    shirt = np.linalg.norm(rgb - SHIRT, axis=1) < 60
    tie = np.linalg.norm(rgb - TIE, axis=1) < 60
    trousers = np.linalg.norm(rgb - TROUSERS, axis=1) < 40
    hair = np.linalg.norm(rgb - HAIR, axis=1) < 40
    assert shirt.mean() > 0.25 and trousers.mean() > 0.1 and hair.mean() > 0.01
    assert tie.mean() < 0.002


SKIRT_SCRIPT = (
    BODY
    + WORKBENCH
    + """
    group = obj.vertex_groups[body.SKIRT_GROUP].index
    out = {{"skirt": [v.index for v in obj.data.vertices if any(g.group == group for g in v.groups)]}}
    # Frame 1 stands, frame 2 strides (the left thigh forward): the shell's vertices as deformed.
    poses = np.zeros((2, 24, 3)); trans = np.zeros((2, 3)); trans[:, 1] = 0.95
    poses[1, 1], poses[1, 2] = (-0.45, 0, 0), (0.45, 0, 0)
    rig.apply_motion(ctx, arm, poses, trans, 30.0, list(smpl.JOINT_NAMES), "stride")
    scene = ctx.scene
    for f in (1, 2):
        scene.frame_set(f)
        ev = obj.evaluated_get(ctx.evaluated_depsgraph_get()).to_mesh()
        out[f"frame{{f}}"] = [tuple(v.co) for v in ev.vertices][-int(d["skirt"]):]
        obj.evaluated_get(ctx.evaluated_depsgraph_get()).to_mesh_clear()
    # From the side in mid-stride (the stride is along Blender's Y), in the texture colours.
    out.update(render_workbench("side.png", (4.0, 0.0, 0.8), (math.pi / 2, 0.0, math.pi / 2)))
    emit(out)
"""
)


def test_the_body_wears_a_skirt_that_swings_with_the_thighs(tmp_path, addon_zip):  # noqa: F811
    """A person in a skirt: the add-on's body holds the renderer's shell in the "VMCLIP_skirt" group;
    Blender's Armature modifier carries it with the thighs in a stride as the backend skins it (the
    hem's front moves forward with the leg in front), and seen from the side in mid-stride the skirt
    hangs in one piece between the legs."""
    pytest.importorskip("moderngl")
    from render_scenes import pose
    from test_render_skirt import SKIN, _analysis, _green, _person, _skinned
    from vmclip.person.body import anny_cache_path, load_body_model
    from vmclip.server.body_payload import body_payload

    if not anny_cache_path().exists():
        pytest.skip("Anny body cache not built (bash setup.sh builds it)")
    model = load_body_model("anny", device="cpu")
    analysis = _analysis(model, _person(model))
    summary, frames, _ = body_payload(analysis)
    f = _frames(frames)
    k = summary["skirt_vertices"]
    assert k > 0
    _save_body(tmp_path, summary, frames)
    r = run_bpy(SKIRT_SCRIPT.format(module=ADDON_MODULE, photo="atlas.png"), tmp_path, addon_zip, timeout=400)
    n = len(f["body_vertices"])
    assert r["skirt"] == list(range(n - k, n))
    # Blender's deformation agrees with the backend's skinning (motion frame -> Blender: x, -z, y).
    stand, stride = np.array(r["frame1"]), np.array(r["frame2"])
    rest = np.asarray(f["body_vertices"])[n - k :]
    skin = f["skin_joints"][n - k :], f["skin_weights"][n - k :]
    want = [
        _skinned(model, analysis.shape, rest, *skin, local)
        for local in (pose(), pose(left_hip=(-0.45, 0, 0), right_hip=(0.45, 0, 0)))
    ]
    moved = (stride - stand) @ np.array([[1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]]).T  # Blender -> motion
    assert np.abs(moved - (want[1] - want[0])).max() < 0.005
    assert np.ptp(moved[:, 2]) > 0.1  # the hem swings: front and back apart by more than 10 cm
    if "render" not in r:
        pytest.skip(f"no Workbench render here: {r.get('render_error')}")
    from PIL import Image

    img = np.asarray(Image.open(r["render"]).convert("RGBA"))
    green = _green(img[..., :3]) & (img[..., 3] > 200)
    rows = np.flatnonzero(green.sum(1) > 20)
    assert len(rows) > 60
    for y in rows[len(rows) // 2 :: 4]:  # the skirt's lower half: one piece, no gap between the legs
        xs = np.flatnonzero(green[y])
        across = img[y, xs[0] : xs[-1] + 1]
        assert (across[:, 3] > 200).all(), y  # nothing of the (transparent) background
        skin = np.abs(across[:, :3].astype(float) - SKIN).max(-1) < 40
        assert skin.sum() <= 2, y  # (nor the legs inside)
