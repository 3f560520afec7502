"""The fitted body in the viewport: the person's mesh from the backend's analysis, skinned to the SMPL-24
armature and textured by projecting the source photo(s), so the artist sees the person move.

The backend sends (vmclip_protocol.BodyMesh) the rest T-pose mesh in the motion frame (Y up, pelvis at
the origin), the person's rest joints, 4 skin weights per vertex, and per photo the texture coordinate
of every vertex with a flag saying whether that photo sees it. Here:

- every triangle takes its colour from the first photo that sees all three corners (else the photo
  that sees most of them): one material per photo, one UV map ("VMCLIP_photo") for all;
- corners a photo does not see (the back, the far side of a limb, anything off the person's mask) take
  the texture coordinate of the nearest vertex of the same body part that the photo sees squarely, so
  they get the person's colours (never the colour of the photo's corner or of the room);
- one vertex group per SMPL-24 bone, an Armature modifier on the rig.

A backend whose body has a UV layout also sends the person's avatar: one texture atlas for the whole
body (the back, the far side of the limbs and the back of the head completed from what the photos
saw) and each triangle corner's coordinates in it. The body then wears that atlas instead: one
material, one UV map ("VMCLIP_avatar"), the image packed into the .blend (and so embedded by the FBX
and glTF exports). A skirt or dress the renderer draws as a shell around the hips and legs comes as
the mesh's last vertices, skinned to the pelvis and the thighs, in the vertex group "VMCLIP_skirt".
"""

from __future__ import annotations

import os

import bpy
import numpy as np
from mathutils import kdtree

from . import smpl

UV_NAME = "VMCLIP_photo"
AVATAR_UV = "VMCLIP_avatar"
# Where a vertex is unseen, its colour comes from the nearest vertex seen at least this squarely.
SQUARE_FACING = 0.55
# A triangle seen fully by several photos takes the first unless another sees it this much more
# squarely (cosine): the first photo is usually the one the artist cares about.
FIRST_PHOTO_BONUS = 0.2
# A body part needs this many squarely seen vertices to colour its own unseen ones.
MIN_PART_SOURCES = 8
# The vertex group holding a skirt's shell (the mesh's last `skirt_vertices`), to select, hide or mask it.
SKIRT_GROUP = "VMCLIP_skirt"


def body_name(arm_obj) -> str:
    return f"{arm_obj.name}_body"


def fitted_body_of(arm_obj):
    """The fitted body built for `arm_obj` (None when the backend never sent one)."""
    for child in arm_obj.children:
        if child.type == "MESH" and child.get("vmclip_fitted_body"):
            return child
    return None


def face_views(faces: np.ndarray, visible: list[np.ndarray], facing: list[np.ndarray]) -> np.ndarray:
    """Per triangle, the photo it is textured from: among the photos that see all three corners the
    one that sees them most squarely, the first photo winning unless another is clearly better; where
    none sees all three, the one that sees most of them (the first of equals)."""
    if not visible:
        return np.zeros(len(faces), dtype=np.int64)
    counts = np.stack([np.asarray(v, bool)[faces].sum(1) for v in visible])  # (views, F)
    squareness = np.stack([np.asarray(f, np.float32)[faces].mean(1) for f in facing])
    full = counts == 3
    score = np.where(full, squareness, -1.0)
    score[0][full[0]] += FIRST_PHOTO_BONUS
    return np.where(full.any(0), score.argmax(0), counts.argmax(0))


