"""The fitted body as the analyze reply carries it, so a client can show the person moving.

From a `PersonAnalysis` this builds: the rest (T-pose) vertices of the person's shape with its clothing
offsets, the faces, the rest joints, compact skin weights (the 4 strongest joints per vertex), and for
every photo the texture coordinates of each vertex, found by posing the body as it was fitted in that
photo and projecting it through the photo's camera, with a flag saying whether the photo really sees
that vertex (it faces the camera, no other part of the body is in front of it, and it lies on the
person's mask).

Everything is in the motion format's frame (Y up, metres, the body faces +Z, pelvis at the origin);
texture coordinates follow Blender/OpenGL (u to the right, v up, 0..1 across the whole photo).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from vmclip_protocol import BodyMesh

from vmclip.geometry import (
    DEPTH_TOLERANCE,
    NEAR,
    SEEN_FACING,
    Camera,
    facing,
    leg_length,
    motion_leg_length,
    project,
    vertex_normals,
    zbuffer,
)

if TYPE_CHECKING:
    from vmclip.person.analysis import PersonAnalysis

# Skin weights kept per vertex; the rest (at most a few percent) is folded into these.
SKIN_INFLUENCES = 4
# A vertex counts as seen when it faces the camera (`vmclip.geometry.SEEN_FACING`), no other part of
# the body lies in front of it (`DEPTH_TOLERANCE`), and it lies this far inside the person's mask
# (fraction of the photo's longer side): pixels on the outline are part background.
MASK_MARGIN = 0.006
# A skirt's unrolled texture is as wide as the atlas it joins, or this wide without one.
SHELL_TEXELS = 1024
# The z-buffer is drawn at most this many pixels on its longer side (cost grows with the area).
ZBUFFER_MAX_SIDE = 1024


def skin_top(weights: np.ndarray, k: int = SKIN_INFLUENCES) -> tuple[np.ndarray, np.ndarray]:
    """(V, J) skin weights -> joint indices (V, k) uint8 and their weights (V, k) float32 summing to 1."""
    weights = np.asarray(weights, dtype=np.float64)
    idx = np.argsort(-weights, axis=1)[:, :k]
    w = np.take_along_axis(weights, idx, axis=1)
    w = np.clip(w, 0.0, None)
    total = w.sum(axis=1, keepdims=True)
    w = np.where(total > 1e-12, w / np.where(total > 1e-12, total, 1.0), np.eye(k)[0])
    return idx.astype(np.uint8), w.astype(np.float32)


def project_view(
    vertices: np.ndarray,
    faces: np.ndarray,
    K: np.ndarray,
    R: np.ndarray,
    t: np.ndarray,
    width: int,
    height: int,
    mask: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Texture coordinates (V, 2) float32 in 0..1 (v up), visibility (V,) bool and facing (V,) float32
    (cosine between the normal and the direction to the camera, 0 where unseen) of posed `vertices`
    (world frame) seen by the OpenCV camera (K, R, t) in a width x height photo."""
    v = np.asarray(vertices, dtype=np.float64)
    camera = Camera(*(np.asarray(a, dtype=np.float64) for a in (K, R, t)))
    px, depth = project(v, camera.K, camera.R, camera.t)
    uv = np.stack([(px[:, 0] + 0.5) / width, 1.0 - (px[:, 1] + 0.5) / height], axis=1)
    cos = facing(v, vertex_normals(v, faces), camera)
    ix, iy = np.round(px[:, 0]).astype(np.int64), np.round(px[:, 1]).astype(np.int64)
    inside = (depth > NEAR) & (ix >= 0) & (ix < width) & (iy >= 0) & (iy < height)
    visible = inside & (cos > SEEN_FACING)

    # Occlusion: a z-buffer of the posed body, at a bounded resolution.
    s = min(1.0, ZBUFFER_MAX_SIDE / max(width, height))
    zw, zh = max(1, int(round(width * s))), max(1, int(round(height * s)))
    zpx = (px + 0.5) * np.array([zw / width, zh / height]) - 0.5
    buf = zbuffer(zpx, depth, np.asarray(faces, dtype=np.int64), zw, zh)
    # The nearest surface around the vertex (3x3 pixels), so a vertex just beside an arm that passes
    # in front of it is not given the arm's colour.
    padded = np.pad(buf, 1, constant_values=np.inf)
    near = np.min([padded[dy : dy + zh, dx : dx + zw] for dy in range(3) for dx in range(3)], axis=0)
    zx = np.clip(np.round(zpx[:, 0]).astype(np.int64), 0, zw - 1)
    zy = np.clip(np.round(zpx[:, 1]).astype(np.int64), 0, zh - 1)
    # On a surface seen at a slant the neighbouring pixels are nearer by up to a pixel's footprint
    # times the slope; allow that on top of the fixed slack.
    footprint = np.abs(depth) / (float(K[0, 0]) * s)  # metres per z-buffer pixel at the vertex
    slope = np.sqrt(np.clip(1.0 - cos**2, 0.0, 1.0)) / np.maximum(cos, SEEN_FACING)
    visible &= depth <= near[zy, zx] + DEPTH_TOLERANCE + 1.5 * footprint * slope
    if mask is not None:  # the fit is not exact: where the body pokes out of the person, it sees background
        from scipy.ndimage import binary_erosion

        m = np.asarray(mask) >= 0.5
        margin = int(round(MASK_MARGIN * max(width, height)))
        if margin > 0:
            m = binary_erosion(m, iterations=margin)
        visible[inside] &= m[iy[inside], ix[inside]]
    seen_facing = np.where(visible, np.clip(cos, 0.0, 1.0), 0.0).astype(np.float32)
    return np.clip(uv, 0.0, 1.0).astype(np.float32), visible, seen_facing


