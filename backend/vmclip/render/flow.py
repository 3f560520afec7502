"""Transformation flow (after Liquid Warping GAN, with the fitted body instead of SMPL).

For every output frame the posed body is rasterised in the output camera. Each covered pixel lies on
one body-surface point (triangle + barycentric); the same point's pixel in every source photo is the
interpolation of the vertices' projections in that source, which gives a backward flow applied with
`cv2.remap`. A point is taken from a source where that source's depth buffer shows it (visible),
else from the mirror-image point of the body (the opposite limb), else from the same body part (or
its neighbour in the skeleton) seen from the other side, median-filtered so that the front's small
details (a print, buttons) do not appear on the back (not on the head: a face on the back of the head
is worse than hair), else from the fill. A surface the photo saw at a grazing angle but the frame
shows face-on would be a few pixels stretched over a large area, so its colour is blended, by how much
it would be stretched, into the fill: off the head the same part's texture where the first photo saw
it squarely (photo coordinates spread over the mesh), on the head a smooth colour spread over the head
from what the photos saw squarely (the back of the head from the crown).

Person pixels outside the bare body (hair, clothes) are carried forward: every such pixel of the
first photo hangs from the body region whose silhouette is nearest (the trunk when another region is
about as near: the cloth between a hanging arm and the chest must not fly up with a raised arm, a
skirt between the thighs must not go with one leg); it moves with the surface point it hangs from
(offset turned and scaled as that part turned), rigidly with the head for hair, and is splatted into
the frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vmclip.motion.skeleton import JOINT_NAMES, PARENTS
from vmclip.render.raster import Raster, Rasterizer, project

# Margin (pixels at 512) of the output window around the body (clothes and hair beyond the body).
EXTEND_PX = 48.0
# Person pixels farther than this from the fitted body (pixels at 512) are not carried (stray matte).
CARRY_MAX_PX = 110.0
# Cloth shared by two limbs hangs from the trunk when the trunk is this near (pixels at 512).
TRUNK_REACH_PX = 45.0
# Hands and feet carry person pixels only this far beyond them (pixels at 512).
SHORT_REACH_PX = 6.0
# A source sees a surface point when its depth is within this of the source depth buffer (metres).
VISIBILITY_EPS = 0.03
# How much a photo's sample may be stretched: the ratio of the photo's facing (cosine between the
# surface normal and the direction to the camera) to the frame's. Above the upper ratio the photo is
# used as it is, below the lower one only the fill colour; blended in between.
STRETCH_OK, STRETCH_BAD = 0.55, 0.22
# Details smaller than about this (pixels at 512, the median filter's radius) are left out of the
# front's texture where it stands in for the back.
BACK_DETAIL_PX = 7.0
# A back the photo shows only from the front takes the front of the same part from this far away
# (pixels at 512) where the photo shows something else in front of it (a hand over the hips).
BACK_REACH_PX = 30.0
# A vertex counts as seen squarely (a fill colour source) from this facing on.
SEEN_FACING = 0.35

# Body regions for clothes ownership: clothes hang from one region (a limb, the trunk or the head).
_REGION_OF = {
    "pelvis": 0,
    "spine1": 0,
    "spine2": 0,
    "spine3": 0,
    "left_collar": 0,
    "right_collar": 0,
    "neck": 1,
    "head": 1,
}
for _side in ("left", "right"):
    for _j in ("shoulder", "elbow", "wrist", "hand"):
        _REGION_OF[f"{_side}_{_j}"] = 2 if _side == "left" else 3
    for _j in ("hip", "knee", "ankle", "foot"):
        _REGION_OF[f"{_side}_{_j}"] = 4 if _side == "left" else 5
TRUNK, HEAD = 0, 1
NUM_REGIONS = 6
JOINT_REGION = np.array([_REGION_OF[n] for n in JOINT_NAMES], dtype=np.int64)

# Limb segments whose pixels in a photo hide the body behind them: (joint, child joint, how far the
# limb goes on beyond the child as a share of the segment: fingers beyond the knuckles, toes beyond
# the ball of the foot, body parts covered: named after the joints that move them).
_J = JOINT_NAMES.index
LIMB_SEGMENTS = tuple(
    (_J(f"{s}_{a}"), _J(f"{s}_{b}"), beyond, tuple(_J(f"{s}_{q}") for q in parts))
    for s in ("left", "right")
    for a, b, beyond, parts in (
        ("shoulder", "elbow", 0.0, ("shoulder",)),
        ("elbow", "wrist", 0.0, ("elbow",)),
        ("wrist", "hand", 0.6, ("wrist", "hand")),
        ("hip", "knee", 0.0, ("hip",)),
        ("knee", "ankle", 0.0, ("knee",)),
        ("ankle", "foot", 0.4, ("ankle", "foot")),
    )
)
# A detected joint counts from this confidence on (MediaPipe's visibility; hands and feet are
# derived and scaled by 0.8).
KEYPOINT_MIN_CONF = 0.4
# A point lies behind a limb when it is farther from the camera than the limb's axis by this share
# of the limb's radius (the limb's back surface, less a little for a limb resting on the body).
BEHIND_LIMB = 0.6


def mirror_vertex_map(rest_vertices: np.ndarray) -> np.ndarray:
    """For every vertex, the vertex nearest to its mirror image across the body's x = 0 plane."""
    from scipy.spatial import cKDTree

    rest = np.asarray(rest_vertices, dtype=np.float64)
    centre = np.median(rest[:, 0])
    mirrored = rest.copy()
    mirrored[:, 0] = 2 * centre - mirrored[:, 0]
    return cKDTree(rest).query(mirrored)[1].astype(np.int64)


