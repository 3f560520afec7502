"""The person as one texture atlas over the body's UV layout (`build_texture`).

Every photo is projected into the atlas: each texel is a point of the fitted (dressed) body, seen in
a photo where the depth buffer shows it, weighted by how squarely the photo saw it (the facing:
cosine between its normal and the direction to the camera) and by how far inside the person's mask
it falls. What no photo saw squarely is completed in UV space:

1. from the mirror-image point (the opposite limb, the other side of the head) where a photo saw
   that; not on the trunk's front (a print on one side of the chest is not on the other);
2. off the head, from the body's front at the same place (the T-posed body seen along -z): the same
   garment's layout (its hems, where trousers begin), median-filtered, with the front's faint fine
   grain on top. On the trunk's front the garment's colour is the most common colour of the rows
   around, outside the centre strip (or the flanks' colour, where they show another garment: an open
   jacket over a shirt); the strip (a tie, buttons) and whatever differs clearly from
   that colour (a print) take it, so that no front-only feature reaches the back;
3. the back of the head, down to the nape, from the crown (hair, or a bald scalp), never the face.
   (The head's other unseen texels take the colour its seen sides have at their height.)
4. a hand no photo showed (in a pocket, behind a held phone: `vmclip.render.hands`) is the skin
   tone of the face.

Held in `PersonAnalysis.texture` and saved beside the analysis as `<stem>.texture.png`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import cv2
import numpy as np

from vmclip.geometry import DEPTH_TOLERANCE, SEEN_FACING, Camera, project, vertex_normals, zbuffer
from vmclip.motion.skeleton import JOINT_NAMES
from vmclip.person.hair import synthesise_hair
from vmclip.person.uvmap import TexelGrid, body_uv, texel_grid, uv_pixels

TEXTURE_SIZE = 1024
# On the trunk's front, within this distance (metres) of its centre line (a tie, buttons), and
# wherever a colour differs from its rows' garment colour by more than FRONT_OUTLIER grey levels (a
# print, a pocket, the shade beside a hanging arm or under a fold: at 40 levels a hoodie's pocket
# shading reached its back as a grey blotch), the back takes the garment's colour instead.
FRONT_STRIP_M = 0.06
FRONT_OUTLIER = 12.0
# The sides a photo saw are shaded darker than the garment: their colour is taken at this
# percentile (per channel) rather than the median.
SIDE_PERCENTILE = 60.0
# Views are blended by facing to this power: the most squarely seen photo dominates, without seams.
VIEW_POWER = 6.0
# Bins (metres) along the body's axis for the sides' colour, and how many bins either side a median
# spans (a garment's colour changes at a hem, not within a few centimetres).
AXIS_BIN_M = 0.01
AXIS_SPAN_BINS = 3
# Rows (cells) either side pooled for a row's garment colour (10 cm: a print is a minority in that
# window, and the most common colour still changes right at a hem).
STRIP_ROW_SPAN = 25
# The trunk's flanks (seen from the front): this share of each row's width from either side.
FLANK_SHARE = 0.12
# ... unless they are the front's colour in shade: a brightness ratio within SHADE_RATIO-1/SHADE_RATIO
# and chromaticity (each channel's share of the sum) within SHADE_CHROMA.
SHADE_RATIO = 0.5
SHADE_CHROMA = 0.04
# The neck proper, for its axis and width: its texels up to this far (metres) above its lowest
# point (above, the jaw reaches far forward).
NECK_STEM_M = 0.06
# The neck's sides: its texels at least this far round from its front (degrees about its axis), and
# how many AXIS_BIN_M bins either side of a height pool their colour.
NECK_SIDE_DEG = 40.0
NECK_SPAN_BINS = 1
# The crown's colour: the highest this share of the head's seen texels.
CROWN_SHARE = 0.12
# The front as seen along -z on a grid of this cell size (metres), median-filtered over this width:
# what stands in for the back (the front's hems and garment boundaries, without its small details).
FRONT_GRID_M = 0.004
BACK_MEDIAN_M = 0.03
# The front stands in for the back only where a photo saw it at least this squarely.
FRONT_SOURCE_FACING = 0.7
# The garment's grain: the front's detail finer than a 1-cell blur, at most GRAIN_MAX grey levels,
# left out wherever it exceeds GRAIN_EDGE (the edge of a print, a button, a seam).
GRAIN_MAX = 10.0
GRAIN_EDGE = 24.0
# Body regions (as the renderer's): trunk, head, left arm, right arm, left leg, right leg.
_REGION = {"pelvis": 0, "spine1": 0, "spine2": 0, "spine3": 0, "left_collar": 0, "right_collar": 0}
_REGION.update({"neck": 1, "head": 1})
for _s, _r in (("left", 2), ("right", 3)):
    _REGION.update({f"{_s}_{j}": _r for j in ("shoulder", "elbow", "wrist", "hand")})
    _REGION.update({f"{_s}_{j}": _r + 2 for j in ("hip", "knee", "ankle", "foot")})
JOINT_REGION = np.array([_REGION[n] for n in JOINT_NAMES], dtype=np.int64)
HEAD = 1


class TextureView(Protocol):
    """What the atlas needs of one photo (a `ViewFit`)."""

    image: np.ndarray
    mask: np.ndarray
    camera: Camera
    pose: np.ndarray
    trans: np.ndarray


@dataclass
class _Projected:
    """The atlas as the photos saw it: colour (N, 3) float32 per covered texel, `conf` (N,) the best
    facing any photo saw it at (0: unseen), `pixel_m` (N,) the size on the body (metres) of one pixel
    of the photo that saw it best (how finely a photo resolved it; inf: unseen)."""

    colour: np.ndarray
    conf: np.ndarray
    pixel_m: np.ndarray


def build_texture(
    body: Any, shape: dict, views: Sequence[TextureView], size: int = TEXTURE_SIZE
) -> np.ndarray | None:
    """The person's atlas (size, size, 3) uint8 RGB (row 0 = v 1) over `body`'s UV layout, from the
    photos `views` fitted with `shape`; None for a body without a UV layout."""
    layout = body_uv(body)
    if layout is None or not views:
        return None
    uv_coords, uv_faces = layout
    grid = texel_grid(uv_coords, uv_faces, size)
    faces = np.asarray(body.faces, dtype=np.int64)
    from vmclip.render.hands import HAND_PARTS, skin_tone

    tone = skin_tone(views)
    proj = _project_views(body, shape, views, faces, grid, tone)
    rest = np.asarray(body.rest_vertices(shape), dtype=np.float64)
    part = np.asarray(body.skin_weights).argmax(1)
    corner = faces[grid.tri, grid.bary.argmax(1)]
    tpart = part[corner]
    pos = np.einsum("nk,nkd->nd", grid.bary.astype(np.float64), rest[faces[grid.tri]])
    region = JOINT_REGION[tpart]
    normal = np.einsum(
        "nk,nkd->nd", grid.bary.astype(np.float64), vertex_normals(rest, faces)[faces[grid.tri]]
    )
    strip = _trunk_front(region, normal)
    # (not the trunk's front: a print or a pocket on one side is not on the other)
    colour, conf = _mirror(proj, grid, faces, uv_coords, uv_faces, rest, ~strip)
    seen = conf >= SEEN_FACING
    source = seen & ~strip
    head = tpart == JOINT_NAMES.index("head")
    base = _side_colours(colour, seen, source, region, pos)
    other, grain = _other_side(colour, conf, strip, base, pos, region)
    base = np.where(head[:, None], base, other + grain)
    base = _neck_sides(base, colour, seen, pos, region, tpart == JOINT_NAMES.index("neck"))
    nape = head | (tpart == JOINT_NAMES.index("neck"))
    base = _back_of_head(base, colour, proj, seen, head, nape, pos)
    if tone is not None:  # a hand no photo showed (in a pocket, behind a phone): the face's skin
        base = np.where(np.isin(tpart, np.ravel(HAND_PARTS))[:, None], tone, base)
    # (blended across the edge of what the photos saw, so that no seam shows there)
    w = _smoothstep(conf, SEEN_FACING - 0.1, SEEN_FACING + 0.1)[:, None]
    out = w * colour + (1.0 - w) * base
    return _to_image(out, grid)


def _project_views(
    body: Any,
    shape: dict,
    views: Sequence[TextureView],
    faces: np.ndarray,
    grid: TexelGrid,
    tone: np.ndarray | None = None,
) -> _Projected:
    """Every photo projected into the atlas, blended by how squarely each saw each texel."""
    bary = grid.bary.astype(np.float64)
    acc = np.zeros((len(grid.tri), 3))
    wsum = np.zeros(len(grid.tri))
    conf = np.zeros(len(grid.tri), dtype=np.float32)
    pixel_m = np.full(len(grid.tri), np.inf, dtype=np.float32)
    part = np.asarray(body.skin_weights).argmax(1)
    corners = faces[grid.tri]
    tpart = part[faces[grid.tri, grid.bary.argmax(1)]]
    for view in views:
        pose, trans = np.asarray(view.pose)[None], np.asarray(view.trans)[None]
        verts = np.asarray(body.pose_vertices(shape, pose, trans))[0].astype(np.float64)
        # (each texel's point on the posed body and its pixel, shared by the two passes below)
        pts = np.einsum("nk,nkd->nd", bary, verts[corners])
        uv, z = project(pts, view.camera.K, view.camera.R, view.camera.t)
        colour, seen, size = _project_view(view, verts, faces, corners, bary, pts, uv, z)
        hidden = _hidden_by_limbs(
            view, np.asarray(body.pose_joints(shape, pose, trans))[0], verts, faces, part, tpart, uv, z, tone
        )
        if hidden is not None:
            seen = np.where(hidden, 0.0, seen).astype(np.float32)
        w = np.clip(seen, 0.0, 1.0) ** VIEW_POWER
        acc += w[:, None] * colour
        wsum += w
        pixel_m = np.where(seen > conf, size, pixel_m)
        conf = np.maximum(conf, seen)
    colour = (acc / np.maximum(wsum, 1e-12)[:, None]).astype(np.float32)
    return _Projected(colour, conf.astype(np.float32), pixel_m.astype(np.float32))


def _hidden_by_limbs(
    view: TextureView,
    joints: np.ndarray,
    verts: np.ndarray,
    faces: np.ndarray,
    part: np.ndarray,
    tpart: np.ndarray,
    uv: np.ndarray,
    z: np.ndarray,
    tone: np.ndarray | None = None,
) -> np.ndarray | None:
    """Texels the photo does not show although the fitted body's depth says so, as the renderer
    judges them from the photo's own joints (`vmclip.render.source_view.limb_occluders`): on a fitted
    limb where the photo shows no such limb (a forearm the fit put a little off, over the shirt, would
    otherwise take the shirt's colour), or behind a limb of another region the photo shows there, or
    an arm's texel on the cloth of a skirt the renderer finds or on a fitted hand the photo does not
    show (`vmclip.render.hands`, by the skin tone `tone`). None without the photo's joints or a
    rasteriser."""
    keypoints = getattr(view, "joints2d", None)
    if keypoints is None:
        return None
    from vmclip.errors import VmclipError
    from vmclip.render.hands import unseen_hands
    from vmclip.render.raster import get_rasterizer
    from vmclip.render.regions import part_regions
    from vmclip.render.skirt import skirt_cloth
    from vmclip.render.source_view import (
        ARM_REGIONS,
        arm_map,
        hidden_by_limb,
        limb_occluders,
        off_own_segment,
        photo_skirt,
        pixel_index,
    )

    try:
        rasterizer = get_rasterizer()
    except VmclipError:
        return None
    cam = view.camera
    image, mask = np.asarray(view.image)[..., :3], np.asarray(view.mask)
    h, w = mask.shape
    raster = rasterizer.render(verts, faces, cam.K, cam.R, cam.t, w, h)
    occ = limb_occluders(
        rasterizer, np.asarray(keypoints, np.float64), joints, verts, faces, part, cam, w, h,
        raster=raster, image=image, mask=mask,
    )  # fmt: skip
    region_of_part = part_regions(int(part.max()) + 1)
    region = region_of_part[tpart]
    hidden = hidden_by_limb(occ, np.concatenate([uv, z[:, None]], 1), region)
    # The renderer's skirt: a hand holding its hem shows the cloth where the fitted hand lies over it.
    part_map = np.full((h, w), -1, dtype=np.int64)
    part_map[raster.mask] = part[raster.vertex_of_max_weight()]
    skirt = photo_skirt(image, mask, arm_map(part_map, region_of_part, occ) >= 0, cam, verts, part, joints)
    if skirt is not None:
        at = pixel_index(uv, w, h)
        on = np.flatnonzero(at >= 0)
        hidden[on] |= skirt_cloth(image, mask, skirt).ravel()[at[on]] & np.isin(region[on], ARM_REGIONS)
    # A hand the photo does not show (in a pocket, behind a phone), as the renderer judges it.
    hidden |= np.isin(tpart, unseen_hands(image, mask, part_map, tone))
    # (stricter than the renderer, segment by segment: a fitted hand lying over the photo's own
    # forearm, on the shirt beside it, is not the hand, and would lend the shirt to the forearm)
    return hidden | off_own_segment(
        np.asarray(keypoints, np.float64), joints, verts, part, cam, uv, tpart, w, h
    )


def _project_view(
    view: TextureView,
    verts: np.ndarray,
    faces: np.ndarray,
    corners: np.ndarray,
    bary: np.ndarray,
    pts: np.ndarray,
    uv: np.ndarray,
    z: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One photo's colour at every texel (texel points `pts` on the posed body, at pixels `uv` and
    depths `z` in the photo), how squarely it saw it there (0 where hidden or off the person) and
    the size of one of its pixels there (metres)."""
    cam = view.camera
    image = np.asarray(view.image)[..., :3]
    mask = np.asarray(view.mask, dtype=np.float32)
    h, w = mask.shape
    normals = vertex_normals(verts, faces)
    nrm = np.einsum("nk,nkd->nd", bary, normals[corners])
    nrm /= np.maximum(np.linalg.norm(nrm, axis=1, keepdims=True), 1e-12)
    view_dir = cam.centre[None, :] - pts
    view_dir /= np.maximum(np.linalg.norm(view_dir, axis=1, keepdims=True), 1e-12)
    facing = (nrm * view_dir).sum(1)
    vpx, vz = project(verts, cam.K, cam.R, cam.t)
    depth = zbuffer(vpx, vz, faces, w, h)
    u, v = np.rint(uv[:, 0]).astype(np.int64), np.rint(uv[:, 1]).astype(np.int64)
    inside = (u >= 0) & (u < w) & (v >= 0) & (v < h) & (z > 0)
    visible = np.zeros(len(pts), dtype=bool)
    # (3x3 minimum: a texel between pixel centres is compared with the nearest surface around it)
    depth = cv2.erode(depth.astype(np.float32), np.ones((3, 3), np.uint8))
    visible[inside] = z[inside] <= depth[v[inside], u[inside]] + DEPTH_TOLERANCE
    # Well inside the person's mask only: its soft outline mixes in the background.
    solid = cv2.erode((mask >= 0.5).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(np.float32)
    inner = cv2.GaussianBlur(solid, (0, 0), 1.5)
    on = sample(inner, uv, cv2.INTER_LINEAR, cv2.BORDER_CONSTANT)
    colour = sample(_bleed(image, mask).astype(np.float32), uv)
    seen = np.where(visible, np.clip(facing, 0.0, 1.0) * np.clip(on, 0.0, 1.0), 0.0)
    size = np.maximum(z, 1e-6) / float(cam.K[0, 0])
    return colour.astype(np.float64), seen.astype(np.float32), size.astype(np.float32)


def sample(
    image: np.ndarray, xy: np.ndarray, interp: int = cv2.INTER_LINEAR, border: int = cv2.BORDER_REPLICATE
) -> np.ndarray:
    """Values of `image` at points xy (N, 2) (pixel centres at integers), bilinear by default.
    (cv2.remap takes maps under 32767 wide: the points go in as rows of 4096.)"""
    n = len(xy)
    cols = 4096
    rows = max(1, -(-n // cols))
    mx = np.zeros(rows * cols, np.float32)
    my = np.zeros(rows * cols, np.float32)
    mx[:n], my[:n] = xy[:, 0], xy[:, 1]
    out = cv2.remap(image, mx.reshape(rows, cols), my.reshape(rows, cols), interp, borderMode=border)
    return out.reshape(rows * cols, *image.shape[2:])[:n]


def _bleed(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The photo with every pixel off the person replaced by the nearest person pixel's colour."""
    person = mask >= 0.5
    if not person.any() or person.all():
        return image
    _, labels = cv2.distanceTransformWithLabels(
        (~person).astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
    )
    idx = np.flatnonzero(person.ravel())
    return image.reshape(-1, 3)[idx[labels.ravel() - 1]].reshape(image.shape)


def mirror_vertices(rest: np.ndarray) -> np.ndarray:
    """For every vertex, the vertex nearest to its mirror image across the body's x = 0 plane."""
    from scipy.spatial import cKDTree

    mirrored = rest.copy()
    mirrored[:, 0] = 2 * np.median(rest[:, 0]) - mirrored[:, 0]
    return cKDTree(rest).query(mirrored)[1].astype(np.int64)


def _mirror(
    proj: _Projected,
    grid: TexelGrid,
    faces: np.ndarray,
    uv_coords: np.ndarray,
    uv_faces: np.ndarray,
    rest: np.ndarray,
    allowed: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Texels no photo saw squarely take their mirror-image texel (the opposite limb) where a photo
    saw that more squarely (only the `allowed` texels)."""
    mirror = mirror_vertices(rest)
    mface = _face_index(faces, mirror[faces])
    # Position of each corner's mirror vertex in the mirror face (the barycentrics follow it).
    perm = np.zeros(faces.shape, dtype=np.int64)
    ok = mface >= 0
    mf = faces[np.maximum(mface, 0)]
    for k in range(3):
        perm[:, k] = np.argmax(mf == mirror[faces[:, k]][:, None], axis=1)
    size = grid.size
    px = uv_pixels(uv_coords, size)
    t = grid.tri
    has = ok[t]
    target = np.zeros((len(t), 2))
    for k in range(3):
        target += grid.bary[:, k, None] * px[uv_faces[np.maximum(mface[t], 0), perm[t, k]]]
    image = np.zeros((size, size, 4), np.float32)
    image[grid.ys, grid.xs, :3] = proj.colour
    image[grid.ys, grid.xs, 3] = proj.conf
    mcol = sample(np.ascontiguousarray(image[..., :3]), target)
    mconf = sample(np.ascontiguousarray(image[..., 3]), target, cv2.INTER_NEAREST)
    mconf = np.where(has & allowed, mconf, 0.0)
    gain = np.clip((mconf - proj.conf) / 0.2, 0.0, 1.0) * (proj.conf < SEEN_FACING) * (mconf >= SEEN_FACING)
    colour = proj.colour + gain[:, None] * (mcol - proj.colour)
    conf = np.maximum(proj.conf, np.where(gain > 0, mconf * gain, 0.0))
    return colour.astype(np.float32), conf.astype(np.float32)


def _face_index(faces: np.ndarray, query: np.ndarray) -> np.ndarray:
    """For each triangle of `query` (M, 3 vertex ids, any order), the index of the face of `faces`
    with the same three vertices (the last one, if several), -1 where none."""
    n = int(max(faces.max(), query.max())) + 1
    s = np.sort(faces, axis=1)
    key = (s[:, 0] * n + s[:, 1]) * n + s[:, 2]
    q = np.sort(query, axis=1)
    qkey = (q[:, 0] * n + q[:, 1]) * n + q[:, 2]
    order = np.argsort(key, kind="stable")
    sorted_keys = key[order]
    at = np.searchsorted(sorted_keys, qkey, side="right") - 1
    ok = (at >= 0) & (sorted_keys[np.maximum(at, 0)] == qkey)
    return np.where(ok, order[np.maximum(at, 0)], -1).astype(np.int64)


def _axis(region: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Where a texel lies along its region's length (rest pose): height, or the distance from the
    body's centre along an arm (the rest pose holds the arms out along x)."""
    return np.where((region == 2) | (region == 3), np.abs(pos[:, 0]), pos[:, 1])


def _trunk_front(region: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """The front of the trunk (rest pose, +z forward; up to the throat): where a tie, buttons or a
    print sit."""
    return (region == 0) & (normal[:, 2] > 0.2)


def _side_colours(
    colour: np.ndarray, seen: np.ndarray, source: np.ndarray, region: np.ndarray, pos: np.ndarray
) -> np.ndarray:
    """Per texel, the colour its region's seen `source` texels (not the trunk's front centre) have at
    its height (a percentile over bins along the region): the garment's colour without the front's
    layout."""
    base = np.zeros_like(colour)
    axis = _axis(region, pos)
    fallback = np.median(colour[seen], axis=0) if seen.any() else np.full(3, 128.0, np.float32)
    for r in np.unique(region):
        sel = region == r
        src = sel & source
        if src.sum() < 50:
            src = sel & seen
        if not src.any():
            base[sel] = fallback
            continue
        lo = axis[sel].min()
        bins = np.floor((axis - lo) / AXIS_BIN_M).astype(np.int64)
        nb = int(bins[sel].max()) + 1
        order = np.argsort(bins[src], kind="stable")
        sb, sc = bins[src][order], colour[src][order]
        starts = np.searchsorted(sb, np.arange(nb + 1))
        table = np.full((nb, 3), np.nan, np.float32)
        for b in range(nb):
            a0, a1 = starts[max(b - AXIS_SPAN_BINS, 0)], starts[min(b + AXIS_SPAN_BINS + 1, nb)]
            if a1 > a0:
                table[b] = np.percentile(sc[a0:a1], SIDE_PERCENTILE, axis=0)
        have = np.flatnonzero(~np.isnan(table[:, 0]))
        for c in range(3):  # bins with no seen side take the nearest along the region
            table[:, c] = np.interp(np.arange(nb), have, table[have, c])
        base[sel] = table[bins[sel]]
    return base


def _other_side(
    colour: np.ndarray,
    conf: np.ndarray,
    strip: np.ndarray,
    base: np.ndarray,
    pos: np.ndarray,
    region: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Per texel, the body's front at the same place (rest pose, looking along -z): the same
    garment's layout (its hems, where trousers begin), with the front's centre strip replaced row by
    row by the trunk's front beside it (a median: a print reaching past the strip is a minority
    there) and a median filter taking out the front's small details; and the garment's grain: the
    front's fine, faint detail there (strong edges, a print's or a seam's, left out)."""
    lo = pos[:, :2].min(0)
    cell = np.floor((pos[:, :2] - lo) / FRONT_GRID_M).astype(np.int64)
    w, h = cell.max(0) + 1
    col, row = cell[:, 0], h - 1 - cell[:, 1]
    # The front-most texel of each cell (written last, in order of z).
    order = np.argsort(pos[:, 2], kind="stable")
    front = np.full((h, w), -1, np.int64)
    front[row[order], col[order]] = order
    on = front >= 0
    # (squarely seen only: the sides a photo saw edge-on are shaded and smeared)
    have = on.copy()
    have[on] = conf[front[on]] >= FRONT_SOURCE_FACING
    centre = np.zeros((h, w), bool)
    centre[on] = strip[front[on]]
    if not have.any():
        return base, np.zeros_like(base)
    img = np.zeros((h, w, 3), np.uint8)
    img[have] = np.clip(colour[front[have]], 0, 255).astype(np.uint8)
    img = _nearest(img, have)
    # The trunk's front row by row: its garment's colour is the row's median (a tie, buttons or a
    # print are a minority of the row); its centre strip, and whatever differs clearly from that
    # colour, take it. The front of the thighs beside and below the trunk's front votes too: the
    # trunk's front ends a few centimetres below a hem across the hips, and without the thighs' rows
    # the shirt above outvoted the trousers there (the strip's shirt hung below the hem).
    raw = np.zeros((h, w, 3), np.uint8)
    raw[on] = np.clip(colour[front[on]], 0, 255).astype(np.uint8)
    cx = np.median(pos[strip, 0]) if strip.any() else 0.0
    xs = lo[0] + (np.arange(w) + 0.5) * FRONT_GRID_M
    outer = (np.abs(xs - cx) >= FRONT_STRIP_M)[None, :]
    trunk = np.zeros((h, w), bool)
    trunk[on] = region[front[on]] == 0
    legs = np.zeros((h, w), bool)
    legs[on] = (region[front[on]] == 4) | (region[front[on]] == 5)
    seen_body = (trunk | legs) & seen_cell(on, front, conf)
    rows = _row_colours(raw, seen_body & outer, seen_body & _flanks(trunk | legs))
    row_of = np.nonzero(centre)[0]
    garment = rows[row_of]
    garment = np.where(np.isnan(garment), base[front[centre]], garment)
    odd = np.abs(raw[centre].astype(np.float32) - garment).max(1) > FRONT_OUTLIER
    odd |= np.abs(xs[np.nonzero(centre)[1]] - cx) < FRONT_STRIP_M
    odd |= ~have[centre]
    img[centre] = np.where(odd[:, None], np.clip(garment, 0, 255), img[centre]).astype(np.uint8)
    smooth, grain = _smooth_and_grain(img)
    # The trunk's back takes the trunk's front only, never the neck: where the front shows the neck
    # (an open neckline's skin above the trunk's front) the nearest front trunk cells stand in, so
    # that the back is the garment up to the top of the trunk behind the neck. Where the front shows
    # the thighs (below the front's trunk, before the trunk's back ends) the back takes them as the
    # legs' back does: with the trunk's nearest cell there, above the hem, the shirt hung below the
    # hem on the back, and the hem followed the body model's saw-toothed trunk/leg boundary. (The
    # trunk's unseen front keeps its trunk: a thigh's lighter shade there is another garment's.)
    own = trunk & have
    if own.any():
        t_smooth, t_grain = _smooth_and_grain(np.where(legs[..., None], img, _nearest(img, own)))
        body = ((region == 0) | _behind_the_neck(pos, region))[:, None]
        smooth = np.where(body, t_smooth[row, col], smooth[row, col])
        grain = np.where(body, t_grain[row, col], grain[row, col])
        return smooth.astype(np.float32), grain
    return smooth[row, col].astype(np.float32), grain[row, col]


def _neck_axis(pos: np.ndarray, region: np.ndarray) -> tuple[float, np.ndarray, float] | None:
    """The neck proper (rest pose; below the jaw, which reaches far forward): its lowest height, its
    axis (a point on it) and its half-width; None without a neck and trunk."""
    neck, trunk = region == 1, region == 0
    if not neck.any() or not trunk.any():
        return None
    low = pos[neck, 1].min()
    stem = neck & (pos[:, 1] < low + NECK_STEM_M)
    axis = np.median(pos[stem], axis=0)
    half = np.quantile(np.abs(pos[stem, 0] - axis[0]), 0.9)
    return float(low), axis, float(half)


def _behind_the_neck(pos: np.ndarray, region: np.ndarray) -> np.ndarray:
    """The neck's texels behind its axis below one level line: the highest point of the trunk's top
    edge across the back of the neck (rest pose, +y up, +z forward). The garment goes up to it, so
    that its edge there is straight instead of the body model's jagged trunk/neck boundary."""
    found = _neck_axis(pos, region)
    if found is None:
        return np.zeros(len(region), dtype=bool)
    low, axis, half = found
    behind = (pos[:, 2] < axis[2]) & (np.abs(pos[:, 0] - axis[0]) < half)
    peaks = (region == 0) & behind & (pos[:, 1] > low)
    line = pos[peaks, 1].max() if peaks.any() else low
    return (region == 1) & behind & (pos[:, 1] <= line)


def _neck_sides(
    base: np.ndarray,
    colour: np.ndarray,
    seen: np.ndarray,
    pos: np.ndarray,
    region: np.ndarray,
    neck: np.ndarray,
) -> np.ndarray:
    """The back of the neck (`neck` texels round from its front, above the garment's level line
    behind it) takes, height by height, the colour the photos saw on the neck's sides: a collar that
    stands up the sides goes round the back, bare skin stays skin, hair hanging beside the neck
    continues behind it. (The front of the neck, an open neckline's skin, is not the back's.)"""
    found = _neck_axis(pos, region)
    if found is None:
        return base
    low, axis, _ = found
    around = np.degrees(np.abs(np.arctan2(pos[:, 0] - axis[0], pos[:, 2] - axis[2])))
    side = neck & seen & (around >= NECK_SIDE_DEG)
    if side.sum() < 20:
        return base
    bins = np.floor((pos[:, 1] - low) / AXIS_BIN_M).astype(np.int64)
    nb = int(bins[neck].max()) + 1
    table = np.full((nb, 3), np.nan, np.float32)
    side_idx = np.flatnonzero(side)  # (only the sides' texels: not the whole atlas per bin)
    side_bins, side_colour = bins[side_idx], colour[side_idx]
    for b in range(nb):
        near = np.abs(side_bins - b) <= NECK_SPAN_BINS
        if near.sum() >= 3:
            table[b] = np.median(side_colour[near], axis=0)
    have = np.flatnonzero(~np.isnan(table[:, 0]))
    for c in range(3):  # (a gap between seen heights takes the nearest)
        table[:, c] = np.interp(np.arange(nb), have, table[have, c])
    # Above the highest side a photo saw (under the jaw) the back keeps the front's colour.
    b = np.clip(bins, 0, nb - 1)
    within = neck & (bins >= have[0]) & (bins <= have[-1]) & ~_behind_the_neck(pos, region)
    w = _smoothstep(around, NECK_SIDE_DEG, 90.0) * within
    sides = table[b]
    return (w[:, None] * sides + (1.0 - w[:, None]) * base).astype(np.float32)


def _nearest(img: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """`img` with every cell outside `keep` taking the nearest `keep` cell's colour."""
    _, labels = cv2.distanceTransformWithLabels(
        (~keep).astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
    )
    h, w = keep.shape
    return img.reshape(h * w, -1)[np.flatnonzero(keep.ravel())[labels.ravel() - 1]].reshape(img.shape)


def _smooth_and_grain(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The front grid median-filtered over BACK_MEDIAN_M (its layout without small details), and its
    faint fine detail (the garment's grain)."""
    k = 2 * round(BACK_MEDIAN_M / FRONT_GRID_M / 2) + 1
    smooth = cv2.medianBlur(img, k)
    detail = img.astype(np.float32) - cv2.GaussianBlur(img.astype(np.float32), (0, 0), 1.0)
    faint = (np.abs(detail).max(2) <= GRAIN_EDGE).astype(np.uint8)
    faint = cv2.erode(faint, np.ones((3, 3), np.uint8))[..., None].astype(np.float32)
    grain = np.clip(detail, -GRAIN_MAX, GRAIN_MAX) * faint
    return smooth, grain


def seen_cell(on: np.ndarray, front: np.ndarray, conf: np.ndarray) -> np.ndarray:
    """Cells whose front-most texel a photo saw (at least at SEEN_FACING)."""
    out = np.zeros(on.shape, bool)
    out[on] = conf[front[on]] >= SEEN_FACING
    return out


def _flanks(trunk: np.ndarray) -> np.ndarray:
    """The cells of each row of the trunk (seen from the front) within FLANK_SHARE of its width
    from either side: where the garment that goes round the body shows, not what is worn or open
    only at the front."""
    x = np.arange(trunk.shape[1])[None, :]
    left = np.where(trunk, x, trunk.shape[1]).min(1, keepdims=True)
    right = np.where(trunk, x, -1).max(1, keepdims=True)
    reach = FLANK_SHARE * (right - left)
    return trunk & ((x <= left + reach) | (x >= right - reach))


def _row_colours(img: np.ndarray, source: np.ndarray, vote: np.ndarray | None = None) -> np.ndarray:
    """Per row of `img`, the garment's colour among the `source` cells of the rows within
    STRIP_ROW_SPAN: the most common colour (coarsely quantised, then the median of its cells; a
    per-channel median of a shirt, a red tie and a yellow print would be orange), NaN without any.
    With `vote` cells (the flanks), the colour is the one most common there: an open jacket's shirt,
    most of the front's rows, never reaches the flanks, and so never the back."""
    h = img.shape[0]
    out = np.full((h, 3), np.nan, np.float32)
    ys, xs = np.nonzero(source)
    if not len(ys):
        return out
    vals = img[ys, xs].astype(np.int64)
    q = vals // 32
    key = q[:, 0] * 64 + q[:, 1] * 8 + q[:, 2]
    starts = np.searchsorted(ys, np.arange(h + 1))  # (np.nonzero gives rows in order)
    vy, vx = np.nonzero(vote if vote is not None else source)
    vkey = (img[vy, vx].astype(np.int64) // 32) @ np.array([64, 8, 1])
    vstarts = np.searchsorted(vy, np.arange(h + 1))
    span = STRIP_ROW_SPAN
    for r in range(h):
        a, b = starts[max(r - span, 0)], starts[min(r + span + 1, h)]
        va, vb = vstarts[max(r - span, 0)], vstarts[min(r + span + 1, h)]
        if vb - va < 3:
            va, vb, keys = a, b, key  # (no flank seen around this row: the whole row votes)
        else:
            keys = vkey
        if b - a < 3:
            continue
        own = colour_histogram(key[a:b])
        best = np.array(np.unravel_index(own.argmax(), own.shape))
        hist = colour_histogram(keys[va:vb])
        flank = np.array(np.unravel_index(hist.argmax(), hist.shape))
        if np.abs(flank - best).max() > 1 and not _shade_of(
            _cells_near(img[vy[va:vb], vx[va:vb]].astype(np.int64), flank), _cells_near(vals[a:b], best)
        ):
            # Another garment than the row's most common colour goes round the body: that one, as
            # the front's rows show it (the flanks are seen obliquely, shaded), the most common of
            # the row's bins next to the flanks'.
            lo_b = np.maximum(flank - 1, 0)
            window = own[lo_b[0] : flank[0] + 2, lo_b[1] : flank[1] + 2, lo_b[2] : flank[2] + 2]
            best = lo_b + np.array(np.unravel_index(window.argmax(), window.shape))
        near = (np.abs(q[a:b] - np.array(best)) <= 1).all(1)
        if not near.any():
            near_v = (np.abs(img[vy[va:vb], vx[va:vb]] // 32 - np.array(best)) <= 1).all(1)
            out[r] = np.median(img[vy[va:vb], vx[va:vb]][near_v], axis=0)
            continue
        out[r] = np.median(vals[a:b][near], axis=0)
    return out


def colour_histogram(keys: np.ndarray) -> np.ndarray:
    """(8, 8, 8): how many colours fall in each coarse bin (`keys`: r // 32 * 64 + g // 32 * 8 +
    b // 32), summed over neighbouring bins (a garment in shade spreads over a few)."""
    from scipy.ndimage import uniform_filter

    hist = np.bincount(keys, minlength=512).reshape(8, 8, 8).astype(np.float32)
    return uniform_filter(hist, 3, mode="constant")


def _cells_near(vals: np.ndarray, bin_: np.ndarray) -> np.ndarray:
    """The median colour of the cells `vals` (N, 3) within one coarse bin of `bin_`."""
    near = (np.abs(vals // 32 - bin_) <= 1).all(1)
    return np.median(vals[near], axis=0) if near.any() else np.full(3, np.nan)


def _shade_of(flank: np.ndarray, front: np.ndarray) -> bool:
    """Whether the flanks' colour is the front's garment in shade or light (the same chromaticity,
    brightness within a factor SHADE_RATIO): a shirt's shaded sides are still the shirt, a leather
    jacket's dark sides still the jacket whose lit lapels fill the front's rows; a dark jacket beside
    a light shirt is another garment."""
    if np.isnan(flank).any() or np.isnan(front).any():
        return False
    ratio = (flank.sum() + 1.0) / (front.sum() + 1.0)
    chroma = np.abs(flank / (flank.sum() + 1.0) - front / (front.sum() + 1.0)).max()
    return bool(SHADE_RATIO <= ratio <= 1.0 / SHADE_RATIO and chroma < SHADE_CHROMA)


def _smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    t = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _back_of_head(
    base: np.ndarray,
    colour: np.ndarray,
    proj: _Projected,
    seen: np.ndarray,
    head: np.ndarray,
    nape: np.ndarray,
    pos: np.ndarray,
) -> np.ndarray:
    """The back of the head (`head`, and the top of the neck behind it: `nape`) takes the crown's
    colour as the photos saw it (hair, or a bald scalp), blended in towards the back (rest pose: +y
    up, +z forward), so that a cheek keeps the face's, and down to the nape."""
    if not head.any():
        return base
    centre = np.median(pos[head], axis=0)
    top_y = pos[head, 1].max()
    size = max(top_y - centre[1], 1e-3)
    # The highest texels the photos saw (a photo from the front sees the crown only obliquely: any
    # view of it will do): the hair above the forehead, or a bald scalp.
    seen_head = np.flatnonzero(head & (proj.conf >= 0.08))
    if len(seen_head) < 20:
        return base
    crown = np.zeros(len(head), dtype=bool)
    crown[seen_head[pos[seen_head, 1] >= np.quantile(pos[seen_head, 1], 1.0 - CROWN_SHARE)]] = True
    hair = np.median(colour[crown], axis=0)
    back = _smoothstep((centre[2] - pos[:, 2]) / size, -0.2, 0.4)
    # Down to the nape (below the ears the neck's sides lead).
    back *= _smoothstep((pos[:, 1] - centre[1]) / size, -0.9, -0.5)
    back = np.where(nape & ~seen, back, 0.0)
    # The hair's strands and shading continued from what the photos saw (else its flat colour).
    strands = synthesise_hair(colour, seen, pos, head, hair, back > 0, centre, proj.pixel_m)
    hair = hair[None] if strands is None else strands
    return (back[:, None] * hair + (1.0 - back[:, None]) * base).astype(np.float32)


def _to_image(values: np.ndarray, grid: TexelGrid) -> np.ndarray:
    """Texel values as the atlas image; the empty atlas between charts takes the nearest chart's
    colour (so that mip-maps and bilinear look-ups at a chart's border stay on the body)."""
    size = grid.size
    img = np.zeros((size, size, 3), np.uint8)
    img[grid.ys, grid.xs] = np.clip(np.rint(values), 0, 255).astype(np.uint8)
    covered = np.zeros((size, size), bool)
    covered[grid.ys, grid.xs] = True
    _, labels = cv2.distanceTransformWithLabels(
        (~covered).astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
    )
    idx = np.flatnonzero(covered.ravel())
    return img.reshape(-1, 3)[idx[labels.ravel() - 1]].reshape(img.shape)