def _avatar(analysis: PersonAnalysis, body: Any) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The avatar's atlas (S, S, 3) uint8 and its per-corner UVs; (None, None) for a body without UVs."""
    from vmclip.person.uvmap import body_uv

    layout = body_uv(body)
    atlas = analysis.avatar_texture() if layout is not None else None
    if atlas is None:
        return None, None
    uv_coords, uv_faces = layout
    return np.asarray(atlas, dtype=np.uint8), np.asarray(uv_coords, dtype=np.float32)[np.asarray(uv_faces)]


def _png(image: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@dataclass
class SkirtShell:
    """A skirt's shell as part of the body mesh: `vertices` (N, 3) in the rest pose (motion frame),
    `faces` (F, 3) into them, `skin_joints`/`skin_weights` (N, 4), the first photo's `uv` (N, 2) /
    `visible` (N,) / `facing` (N,) as `project_view` gives them, and its unrolled texture `texture`
    (H, W, 3) with `corner_uv` (F, 3, 2) into it (0..1, v up)."""

    vertices: np.ndarray
    faces: np.ndarray
    skin_joints: np.ndarray
    skin_weights: np.ndarray
    uv: np.ndarray
    visible: np.ndarray
    facing: np.ndarray
    texture: np.ndarray
    corner_uv: np.ndarray


def skirt_shell(analysis: PersonAnalysis, body: Any, rest: np.ndarray, width: int) -> SkirtShell | None:
    """The shell the renderer draws for a skirt or dress in the first photo (`vmclip.render.skirt`),
    moved to the rest pose `rest` (V, 3) and skinned to the joints it follows (the pelvis and both
    thighs, with the renderer's weights), its texture `width` texels round; None without a skirt."""
    from vmclip.render.pipeline import DEFAULT_SIZE, output_size, source_photo
    from vmclip.render.regions import TRUNK
    from vmclip.render.skirt import FOLLOWS

    view = analysis.views[0]
    h, w = np.asarray(view.image).shape[:2]
    size = output_size(w, h, DEFAULT_SIZE)[:2]  # where the renderer looks for it
    src = source_photo(view, body, analysis.shape, size).source
    skirt = src.skirt
    if skirt is None:
        return None
    # As the renderer shows it: the photo, with a limb hanging over the cloth painted out; its back
    # half the garment without the front's details.
    front = src.bled
    if src.clean is not None:
        painted = (src.clean_region >= 0) & (src.clean_region != TRUNK)
        front = np.where(painted[..., None], src.clean, src.bled)
    texture, corner_uv = skirt.unwrap(front, src.back, width)
    n = len(skirt.vertices)
    skin_joints = np.zeros((n, SKIN_INFLUENCES), np.uint8)
    skin_weights = np.zeros((n, SKIN_INFLUENCES), np.float32)
    skin_joints[:, : len(FOLLOWS)] = FOLLOWS
    skin_weights[:, : len(FOLLOWS)] = skirt.weights
    uv = (skirt.src_uv + 0.5) / np.array(size, np.float32)
    uv[:, 1] = 1.0 - uv[:, 1]
    cos = skirt.facing(skirt.vertices, src.camera)
    visible = (skirt.back < 0.5) & (cos > SEEN_FACING)
    return SkirtShell(
        vertices=skirt.posed(rest).astype(np.float32),
        faces=skirt.faces.astype(np.int32),
        skin_joints=skin_joints,
        skin_weights=skin_weights,
        uv=np.clip(uv, 0.0, 1.0).astype(np.float32),
        visible=visible,
        facing=np.where(visible, np.clip(cos, 0.0, 1.0), 0.0).astype(np.float32),
        texture=texture,
        corner_uv=corner_uv,
    )


def _below(
    atlas: np.ndarray, corner_uv: np.ndarray, strip: np.ndarray, strip_uv: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """One texture: `strip` (H, W, 3) under `atlas` (S, W, 3), and both sets of corner UVs (v up)
    moved into it."""
    a, b = len(atlas), len(strip)
    total = a + b
    moved = corner_uv.copy()
    moved[..., 1] = 1.0 - (1.0 - corner_uv[..., 1]) * a / total
    placed = strip_uv.copy()
    placed[..., 1] = strip_uv[..., 1] * b / total
    return np.concatenate([atlas, strip], 0), np.concatenate([moved, placed], 0)


def body_payload(
    analysis: PersonAnalysis, device: str | None = None
) -> tuple[dict[str, Any], list, list[dict]]:
    """(mesh summary for the reply's JSON, binary frames, per-view JSON additions) for `analysis`."""
    from vmclip.person.body import load_body_model

    body = load_body_model(analysis.body_kind, device=device)
    shape = analysis.shape
    rest = np.asarray(body.rest_vertices(shape), dtype=np.float32)
    joints = np.asarray(body.rest_joints(shape), dtype=np.float32)
    faces = np.asarray(body.faces, dtype=np.int32)
    skin_idx, skin_w = skin_top(body.skin_weights)
    per_view = []
    uvs, flags, facings = [], [], []
    for view in analysis.views:
        posed = np.asarray(
            body.pose_vertices(shape, np.asarray(view.pose)[None], np.asarray(view.trans)[None])[0]
        )
        h, w = view.image.shape[:2]
        cam = view.camera
        uv, visible, seen = project_view(posed, faces, cam.K, cam.R, cam.t, w, h, view.mask)
        uvs.append(uv)
        flags.append(visible)
        facings.append(seen)
        per_view.append({"visible_fraction": round(float(visible.mean()), 4)})
    atlas, corner_uv = _avatar(analysis, body)
    shell = skirt_shell(analysis, body, rest, atlas.shape[1] if atlas is not None else SHELL_TEXELS)
    floor_offset = float(-rest[:, 1].min())
    if shell is not None:  # the skirt's shell joins the body, after its vertices
        v0 = len(rest)
        rest = np.concatenate([rest, shell.vertices])
        faces = np.concatenate([faces, shell.faces + v0])
        skin_idx = np.concatenate([skin_idx, shell.skin_joints])
        skin_w = np.concatenate([skin_w, shell.skin_weights])
        # (found and textured by the first photo only: the others do not see it)
        unseen = np.zeros(len(shell.vertices), np.float32)
        uvs = [
            np.concatenate([u, shell.uv if i == 0 else np.zeros_like(shell.uv)]) for i, u in enumerate(uvs)
        ]
        flags = [np.concatenate([f, shell.visible if i == 0 else unseen > 0]) for i, f in enumerate(flags)]
        facings = [np.concatenate([f, shell.facing if i == 0 else unseen]) for i, f in enumerate(facings)]
        if atlas is not None:
            atlas, corner_uv = _below(atlas, corner_uv, shell.texture, shell.corner_uv)
    mesh = BodyMesh(
        rest,
        faces,
        joints,
        skin_idx,
        skin_w,
        uvs,
        flags,
        facings,
        trans_scale=round(leg_length(joints.astype(np.float64)) / motion_leg_length(), 6),
        floor_offset=round(floor_offset, 6),
        texture=None if atlas is None else _png(atlas),
        corner_uv=corner_uv,
        skirt_vertices=0 if shell is None else len(shell.vertices),
    )
    summary, frames = mesh.to_wire()
    return summary, frames, per_view