def face_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    v = np.asarray(vertices, dtype=np.float64)
    fn = np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])
    return fn / np.maximum(np.linalg.norm(fn, axis=1, keepdims=True), 1e-12)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    v = np.asarray(vertices, dtype=np.float64)
    fn = np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])
    n = np.stack(
        [
            sum(np.bincount(faces[:, k], weights=fn[:, c], minlength=len(v)) for k in range(3))
            for c in range(3)
        ],
        1,
    )
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def bleed(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The photo with every pixel off the person (and in a thin band inside the outline, where the
    photo mixes person and background) replaced by the colour of the nearest person pixel, so that
    sampling near the outline, or just outside it with an imperfect fit, never picks up background."""
    radius = max(1, round(3 * max(mask.shape) / 512))
    person = cv2.erode((mask > 0.5).astype(np.uint8), np.ones((2 * radius + 1,) * 2, np.uint8)).astype(bool)
    if not person.any() or person.all():
        return image
    _, labels = cv2.distanceTransformWithLabels(
        (~person).astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
    )
    idx = np.flatnonzero(person.ravel())
    flat = image.reshape(-1, 3)
    return flat[idx[labels.ravel() - 1]].reshape(image.shape)


def _nearest(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance to and flat index of the nearest pixel of `mask`, for every pixel."""
    dist, labels = cv2.distanceTransformWithLabels(
        (~mask).astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
    )
    idx = np.flatnonzero(mask.ravel())
    return dist, idx[labels.ravel() - 1].reshape(mask.shape)


def _nearest_within(mask: np.ndarray, ys: np.ndarray, xs: np.ndarray, radius: float) -> np.ndarray:
    """Flat index of the nearest pixel of `mask` within `radius` of each pixel (ys, xs), -1 where
    none is: offsets tried nearest first, a few shifted look-ups on those pixels only (for small radii
    much cheaper than a distance transform of the whole window)."""
    h, w = mask.shape
    r = int(np.floor(radius))
    offsets = sorted(
        (
            (dy, dx)
            for dy in range(-r, r + 1)
            for dx in range(-r, r + 1)
            if 0 < dy * dy + dx * dx <= radius * radius + 1e-9
        ),
        key=lambda o: o[0] ** 2 + o[1] ** 2,
    )
    out = np.full(len(ys), -1, dtype=np.int64)
    for dy, dx in offsets:
        todo = np.flatnonzero(out < 0)
        if not len(todo):
            break
        qy, qx = ys[todo] + dy, xs[todo] + dx
        ok = (qy >= 0) & (qy < h) & (qx >= 0) & (qx < w)
        hit = np.zeros(len(todo), dtype=bool)
        hit[ok] = mask[qy[ok], qx[ok]]
        out[todo[hit]] = qy[hit] * w + qx[hit]
    return out


def smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    t = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def part_regions(num_parts: int) -> np.ndarray:
    """Body region of every body part index (parts beyond the 24 joints count as trunk)."""
    region = np.zeros(max(num_parts, len(JOINT_REGION)), dtype=np.int64)
    region[: len(JOINT_REGION)] = JOINT_REGION
    return region


def _segment_distance(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance of points (N, D) from the segment a-b, and the parameter (0 at a, 1 at b) of the
    nearest point on it."""
    ab = b - a
    t = np.clip(((points - a) @ ab) / max(float(ab @ ab), 1e-12), 0.0, 1.0)
    return np.linalg.norm(points - (a + t[:, None] * ab), axis=1), t


@dataclass
class LimbOcclusion:
    """What a photo's limbs hide and what the fitted limbs hide wrongly, per pixel of the photo.

    `region`: region of the nearest limb the photo shows there, with a margin for a sleeve wider than
    the fitted limb (-1: none); `core`: there without the margin; `depth`: beyond it a point of
    another region is hidden by that limb (inf: none); `behind`: the limb hides a surface of the
    fitted body there (those pixels are painted out in the clean photo); `unveiled`: region of a
    fitted limb that covers the pixel where the photo shows no such limb (-1: none), and
    `unveiled_depth` the depth of the fitted body behind it there, what the photo does show."""

    region: np.ndarray
    core: np.ndarray
    depth: np.ndarray
    behind: np.ndarray
    unveiled: np.ndarray
    unveiled_depth: np.ndarray


def limb_occluders(
    rasterizer: Rasterizer,
    keypoints: np.ndarray,
    joints: np.ndarray,
    vertices: np.ndarray,
    faces: np.ndarray,
    vertex_part: np.ndarray,
    camera: Camera,
    width: int,
    height: int,
    raster: Raster | None = None,
) -> LimbOcclusion:
    """Where a photo shows a limb in front of the body, from the photo's own keypoints: a fitted limb
    is often a few pixels off the real one; the surface the fit puts beside its limb (the shirt just
    above a forearm held across the waist) would take the real sleeve's pixels, and the fitted limb
    would hide surface the photo shows.

    Every limb segment whose two joints were detected is drawn as a capsule along the detected joints
    (`keypoints` (24, 3): x, y, confidence in this photo's pixels), as wide as the fitted limb there;
    its depth runs along the fitted limb's axis (`joints` (24, 3) world, posed as in the photo).
    `raster`: the full body's render in this photo, when already made."""
    vertices = np.asarray(vertices, dtype=np.float64)
    region = np.full((height, width), -1, dtype=np.int8)
    core = np.zeros((height, width), dtype=bool)
    depth = np.full((height, width), np.inf, dtype=np.float32)
    kp = np.asarray(keypoints, dtype=np.float64)
    joints = np.asarray(joints, dtype=np.float64)
    uv_j, z_j = project(joints, camera.K, camera.R, camera.t)
    uv_v, _ = project(vertices, camera.K, camera.R, camera.t)
    segments = []
    for a, b, beyond, parts in LIMB_SEGMENTS:
        sel = np.isin(vertex_part, parts)
        if min(kp[a, 2], kp[b, 2]) < KEYPOINT_MIN_CONF or sel.sum() < 10 or min(z_j[a], z_j[b]) <= 0:
            continue
        # The fitted limb's width: its vertices' distance from its axis (in the photo and in metres).
        end_px = uv_j[b] + beyond * (uv_j[b] - uv_j[a])
        end_m = joints[b] + beyond * (joints[b] - joints[a])
        r_px = float(np.percentile(_segment_distance(uv_v[sel], uv_j[a], end_px)[0], 75))
        r_m = float(np.percentile(_segment_distance(vertices[sel], joints[a], end_m)[0], 75))
        segments.append((min(z_j[a], z_j[b]), a, b, beyond, parts, max(r_px, 1.0), r_m))
    behind = np.zeros((height, width), dtype=bool)
    unveiled = np.full((height, width), -1, dtype=np.int8)
    unveiled_depth = np.full((height, width), np.inf, dtype=np.float32)
    if not segments:
        return LimbOcclusion(region, region >= 0, depth, behind, unveiled, unveiled_depth)
    # Where each region's limb is in the photo (with a margin: a loose sleeve is wider than the fit).
    covered = np.zeros((NUM_REGIONS, height, width), dtype=bool)
    margin = 2.0 * max(width, height) / 512.0
    # Far limbs first: where two overlap, the nearer one is drawn last and wins.
    for _, a, b, beyond, _, r_px, r_m in sorted(segments, key=lambda seg: -seg[0]):
        pa = kp[a, :2]
        pb = kp[b, :2] + beyond * (kp[b, :2] - pa)
        reach = r_px + margin
        x0, y0 = np.floor(np.minimum(pa, pb) - reach - 1).astype(int)
        x1, y1 = np.ceil(np.maximum(pa, pb) + reach + 2).astype(int)
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
        if x1 <= x0 or y1 <= y0:
            continue
        ys, xs = np.mgrid[y0:y1, x0:x1]
        d, t = _segment_distance(np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float64), pa, pb)
        d = d.reshape(xs.shape)
        z = (z_j[a] + t * (1.0 + beyond) * (z_j[b] - z_j[a]) + BEHIND_LIMB * r_m).reshape(xs.shape)
        inside = (d <= reach) & (z < depth[y0:y1, x0:x1])
        region[y0:y1, x0:x1][inside] = JOINT_REGION[a]
        core[y0:y1, x0:x1][inside] = d[inside] <= r_px
        depth[y0:y1, x0:x1][inside] = z[inside]
        covered[JOINT_REGION[a], y0:y1, x0:x1] |= d <= reach
    if raster is None:
        raster = rasterizer.render(vertices, faces, camera.K, camera.R, camera.t, width, height)
    part_regions_ = part_regions(int(vertex_part.max()) + 1)
    front_part = np.full((height, width), -1, dtype=np.int64)
    front_part[raster.mask] = vertex_part[raster.vertex_of_max_weight()]
    drawn = np.zeros(len(part_regions_), dtype=bool)
    drawn[[q for seg in segments for q in seg[4]]] = True
    vertex_region = part_regions_[vertex_part]
    face_region = vertex_region[faces]
    normal = face_normals(vertices, faces)
    towards = camera.centre[None, :] - vertices[faces].mean(1)
    front = (normal * towards).sum(1) > 0
    for g in np.unique(JOINT_REGION[[seg[1] for seg in segments]]):
        # The body without this limb: which surface lies behind the limb (its inside, seen through
        # the hole the limb leaves, faces away from the camera and does not count).
        keep = ~(face_region == g).all(1)
        ras = rasterizer.render(vertices, faces[keep], camera.K, camera.R, camera.t, width, height)
        surface = np.zeros((height, width), dtype=bool)
        surface[ras.mask] = front[keep][ras.tri[ras.mask]]
        behind |= (region == g) & surface & (ras.depth > depth)
        # The fitted limb in front where the photo shows none of it: the photo shows what is behind.
        off = (
            (front_part >= 0)
            & drawn[np.maximum(front_part, 0)]
            & (part_regions_[np.maximum(front_part, 0)] == g)
            & ~covered[g]
            & surface
            & (ras.depth > raster.depth + VISIBILITY_EPS)
        )
        unveiled[off] = g
        unveiled_depth[off] = ras.depth[off]
    return LimbOcclusion(region, core, depth, behind, unveiled, unveiled_depth)


def paint_out(
    image: np.ndarray, hole: np.ndarray, exclude: np.ndarray, px: float, seed: int = 0
) -> np.ndarray:
    """`image` with `hole` filled from the texture around it (PatchMatch on a window around the
    hole; never from `exclude`: the background, the limbs); OpenCV's Telea where PatchMatch is
    missing. A smooth Telea fill of a band as wide as a forearm reads as a smear; patches of the
    shirt and jacket around it continue their folds and edges."""
    import patchmatch

    if not patchmatch.patchmatch_available:
        return cv2.inpaint(image, hole.astype(np.uint8), max(3, round(5 * px)), cv2.INPAINT_TELEA)
    ys, xs = np.nonzero(hole)
    m = int(round(48 * px))  # the window: nearby texture is the likely one
    y0, y1 = max(0, ys.min() - m), min(image.shape[0], ys.max() + m + 1)
    x0, x1 = max(0, xs.min() - m), min(image.shape[1], xs.max() + m + 1)
    h = hole[y0:y1, x0:x1]
    patchmatch.set_random_seed(seed)
    filled = patchmatch.inpaint(
        np.ascontiguousarray(image[y0:y1, x0:x1]),
        h.astype(np.uint8) * 255,
        global_mask=(exclude[y0:y1, x0:x1] & ~h).astype(np.uint8) * 255,
        patch_size=3,
    )
    out = image.copy()
    out[y0:y1, x0:x1][h] = filled[h]
    return out


def part_similarities(
    src_uv: np.ndarray,
    dst_uv: np.ndarray,
    vertex_part: np.ndarray,
    num_parts: int,
    valid: np.ndarray | None = None,
    scale_range: tuple[float, float] = (0.5, 2.0),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per body part, the 2-D similarity (rotation + uniform scale) best mapping the part's vertices'
    `src_uv` to `dst_uv`: linear part (P, 2, 2) and centroids (P, 2) of both sides."""
    g = np.asarray(vertex_part, dtype=np.int64)
    w = np.ones(len(g)) if valid is None else valid.astype(np.float64)
    cnt = np.maximum(np.bincount(g, weights=w, minlength=num_parts), 1e-9)

    def mean(a):
        return np.bincount(g, weights=a * w, minlength=num_parts) / cnt

    ms = np.stack([mean(src_uv[:, 0]), mean(src_uv[:, 1])], 1)
    md = np.stack([mean(dst_uv[:, 0]), mean(dst_uv[:, 1])], 1)
    sx, sy = src_uv[:, 0] - ms[g, 0], src_uv[:, 1] - ms[g, 1]
    dx, dy = dst_uv[:, 0] - md[g, 0], dst_uv[:, 1] - md[g, 1]
    norm = mean(sx * sx + sy * sy)
    a = mean(sx * dx + sy * dy) / np.maximum(norm, 1e-9)
    b = mean(sx * dy - sy * dx) / np.maximum(norm, 1e-9)
    scale = np.hypot(a, b)
    ok = (norm > 1.0) & np.isfinite(scale) & (scale > 1e-6)
    clamp = np.where(ok, np.clip(scale, *scale_range) / np.maximum(scale, 1e-9), 1.0)
    a, b = np.where(ok, a * clamp, 1.0), np.where(ok, b * clamp, 0.0)
    lin = np.stack([np.stack([a, -b], -1), np.stack([b, a], -1)], -2)
    return lin, ms, md


@dataclass
class Camera:
    K: np.ndarray
    R: np.ndarray
    t: np.ndarray

    @property
    def centre(self) -> np.ndarray:
        return -np.asarray(self.R).T @ np.asarray(self.t)


class SourceView:
    """One source photo with its posed body, prepared once: vertex projections, depth buffer, body
    part map, how squarely each vertex was seen and its colour there, and the person pixels off the
    body with the surface points they hang from. With the photo's `keypoints` (SMPL-24 (24, 3): x, y,
    confidence) and the fitted `joints` (24, 3), a limb the photo shows in front of the body also
    hides what lies behind it where the fit put its limb a little off (see `limb_occluders`); `seed`
    drives PatchMatch's random search where such a limb is painted out."""

    def __init__(
        self,
        rasterizer: Rasterizer,
        image: np.ndarray,
        mask: np.ndarray,
        camera: Camera,
        vertices: np.ndarray,
        faces: np.ndarray,
        vertex_part: np.ndarray,
        keypoints: np.ndarray | None = None,
        joints: np.ndarray | None = None,
        seed: int = 0,
    ) -> None:
        h, w = image.shape[:2]
        px = max(h, w) / 512.0
        faces = np.asarray(faces, dtype=np.int64)
        vertex_part = np.asarray(vertex_part, dtype=np.int64)
        self.image = np.ascontiguousarray(image[..., :3], dtype=np.uint8)
        mask = np.clip(np.asarray(mask, dtype=np.float32), 0.0, 1.0)
        # Person segmenters draw the outline a little outside the person: pull the matte in by about
        # 1.5 px (at 512) so that a moved outline does not bring a rim of the old background along.
        r = int(1.5 * px)
        self.mask = cv2.erode(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
        # For trimming a fitted body that is wider than the person: only where the photo clearly shows
        # background (the matte grown by a pixel), so that no seam opens along a correct outline.
        self.mask_trim = cv2.dilate(mask, np.ones((3, 3), np.uint8))
        self.bled = bleed(self.image, mask)
        # For a surface the photo saw only from its other side (the back of a person photographed from
        # the front): the garment's colours without the front's small details (a print, buttons,
        # folds), which would be wrong (and mirrored) on the back. (Larger ones, such as the shirt
        # between an open jacket's lapels, stay.)
        k = 2 * round(BACK_DETAIL_PX * px) + 1
        self.back = cv2.medianBlur(self.bled, k)
        self.camera = camera
        self.width, self.height = w, h
        uv, z = project(vertices, camera.K, camera.R, camera.t)
        self.uvz = np.concatenate([uv, z[:, None]], axis=1).astype(np.float32)
        normals = vertex_normals(vertices, faces)
        view = camera.centre[None, :] - vertices
        view /= np.maximum(np.linalg.norm(view, axis=1, keepdims=True), 1e-12)
        self.facing = np.clip((normals * view).sum(1), 0.0, 1.0).astype(np.float32)
        self.raster: Raster = rasterizer.render(vertices, faces, camera.K, camera.R, camera.t, w, h)
        self.depth = self.raster.depth
        self.region_of_part = part_regions(int(vertex_part.max()) + 1)
        # Visibility is tested against the farthest depth among the 3x3 neighbours: a point on a steep
        # surface (the side of the face) must not fail the test by a rounding of its pixel.
        far = np.where(np.isfinite(self.depth), self.depth, 1e6).astype(np.float32)
        self.depth_vis = cv2.dilate(far, np.ones((3, 3), np.uint8))
        self.occlusion: LimbOcclusion | None = None
        self.clean = None
        self.clean_region = np.full((h, w), -1, dtype=np.int8)
        if keypoints is not None and joints is not None:
            occ = self.occlusion = limb_occluders(
                rasterizer, keypoints, joints, vertices, faces, vertex_part, camera, w, h, raster=self.raster
            )
            # Where the fitted limb covers what the photo shows beside the real limb, the surface
            # behind the fitted limb is what the photo shows.
            unveiled = occ.unveiled >= 0
            if unveiled.any():
                behind = cv2.dilate(
                    np.where(unveiled, occ.unveiled_depth, 0.0).astype(np.float32), np.ones((3, 3), np.uint8)
                )
                self.depth_vis = np.where(unveiled, np.maximum(self.depth_vis, behind), self.depth_vis)
            if occ.behind.any():
                # The photo with the limbs that hide another surface painted out: what that surface
                # shows where the limb hid it (the sleeve must not be repeated on the shirt).
                grow = cv2.dilate(occ.behind.astype(np.uint8), np.ones((7, 7), np.uint8))
                self.clean = paint_out(self.bled, grow > 0, (mask < 0.5) | (occ.region >= 0), px, seed)
                self.clean_region = np.where(grow > 0, occ.region, -1).astype(np.int8)
        ui, vi = np.rint(uv[:, 0]).astype(np.int64), np.rint(uv[:, 1]).astype(np.int64)
        inside = (ui >= 0) & (ui < w) & (vi >= 0) & (vi < h) & (z > 0)
        visible = np.zeros(len(uv), dtype=bool)
        visible[inside] = z[inside] <= self.depth_vis[vi[inside], ui[inside]] + VISIBILITY_EPS
        visible &= ~self.hidden_by_limb(self.uvz, self.region_of_part[vertex_part])
        # How squarely each vertex was seen (0 where hidden), and the (slightly blurred) photo colour
        # there: the raw material of the fill colour.
        # Only where the photo shows the person there (a fit a little larger than the person would
        # otherwise lend the background's or the bleeding's colours).
        on_person = np.zeros(len(uv), dtype=bool)
        on_person[inside] = self.mask[vi[inside], ui[inside]] >= 0.5
        self.quality = np.where(visible & on_person, self.facing, 0.0).astype(np.float32)
        blur = cv2.GaussianBlur(self.bled.astype(np.float32), (0, 0), 1.5 * px)
        self.vertex_colour = cv2.remap(
            blur,
            uv[None, :, 0].astype(np.float32),
            uv[None, :, 1].astype(np.float32),
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )[0]
        body = self.raster.mask
        part = np.full((h, w), -1, dtype=np.int16)
        part[body] = vertex_part[self.raster.vertex_of_max_weight()]
        self.part = part
        self._prepare_carried(body, part, px)

    def hidden_by_limb(self, uvz: np.ndarray, region: np.ndarray) -> np.ndarray:
        """Whether points (N, 3: source u, v, depth) of body regions `region` (N,) are not what the
        photo shows at their pixel although the fitted body's depth says so: behind a limb of another
        region that the photo shows there, or on a fitted limb where the photo shows no such limb."""
        occ = self.occlusion
        if occ is None:
            return np.zeros(len(uvz), dtype=bool)
        u, v = np.rint(uvz[:, 0]).astype(np.int64), np.rint(uvz[:, 1]).astype(np.int64)
        h, w = occ.region.shape
        inside = np.flatnonzero((u >= 0) & (u < w) & (v >= 0) & (v < h))
        u, v, g = u[inside], v[inside], region[inside]
        limb = occ.region[v, u]
        hidden = np.zeros(len(uvz), dtype=bool)
        hidden[inside] = ((limb >= 0) & (limb != g) & occ.core[v, u] & (uvz[inside, 2] > occ.depth[v, u])) | (
            occ.unveiled[v, u] == g
        )
        return hidden

    def _prepare_carried(self, body: np.ndarray, part: np.ndarray, px: float) -> None:
        """Person pixels beside or on the rim of the fitted body (clothes, hair), each with its
        owning body region: the surface point (pixel of the source body) it hangs from and the body
        part there."""
        # The body's own rim (a few pixels inside its outline) is carried too: where the frame's body
        # is a little narrower or turned, it closes the seam between the body and its clothes.
        rim_px = max(2, round(3 * px))
        core = cv2.erode(
            body.astype(np.uint8),
            cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * rim_px + 1, 2 * rim_px + 1)),
        ).astype(bool)
        # Solid person pixels only: the soft fringe of the matte would otherwise be carried as streaks.
        self.mask_off = np.where(core | (self.mask < 0.5), 0.0, self.mask).astype(np.float32)
        # The soft outline beside the body (for the thin ring just outside the frame's body).
        self.mask_edge = np.where(core, 0.0, self.mask).astype(np.float32)
        carried = self.mask_off > 0
        self.carry_xy = np.zeros((0, 2), dtype=np.float32)
        self.carry_anchor = self.carry_part = self.carry_tri = np.zeros(0, np.int64)
        self.carry_bary = np.zeros((0, 3), np.float32)
        self.carry_trunk_rigid = np.zeros(0, dtype=bool)
        if not body.any() or not carried.any():
            return
        ys, xs = np.nonzero(carried)
        region_map = np.where(part >= 0, JOINT_REGION[np.maximum(part, 0) % len(JOINT_REGION)], -1)
        dist = np.full((NUM_REGIONS, len(ys)), np.inf, dtype=np.float32)
        anchor = np.zeros((NUM_REGIONS, len(ys)), dtype=np.int64)
        for g in range(NUM_REGIONS):
            sel = region_map == g
            if sel.any():
                d, near = _nearest(sel)
                dist[g], anchor[g] = d[ys, xs], near[ys, xs]
        d1 = dist.min(0)
        keep = d1 <= CARRY_MAX_PX * px
        # Regions about as near as the nearest one: the pixel's owner is ambiguous, and the trunk
        # takes it: cloth between a hanging arm and the chest stays on the chest when the arm rises,
        # a skirt between the thighs hangs from the hips when the legs part. Far below the trunk
        # (trousers between the knees) the nearest limb keeps it.
        margin = np.maximum(3.0 * px, 0.5 * d1)
        near = dist <= (d1 + margin)[None]
        cols = np.arange(len(ys))
        order = np.argsort(dist, axis=0)
        shared = near[order[1], cols] & np.isfinite(dist[order[1], cols])
        trunk = near[TRUNK] | (shared & (dist[TRUNK] <= TRUNK_REACH_PX * px))
        anc = anchor[np.where(trunk, TRUNK, order[0]), cols]
        # Hands and feet carry only a short rim (a cuff, a shoe's edge): what lies farther beside them
        # in a photo is mostly a held object or the skirt a hand holds, which must not fly with them.
        short = np.isin(
            part.ravel()[anc],
            [
                JOINT_NAMES.index(f"{s}_{j}")
                for s in ("left", "right")
                for j in ("wrist", "hand", "ankle", "foot")
            ],
        )
        keep &= ~short | (d1 <= SHORT_REACH_PX * px)
        # Far pixels first: where two land on one output pixel, the one nearer its body wins.
        order = np.argsort(-d1[keep], kind="stable")
        ys, xs, anc = ys[keep][order], xs[keep][order], anc[keep][order]
        # Cloth between two limbs that the trunk took (not itself beside the trunk) moves with the
        # trunk as a whole: the trunk's surface deforms near a swinging hip and would tear it.
        self.carry_trunk_rigid = (trunk & shared & ~near[TRUNK])[keep][order]
        self.carry_xy = np.stack([xs, ys], 1).astype(np.float32)
        self.carry_anchor = anc
        self.carry_part = part.ravel()[anc].astype(np.int64)
        self.carry_tri = self.raster.tri.ravel()[anc].astype(np.int64)
        self.carry_bary = self.raster.bary.reshape(-1, 3)[anc].astype(np.float32)


@dataclass
class Warped:
    """A warped person: `rgb` (h, w, 3) float32 0..255 and `alpha` (h, w) over the window whose
    top-left pixel in the output frame is (x0, y0); `flow` holds the maps behind it (same window)."""

    rgb: np.ndarray
    alpha: np.ndarray
    x0: int
    y0: int
    flow: dict[str, np.ndarray]


def _mesh_adjacency(faces: np.ndarray, num_vertices: int):
    from scipy import sparse

    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    e = np.concatenate([e, e[:, ::-1]])
    adj = sparse.coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(num_vertices,) * 2).tocsr()
    adj.data[:] = 1.0
    return adj