def _nearest(points: np.ndarray, sources: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """For each query vertex, the nearest source vertex (indices into `points`)."""
    tree = kdtree.KDTree(len(sources))
    for i in sources:
        tree.insert(points[i], int(i))
    tree.balance()
    return np.fromiter((tree.find(points[i])[1] for i in queries), dtype=np.int64, count=len(queries))


def fill_unseen(
    points: np.ndarray,
    uv: np.ndarray,
    visible: np.ndarray,
    facing: np.ndarray,
    part: np.ndarray | None = None,
) -> np.ndarray:
    """Texture coordinates where every vertex the photo does not see takes those of the nearest vertex
    (on the rest mesh) that the photo sees squarely, on the same body part when `part` (the bone that
    moves each vertex most) is given and that part is seen at all: the back of the chest takes the
    shirt, not the neck's skin. Vertices seen at a slant are left out as sources, since they are where
    shadows and the outline's mixed pixels are (they would streak the back)."""
    visible = np.asarray(visible, bool)
    out = np.array(uv, dtype=np.float32)
    square = visible & (np.asarray(facing) >= SQUARE_FACING)
    source = square if square.sum() >= 0.25 * visible.sum() else visible
    unseen = np.nonzero(~visible)[0]
    if not source.any() or len(unseen) == 0:
        return out
    part = np.zeros(len(points), dtype=np.int64) if part is None else np.asarray(part, dtype=np.int64)
    rest = []
    for p in np.unique(part[unseen]):
        queries = unseen[part[unseen] == p]
        own = np.nonzero(source & (part == p))[0]
        if len(own) >= MIN_PART_SOURCES:
            out[queries] = out[_nearest(points, own, queries)]
        else:
            rest.append(queries)
    if rest:
        queries = np.concatenate(rest)
        out[queries] = out[_nearest(points, np.nonzero(source)[0], queries)]
    return out


def _material(name: str, image, uv_name: str) -> bpy.types.Material:
    """A node material showing `image` through the UV map `uv_name` (rebuilt if it exists)."""
    mat = bpy.data.materials.get(name) or bpy.data.materials.new(name)
    mat.use_nodes = True
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    nodes.clear()
    out = nodes.new("ShaderNodeOutputMaterial")
    out.location = (300, 0)
    bsdf = nodes.new("ShaderNodeBsdfPrincipled")
    bsdf.location = (0, 0)
    if "Roughness" in bsdf.inputs:
        bsdf.inputs["Roughness"].default_value = 0.9  # cloth and skin: no glossy highlights
    tex = nodes.new("ShaderNodeTexImage")
    tex.location = (-320, 0)
    tex.image = image
    tex.extension = "EXTEND"
    uvmap = nodes.new("ShaderNodeUVMap")
    uvmap.location = (-520, -40)
    uvmap.uv_map = uv_name
    links.new(uvmap.outputs["UV"], tex.inputs["Vector"])
    links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
    links.new(bsdf.outputs[0], out.inputs["Surface"])
    nodes.active = tex  # the Solid view's "Texture" colour shows the active image node
    mat.diffuse_color = (0.8, 0.62, 0.5, 1.0)
    return mat


def avatar_image(name: str, png: bytes):
    """The avatar's atlas (PNG file bytes) as an image packed into the .blend (replacing an older
    one of that name), so that saving and exporting carry it without a file beside them."""
    import tempfile

    old = bpy.data.images.get(name)
    if old is not None:
        bpy.data.images.remove(old)
    fd, path = tempfile.mkstemp(suffix=".png")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(png)
        image = bpy.data.images.load(path)
        image.name = name
        image.pack()
    finally:
        os.remove(path)
    image.filepath_raw = f"//{name}.png"  # (where an unpack would write it)
    return image


def _texture_body(data, name: str, mesh, image_paths: list[str], verts: np.ndarray) -> None:
    """The body's UVs and materials: the avatar's atlas when the backend sent one, else the photos."""
    faces = np.asarray(mesh.faces, np.int64)
    if getattr(mesh, "texture", None) is not None and getattr(mesh, "corner_uv", None) is not None:
        # Triangles from from_pydata: polygon f's loops are 3f..3f+2, its corners in order.
        uv_layer = data.uv_layers.new(name=AVATAR_UV)
        uv_layer.data.foreach_set("uv", np.asarray(mesh.corner_uv, np.float32).ravel())
        image = avatar_image(f"{name}_avatar", mesh.texture)
        data.materials.append(_material(f"{name}_avatar", image, AVATAR_UV))
        return
    n_views = min(len(mesh.uv), len(image_paths))
    part = np.asarray(mesh.skin_joints)[:, 0]  # the bone that moves each vertex most
    filled = [fill_unseen(verts, mesh.uv[k], mesh.visible[k], mesh.facing[k], part) for k in range(n_views)]
    chosen = face_views(faces, mesh.visible[:n_views], mesh.facing[:n_views])
    loop_vertex = np.zeros(len(data.loops), dtype=np.int64)
    data.loops.foreach_get("vertex_index", loop_vertex)
    loop_face = np.repeat(np.arange(len(data.polygons)), 3)
    stacked = np.stack(filled)  # (views, V, 2)
    uv_layer = data.uv_layers.new(name=UV_NAME)
    uv_layer.data.foreach_set("uv", stacked[chosen[loop_face], loop_vertex].astype(np.float32).ravel())
    data.polygons.foreach_set("material_index", chosen.astype(np.int32))
    for k in range(n_views):
        image = load_photo(image_paths[k])
        data.materials.append(_material(f"{name}_photo{k + 1}", image, UV_NAME))


def load_photo(path: str):
    return bpy.data.images.load(path, check_existing=True)


def _set_skin(obj, skin_joints: np.ndarray, skin_weights: np.ndarray) -> None:
    """One vertex group per SMPL-24 joint holding each vertex's (positive) skin weights. The vertices
    of a slot that share a joint and a weight go in one VertexGroup.add call; the slots go in order,
    so every vertex lists its groups in slot order, as one call per vertex and slot would."""
    for g in list(obj.vertex_groups):
        obj.vertex_groups.remove(g)
    groups = [obj.vertex_groups.new(name=name) for name in smpl.JOINT_NAMES]
    for k in range(skin_joints.shape[1]):
        joint, weight = skin_joints[:, k], skin_weights[:, k]
        v = np.flatnonzero(weight > 0.0)
        if v.size == 0:
            continue
        v = v[np.lexsort((v, weight[v], joint[v]))]  # (runs of one joint and one weight)
        j, w = joint[v], weight[v]
        starts = np.flatnonzero(np.r_[True, (j[1:] != j[:-1]) | (w[1:] != w[:-1])])
        verts, j, w = v.tolist(), j.tolist(), w.tolist()
        for a, b in zip(starts.tolist(), [*starts[1:].tolist(), len(verts)], strict=True):
            groups[j[a]].add(verts[a:b], w[a], "ADD")


def build_body(context, arm_obj, mesh, image_paths: list[str]) -> bpy.types.Object:
    """Create or update "<armature>_body": the fitted mesh in the armature's rest pose (which must
    already match mesh.joints, see rig.fit_rest_to_person), skinned and textured by the photos."""
    # Armature space: Blender axes, the pelvis where the rig's pelvis bone has its head.
    pelvis = np.array(arm_obj.data.bones[smpl.JOINT_NAMES[0]].head_local)
    verts = (smpl.C @ np.asarray(mesh.vertices, np.float64).T).T + pelvis
    faces = np.asarray(mesh.faces, np.int64)
    n_views = min(len(mesh.uv), len(image_paths))
    if n_views == 0:
        raise ValueError("the analysis has no photo to texture the body with")

    name = body_name(arm_obj)
    data = bpy.data.meshes.new(name)
    data.from_pydata(verts.tolist(), [], faces.tolist())
    data.update()
    if "use_smooth" in bpy.types.MeshPolygon.bl_rna.properties:
        data.polygons.foreach_set("use_smooth", np.ones(len(data.polygons), dtype=bool))
    elif hasattr(data, "shade_smooth"):
        data.shade_smooth()
    _texture_body(data, name, mesh, image_paths, verts)

    obj = fitted_body_of(arm_obj)
    created = obj is None
    if created:
        obj = bpy.data.objects.new(name, data)
        context.scene.collection.objects.link(obj)
        obj.parent = arm_obj
        obj["vmclip_fitted_body"] = True
    else:
        old = obj.data
        obj.data = data
        if old.users == 0:
            bpy.data.meshes.remove(old)
    _set_skin(obj, np.asarray(mesh.skin_joints), np.asarray(mesh.skin_weights))
    skirt = int(getattr(mesh, "skirt_vertices", 0))
    if skirt:
        shell = list(range(len(verts) - skirt, len(verts)))
        obj.vertex_groups.new(name=SKIRT_GROUP).add(shell, 1.0, "REPLACE")
    mod = next((m for m in obj.modifiers if m.type == "ARMATURE"), None)
    if mod is None:
        mod = obj.modifiers.new("Armature", "ARMATURE")
    mod.object = arm_obj
    obj["vmclip_photos"] = "; ".join(os.path.basename(p) for p in image_paths[:n_views])
    for proxy in [c for c in arm_obj.children if c.get("vmclip_body") and not c.get("vmclip_fitted_body")]:
        # The mannequin was built for the default skeleton; the fitted body replaces it.
        proxy_mesh = proxy.data
        bpy.data.objects.remove(proxy)
        if proxy_mesh.users == 0:
            bpy.data.meshes.remove(proxy_mesh)
    if created:
        show_textures(context)
    return obj


def show_textures(context) -> None:
    """Solid shading with texture colours (3D views of the current screen, and Workbench renders), so
    the photo shows on the body without switching to Material Preview."""
    context.scene.display.shading.color_type = "TEXTURE"
    screen = context.screen
    for area in screen.areas if screen is not None else ():
        if area.type == "VIEW_3D":
            for space in area.spaces:
                if space.type == "VIEW_3D":
                    space.shading.color_type = "TEXTURE"