def spread_colours(
    colour: np.ndarray, known: np.ndarray, adjacency, smooth: int = 30
) -> tuple[np.ndarray, np.ndarray]:
    """Fill the vertices not `known` with colours spread over the mesh edges from the known ones (each
    new ring takes the mean of its known neighbours), then smooth what was filled."""
    col = np.where(known[:, None], colour, 0.0).astype(np.float64)
    have = known.astype(np.float64)
    for _ in range(len(have)):
        if have.all():
            break
        count = adjacency @ have
        new = (have == 0) & (count > 0)
        if not new.any():
            break
        col[new] = (adjacency @ (col * have[:, None]))[new] / count[new, None]
        have[new] = 1.0
    filled = (have > 0) & ~known
    deg = np.maximum(np.asarray(adjacency.sum(1)).ravel(), 1.0)
    for _ in range(smooth):
        col[filled] = (adjacency @ col)[filled] / deg[filled, None]
    return col, have > 0


class FlowWarper:
    """Builds the backward flow from an output frame's posed body to the source photos and warps."""

    def __init__(
        self,
        rasterizer: Rasterizer,
        sources: list[SourceView],
        faces: np.ndarray,
        vertex_part: np.ndarray,
        mirror: np.ndarray,
        camera: Camera,
        width: int,
        height: int,
        extend_px: float | None = None,
        rest_vertices: np.ndarray | None = None,
    ) -> None:
        self.rasterizer = rasterizer
        self.sources = sources
        self.faces = np.ascontiguousarray(faces, dtype=np.int64)
        self.vertex_part = np.asarray(vertex_part, dtype=np.int64)
        self.px = max(width, height) / 512.0
        self.extend_px = (EXTEND_PX * self.px) if extend_px is None else extend_px
        self.num_parts = max(int(self.vertex_part.max()) + 1, len(JOINT_NAMES))
        self.part_region = part_regions(self.num_parts)
        self.head_part = self.part_region[self.vertex_part] == HEAD
        # Parts that stand in for each other when a surface is taken from the photo of its other
        # side: the same part or a neighbour in the skeleton (front and back split the parts at
        # different heights: the back of the waist lies where the photo shows the front of the hips).
        # The last row and column are for "no part" (index -1).
        self.part_near = np.zeros((self.num_parts + 1, self.num_parts + 1), dtype=bool)
        self.part_near[np.arange(self.num_parts), np.arange(self.num_parts)] = True
        for child, parent in enumerate(PARENTS):
            if parent >= 0:
                self.part_near[child, parent] = self.part_near[parent, child] = True
        self.mirror = mirror
        self.camera = camera
        self.width, self.height = width, height
        # Per-source vertex attributes: own projection (u, v, z), the mirror vertex's, facing weight.
        self.attr = [
            np.concatenate([s.uvz, s.uvz[mirror], s.facing[:, None], s.facing[mirror, None]], axis=1)
            for s in sources
        ]
        self.rest = None if rest_vertices is None else np.asarray(rest_vertices, dtype=np.float64)
        self.fill = self._fill_colours()
        self._nearest_cache: dict[tuple[int, int], np.ndarray | None] = {}
        # The first photo's attributes carry the fill colour and fill coordinates along (one
        # interpolation per frame).
        self.attr[0] = np.concatenate([self.attr[0], self.fill, self.fill_uv], axis=1).astype(np.float32)

    def _fill_colours(self) -> np.ndarray:
        """Per-vertex fill colour (V, 3): the colour of the photo that saw the vertex most squarely
        (the first photo unless another is clearly better), spread within each body part to what no
        photo saw squarely, then across parts for a part no photo saw at all. Also `fill_uv` (V, 2):
        first-photo coordinates spread the same way (smoothly, so they sweep across the part's
        squarely seen surface): off the head, what the photo did not see squarely takes the texture
        of the same part where it did (the front of a sleeve for its back or its stretched side)."""
        from scipy import sparse

        quality = np.stack([s.quality - (0.3 if i else 0.0) for i, s in enumerate(self.sources)])
        best = quality.argmax(0)
        colour = np.stack([s.vertex_colour for s in self.sources])[best, np.arange(quality.shape[1])]
        known = quality.max(0) >= SEEN_FACING
        adjacency = _mesh_adjacency(self.faces, len(known))
        same = adjacency.tocoo()
        keep = self.vertex_part[same.row] == self.vertex_part[same.col]
        within = sparse.coo_matrix(
            (same.data[keep], (same.row[keep], same.col[keep])), shape=adjacency.shape
        ).tocsr()

        def spread(values: np.ndarray, have: np.ndarray, smooth: int) -> np.ndarray:
            out, reached = spread_colours(values, have, within, smooth)
            if not reached.all():
                out2, _ = spread_colours(out, reached, adjacency, smooth)
                out = np.where(reached[:, None], out, out2)
            return out

        first = self.sources[0]
        # A part the photo saw only obliquely (a forearm pointing at the camera) still has its best
        # seen vertices as texture source, rather than a couple of squarely seen ones.
        best_q = np.zeros(self.num_parts)
        np.maximum.at(best_q, self.vertex_part, first.quality)
        threshold = np.minimum(SEEN_FACING, 0.6 * best_q)[self.vertex_part]
        # Where the photos saw too little of a part squarely (under a tenth of it), its fill would
        # repeat a few pixels over the whole part: a stretched sample of the photo looks better.
        seen_share = np.bincount(
            self.vertex_part, weights=known.astype(float), minlength=self.num_parts
        ) / np.maximum(np.bincount(self.vertex_part, minlength=self.num_parts), 1)
        self.fill_ok = (seen_share >= 0.1)[self.vertex_part]
        self.fill_uv = spread(
            first.uvz[:, :2].astype(np.float64), (first.quality >= threshold) & (first.quality > 0.05), 100
        ).astype(np.float32)
        fill = spread(colour, known, 30)
        if self.rest is not None and self.head_part.any():
            # The back of the head: from the top of the head as the photos saw it (hair, or a bald
            # scalp), not from the face around it; blended in towards the back (rest pose: +Y up,
            # +Z forward), so that a turned cheek keeps the face's colours.
            head = self.head_part
            centre = self.rest[head].mean(0)
            size = max(float(np.ptp(self.rest[head, 2])), 1e-6)
            # (the crown is seen only obliquely in a photo from the front: any view of it will do)
            top = head & (quality.max(0) >= 0.08) & (self.rest[:, 1] > centre[1] + 0.3 * size)
            if top.any():
                top_fill = spread(colour, top | (known & ~head), 30)
                back = smoothstep((centre[2] - self.rest[:, 2]) / size, -0.1, 0.25)
                back = np.where(head & ~known, back, 0.0)[:, None]
                fill = back * top_fill + (1.0 - back) * fill
        return fill.astype(np.float32)

    def _other_side(
        self,
        si: int,
        own: np.ndarray,
        part_px: np.ndarray,
        facing: np.ndarray,
        head: np.ndarray,
        hidden: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The candidate "same part seen from its other side" in source `si` (not on the head): the
        photo's pixel where the point projects when the photo shows that part (or a skeleton
        neighbour) there, unhidden; for a surface facing away from the photo whose projection falls
        on something else (a hand hanging in front of the hips), the nearest pixel within
        BACK_REACH_PX that shows the part at least BACK_DETAIL_PX inside its outline (so that the back
        texture's filter does not mix in the hand). (Moving every back point that way snaps the
        texture into streaks along the parts' outlines.)"""
        src = self.sources[si]
        uv = own[:, :2].copy()
        ok = self.part_near[part_px, self._lookup(src.part, own, -1)] & ~head & ~hidden
        reach = ~ok & ~head & (facing < 0.05)
        if reach.any():
            u, v = np.rint(uv[:, 0]).astype(np.int64), np.rint(uv[:, 1]).astype(np.int64)
            reach &= (u >= 0) & (u < src.width) & (v >= 0) & (v < src.height)
            for part in np.unique(part_px[reach]):
                sel = np.flatnonzero(reach & (part_px == part))
                near = self._part_nearest(si, int(part))
                if near is None:
                    continue
                q = near[v[sel], u[sel]]
                qx, qy = q % src.width, q // src.width
                good = np.hypot(qx - u[sel], qy - v[sel]) <= (BACK_REACH_PX + BACK_DETAIL_PX) * self.px
                uv[sel[good], 0], uv[sel[good], 1] = qx[good], qy[good]
                ok[sel[good]] = True
        return ok, uv, facing, np.ones(len(uv), dtype=np.float32)

    def _part_nearest(self, si: int, part: int) -> np.ndarray | None:
        """Per pixel of source `si`, the flat index of the nearest pixel where the photo shows `part`
        or a skeleton neighbour of it, not covered by a limb of another region (cached: built once
        per source and part, when a back view first needs it)."""
        key = (si, part)
        if key not in self._nearest_cache:
            src = self.sources[si]
            shows = self.part_near[part][src.part]  # (-1, no part, is the last column: False)
            occ = src.occlusion
            if occ is not None:
                shows &= ~(occ.core & (occ.region >= 0) & (occ.region != self.part_region[part]))
            # Inside the part by the back texture's filter radius, so that the filter does not mix
            # in what lies beyond the part (the hands next to the hips).
            r = max(1, round(BACK_DETAIL_PX * max(src.width, src.height) / 512.0))
            inner = cv2.erode(
                shows.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
            ).astype(bool)
            shows = inner if inner.any() else shows
            self._nearest_cache[key] = _nearest(shows)[1].astype(np.int32) if shows.any() else None
        return self._nearest_cache[key]

    def window(self, vertices: np.ndarray) -> tuple[int, int, int, int] | None:
        """The output-frame window (x0, y0, x1, y1) holding the body plus the clothes margin."""
        uv, z = project(vertices, self.camera.K, self.camera.R, self.camera.t)
        uv = uv[z > 0]
        if not len(uv):
            return None
        m = self.extend_px + 2
        x0, y0 = np.floor(uv.min(0) - m).astype(int)
        x1, y1 = np.ceil(uv.max(0) + m).astype(int) + 1
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(self.width, x1), min(self.height, y1)
        if x1 <= x0 or y1 <= y0:
            return None
        return int(x0), int(y0), int(x1), int(y1)

    @staticmethod
    def _lookup(img: np.ndarray, uv: np.ndarray, fill) -> np.ndarray:
        u = np.rint(uv[:, 0]).astype(np.int64)
        v = np.rint(uv[:, 1]).astype(np.int64)
        h, w = img.shape[:2]
        inside = (u >= 0) & (u < w) & (v >= 0) & (v < h)
        out = np.full(len(uv), fill, dtype=img.dtype)
        out[inside] = img[v[inside], u[inside]]
        return out

    def _target_facing(self, vertices: np.ndarray, ras: Raster) -> np.ndarray:
        """Per covered pixel, how squarely the output camera sees the surface (flat per triangle;
        only the triangles in view are computed)."""
        tri = ras.tri[ras.mask]
        mark = np.zeros(len(self.faces), dtype=bool)
        mark[tri] = True
        seen = np.flatnonzero(mark)
        index = np.cumsum(mark) - 1
        inverse = index[tri]
        corners = np.asarray(vertices, dtype=np.float64)[self.faces[seen]]
        fn = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
        view = self.camera.centre[None, :] - corners.mean(1)
        cos = np.abs((fn * view).sum(1)) / np.maximum(
            np.linalg.norm(fn, axis=1) * np.linalg.norm(view, axis=1), 1e-12
        )
        return cos.astype(np.float32)[inverse]

    def flow(self, vertices: np.ndarray, roi: tuple[int, int, int, int]) -> dict[str, np.ndarray]:
        """Backward flow for one posed body over the window `roi`: `map_x`, `map_y` source
        coordinates, `source` index of the source photo used (-1: none), `body` mask, `hole` (body
        pixels no source showed: fill colour only), `part` (body part under the pixel; -2 - p for
        carried clothes hanging from part p; -1 elsewhere), `weight` (share of the photo's colour
        against `fill`, the fill colour (h, w, 3)), `facing` (how squarely the chosen photo saw it)."""
        x0, y0, x1, y1 = roi
        ras = self.rasterizer.render(
            vertices,
            self.faces,
            self.camera.K,
            self.camera.R,
            self.camera.t,
            self.width,
            self.height,
            roi=roi,
        )
        h, w = ras.tri.shape
        body = ras.mask
        n = int(body.sum())
        nearest_vertex = ras.vertex_of_max_weight()
        part_px = self.vertex_part[nearest_vertex]
        head_px = self.head_part[nearest_vertex]
        fill_ok_px = self.fill_ok[nearest_vertex]
        region_px = self.part_region[part_px]
        region_mir = self.part_region[self.vertex_part[self.mirror[nearest_vertex]]]
        tgt_facing = np.maximum(self._target_facing(vertices, ras), 0.05)
        best = np.full(n, -1, dtype=np.int64)
        best_uv = np.full((n, 2), np.nan, dtype=np.float32)
        best_score = np.full(n, -np.inf, dtype=np.float32)
        best_facing = np.zeros(n, dtype=np.float32)  # of the chosen point when it is itself seen
        best_weight = np.ones(n, dtype=np.float32)
        best_kind = np.full(n, -1, dtype=np.int8)
        # Ranked candidates: a visible point (2 + facing), its visible mirror image (1 + facing), the
        # same body part seen from behind (0 + facing; not on the head). The best score across sources
        # wins (a point one photo saw edge-on comes from another that saw it squarely); the photo's
        # colour is then blended into the fill by how much it would be stretched.
        for si, (src, attr) in enumerate(zip(self.sources, self.attr, strict=True)):
            vals = ras.interpolate(attr)
            if si == 0:
                fill_vals = vals[:, 8:]
            own, mir = vals[:, 0:3], vals[:, 3:6]
            ratio_own = np.minimum(vals[:, 6] / tgt_facing, 1.0)
            ratio_mir = np.minimum(vals[:, 7] / tgt_facing, 1.0)
            # (a point behind a limb the photo shows in front of it is not seen there, whatever the
            # fitted body's depth says)
            hidden_own = src.hidden_by_limb(own, region_px)
            seen_own = (own[:, 2] <= self._lookup(src.depth_vis, own, -np.inf) + VISIBILITY_EPS) & ~hidden_own
            candidates = (
                (seen_own, own[:, :2], 2.0 + vals[:, 6], ratio_own),
                (
                    (mir[:, 2] <= self._lookup(src.depth_vis, mir, -np.inf) + VISIBILITY_EPS)
                    & ~src.hidden_by_limb(mir, region_mir),
                    mir[:, :2],
                    1.0 + vals[:, 7],
                    ratio_mir,
                ),
                self._other_side(si, own, part_px, vals[:, 6], head_px, hidden_own),
            )
            if src.clean is not None:
                # A point a limb hid in this photo (the photo's limb or the fitted one over it): the
                # photo with that limb painted out, in place. On the trunk and head before the mirror
                # point (which lies under the same forearm more often than not), on a limb after it
                # (the other leg is the better guess), and for a surface that faced away from the
                # photo only before the same part seen from its other side.
                limb = self._lookup(src.clean_region, own, -1)
                ok = ~seen_own & (limb >= 0) & (limb != region_px)
                score = np.where(vals[:, 6] > 0.05, np.where(region_px <= HEAD, 1.65, 0.9), 0.5)
                candidates = candidates + ((ok, own[:, :2], score.astype(np.float32), ratio_own),)
            # Later photos only win clearly (by 0.3): a patchwork of photos with different light and
            # fit errors looks worse than one photo slightly less head-on.
            bias = 0.3 if si > 0 else 0.0
            for k, (ok, uv, score, ratio) in enumerate(candidates):
                score = score - bias
                take = ok & (score > best_score)
                best[take] = si
                best_uv[take] = uv[take]
                best_score[take] = score[take]
                best_facing[take] = vals[take, 6] if k == 0 else 0.0
                blend = smoothstep(ratio[take], STRETCH_BAD, STRETCH_OK)
                best_weight[take] = np.where(fill_ok_px[take], blend, 1.0)
                best_kind[take] = k
        map_x = np.full((h, w), np.nan, dtype=np.float32)
        map_y = np.full((h, w), np.nan, dtype=np.float32)
        source = np.full((h, w), -1, dtype=np.int16)
        map_x[body], map_y[body] = best_uv[:, 0], best_uv[:, 1]
        source[body] = best
        part = np.full((h, w), -1, dtype=np.int16)
        part[body] = part_px
        weight = np.zeros((h, w), dtype=np.float32)
        weight[body] = np.where(best >= 0, best_weight, 0.0)
        fill = np.zeros((h, w, 3), dtype=np.float32)
        fill[body] = fill_vals[:, 0:3]
        fill_x = np.full((h, w), -1e4, dtype=np.float32)
        fill_y = np.full((h, w), -1e4, dtype=np.float32)
        textured = body.copy()
        textured[body] = ~head_px
        fill_x[textured], fill_y[textured] = fill_vals[~head_px, 3], fill_vals[~head_px, 4]
        hole = body & (source < 0)
        self._carry(vertices, map_x, map_y, source, part, body, x0, y0)
        edge = self._edge(map_x, map_y, source, body)
        facing = np.zeros((h, w), dtype=np.float32)
        facing[body] = best_facing
        kind = np.full((h, w), -1, dtype=np.int8)
        kind[body] = best_kind
        return {
            "map_x": map_x,
            "map_y": map_y,
            "source": source,
            "body": body,
            "hole": hole,
            "part": part,
            "facing": facing,
            "weight": weight,
            "fill": fill,
            "fill_x": fill_x,
            "fill_y": fill_y,
            "textured": textured,
            "edge": edge,
            "candidate": kind,
        }

    def _edge(self, map_x: np.ndarray, map_y: np.ndarray, source: np.ndarray, body: np.ndarray) -> np.ndarray:
        """A thin ring just outside the body where no clothes were carried: the photo's pixels just
        outside the same surface point (the nearest body pixel's source plus the offset), so that
        the person's soft, anti-aliased outline comes along; the photo's matte there decides how
        much of it shows."""
        h, w = body.shape
        filled = body & (source >= 0)
        if not filled.any():
            return np.zeros_like(body)
        # The ring: pixels with a filled pixel within this radius (the nearest one lends its source).
        radius = max(1.0, 1.0 * self.px)
        r = int(np.floor(radius))
        grown = cv2.dilate(
            filled.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        ).astype(bool)
        ys, xs = np.nonzero(grown & ~body & (source < 0))
        n = _nearest_within(filled, ys, xs, radius)
        found = n >= 0
        ys, xs, n = ys[found], xs[found], n[found]
        ring = np.zeros_like(body)
        ring[ys, xs] = True
        ny, nx = np.divmod(n, w)
        map_x[ys, xs] = map_x.ravel()[n] + (xs - nx)
        map_y[ys, xs] = map_y.ravel()[n] + (ys - ny)
        source[ys, xs] = source.ravel()[n]
        return ring

    def _carry(
        self,
        vertices: np.ndarray,
        map_x: np.ndarray,
        map_y: np.ndarray,
        source: np.ndarray,
        part: np.ndarray,
        body: np.ndarray,
        x0: int,
        y0: int,
    ) -> None:
        """Splat the first photo's clothes and hair into the frame (where the body is not): each
        carried pixel goes where its anchor surface point goes plus its offset, turned and scaled
        as the anchor's body part turned (hair: rigidly with the head; cloth between two limbs:
        rigidly with the trunk). The maps hold, per covered output pixel, the source pixel it shows."""
        src = self.sources[0]
        if not len(src.carry_xy):
            return
        uv_t, z_t = project(
            np.asarray(vertices, dtype=np.float64), self.camera.K, self.camera.R, self.camera.t
        )
        lin, ms, md = part_similarities(
            src.uvz[:, :2].astype(np.float64),
            uv_t,
            self.vertex_part,
            self.num_parts,
            valid=(src.uvz[:, 2] > 0) & (z_t > 0),
        )
        xy = src.carry_xy.astype(np.float64)
        p = src.carry_part
        anchor_src = np.stack([src.carry_anchor % src.width, src.carry_anchor // src.width], 1)
        anchor_dst = np.einsum(
            "nc,ncd->nd", src.carry_bary.astype(np.float64), uv_t[self.faces[src.carry_tri]]
        )
        surf = anchor_dst + np.einsum("nij,nj->ni", lin[p], xy - anchor_src)
        rigid = np.einsum("nij,nj->ni", lin[p], xy - ms[p]) + md[p]
        on_head = JOINT_REGION[np.minimum(p, len(JOINT_REGION) - 1)] == HEAD
        pos = np.where(on_head[:, None], rigid, surf)
        if src.carry_trunk_rigid.any():
            region = np.zeros(self.num_parts, dtype=np.int64)
            region[: len(JOINT_REGION)] = JOINT_REGION
            lin_r, ms_r, md_r = part_similarities(
                src.uvz[:, :2].astype(np.float64),
                uv_t,
                region[self.vertex_part],
                NUM_REGIONS,
                valid=(src.uvz[:, 2] > 0) & (z_t > 0),
            )
            sel = src.carry_trunk_rigid
            pos[sel] = (xy[sel] - ms_r[TRUNK]) @ lin_r[TRUNK].T + md_r[TRUNK]
        h, w = body.shape
        main = lin[p]
        det = np.maximum(main[:, 0, 0] ** 2 + main[:, 1, 0] ** 2, 1e-9)
        inv = (
            np.stack(
                [np.stack([main[:, 0, 0], main[:, 1, 0]], -1), np.stack([-main[:, 1, 0], main[:, 0, 0]], -1)],
                -2,
            )
            / det[:, None, None]
        )
        got_x = np.full((h, w), np.nan, dtype=np.float32)
        got_y = np.full((h, w), np.nan, dtype=np.float32)
        got_p = np.full((h, w), -1, dtype=np.int16)
        fx, fy = pos[:, 0] - x0, pos[:, 1] - y0
        for dx in (0, 1):
            for dy in (0, 1):
                qx, qy = np.floor(fx).astype(np.int64) + dx, np.floor(fy).astype(np.int64) + dy
                ok = (qx >= 0) & (qx < w) & (qy >= 0) & (qy < h)
                off = np.stack([qx - fx, qy - fy], 1)
                s = xy + np.einsum("nij,nj->ni", inv, off)
                got_x[qy[ok], qx[ok]] = s[ok, 0]
                got_y[qy[ok], qx[ok]] = s[ok, 1]
                got_p[qy[ok], qx[ok]] = p[ok]
        covered = np.isfinite(got_x)
        if not covered.any():
            return
        # Close pinholes where the clothes were stretched: the nearest splatted pixel's source.
        closed = cv2.morphologyEx(
            covered.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8)
        ).astype(bool)
        gaps = closed & ~covered
        if gaps.any():
            gy, gx = np.nonzero(gaps)
            near = _nearest_within(covered, gy, gx, np.sqrt(2.0))  # a 3x3 closing: a neighbour is set
            got_x[gy, gx] = got_x.ravel()[near]
            got_y[gy, gx] = got_y.ravel()[near]
            got_p[gy, gx] = got_p.ravel()[near]
        sel = closed & ~body
        map_x[sel], map_y[sel] = got_x[sel], got_y[sel]
        source[sel] = 0
        part[sel] = -2 - got_p[sel]

    def warp(self, vertices: np.ndarray) -> Warped | None:
        """Warp the sources onto the posed body; None when the body is entirely out of view."""
        roi = self.window(vertices)
        if roi is None:
            return None
        fl = self.flow(vertices, roi)
        body = fl["body"]
        h, w = body.shape
        rgb = fl["fill"].copy()
        # Off the head, the fill takes the first photo's texture of the same part where it saw it squarely.
        tex = fl["textured"]
        if tex.any():
            first = self.sources[0]
            sampled = cv2.remap(
                first.bled, fl["fill_x"], fl["fill_y"], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
            ).astype(np.float32)
            if first.clean is not None:
                # Where the fill texture reaches under a limb that hid this surface in the photo, the
                # photo with that limb painted out (the limb's own fill keeps the limb).
                limb = self._lookup(
                    first.clean_region, np.stack([fl["fill_x"][tex], fl["fill_y"][tex]], 1), -1
                )
                clean = np.zeros_like(tex)
                clean[tex] = (limb >= 0) & (limb != self.part_region[np.maximum(fl["part"][tex], 0)])
                if clean.any():
                    other = cv2.remap(
                        first.clean,
                        fl["fill_x"],
                        fl["fill_y"],
                        cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_REPLICATE,
                    ).astype(np.float32)
                    sampled[clean] = other[clean]
            rgb[tex] = sampled[tex]
        alpha = np.zeros((h, w), dtype=np.float32)
        alpha[fl["hole"]] = 1.0
        for si, src in enumerate(self.sources):
            sel = fl["source"] == si
            if not sel.any():
                continue
            mx = np.where(sel, fl["map_x"], -1e4).astype(np.float32)
            my = np.where(sel, fl["map_y"], -1e4).astype(np.float32)
            col = cv2.remap(src.bled, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(
                np.float32
            )
            back = sel & (fl["candidate"] == 2)
            if back.any():  # the same part seen from its other side: without the front's details
                col[back] = cv2.remap(src.back, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)[
                    back
                ]
            painted = sel & (fl["candidate"] == 3)
            if painted.any():  # what a limb hid in this photo, from the photo with the limb painted out
                col[painted] = cv2.remap(
                    src.clean, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
                )[painted]
            a = cv2.remap(src.mask_trim, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
            edge = sel & fl["edge"]
            off_body = sel & ~body & ~edge
            if edge.any():
                a_edge = cv2.remap(src.mask_edge, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
                a[edge] = a_edge[edge]
                rgb[edge] = col[edge]
            if off_body.any():
                a_off = cv2.remap(src.mask_off, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
                a_off[~off_body] = 0.0
                # No specks: pieces of a few dozen pixels (at 512) are sampling noise.
                solid = (a_off > 0.3).astype(np.uint8)
                count, labels = cv2.connectedComponents(solid, connectivity=8)
                if count > 1:
                    keep = np.bincount(labels.ravel(), minlength=count) >= 1e-4 * self.width * self.height
                    keep[0] = False
                    a_off *= keep[labels]
                a[off_body] = a_off[off_body]
            on = sel & body
            wt = fl["weight"][on][:, None]
            rgb[on] = wt * col[on] + (1.0 - wt) * rgb[on]
            rgb[off_body] = col[off_body]
            alpha[sel] = a[sel]
        # Inside the body the pixel is the person whatever the photo's matte says there (a turned limb
        # shows surface that sat at the photo's outline); only a thin band along the body's outline
        # takes the matte, which trims a fitted body that is wider than the person.
        band = max(2, int(round(4 * self.px)))
        interior = cv2.erode(
            body.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band + 1, 2 * band + 1))
        )
        alpha[interior.astype(bool)] = 1.0
        # In the band, the photo's matte is only trusted where the photo saw the surface squarely; a
        # point it saw edge-on sat on its outline, where the matte is half background.
        band_px = body & ~interior.astype(bool)
        alpha[band_px] = np.maximum(alpha[band_px], np.clip(1.0 - fl["facing"][band_px] / 0.35, 0.0, 1.0))
        # Close thin gaps between the body and the clothes carried beside it (a slightly misplaced fit
        # leaves a seam of a pixel or two that would show the background through the person).
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
        alpha = np.maximum(alpha, cv2.morphologyEx(alpha, cv2.MORPH_CLOSE, kernel))
        unset = (fl["source"] < 0) & ~body & (alpha > 0)  # gap pixels the closing made opaque
        if unset.any():
            rgb = cv2.inpaint(
                np.clip(rgb, 0, 255).astype(np.uint8), unset.astype(np.uint8), 5, cv2.INPAINT_TELEA
            ).astype(np.float32)
        return Warped(rgb=rgb, alpha=alpha, x0=roi[0], y0=roi[1], flow=fl)
