"""One source photo prepared for the transformation flow (`SourceView`): its posed body's projection,
depth buffer and body-part map, how squarely it saw each vertex and the colour there, the person
pixels off the body (clothes, hair) with the surface points they hang from, and the limbs the photo
shows in front of the body (`limb_occluders`), painted out where they hide another surface."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vmclip.geometry import DEPTH_TOLERANCE, Camera, face_normals, facing, project, vertex_normals
from vmclip.motion.skeleton import JOINT_NAMES
from vmclip.render.hands import unseen_hands
from vmclip.render.raster import Raster, Rasterizer
from vmclip.render.regions import JOINT_REGION, NUM_REGIONS, TRUNK, part_regions
from vmclip.render.skirt import Skirt, find_skirt, skirt_cloth

# Person pixels farther than this from the fitted body (pixels at 512) are not carried (stray matte).
CARRY_MAX_PX = 110.0
# Cloth shared by two limbs hangs from the trunk when the trunk is this near (pixels at 512).
TRUNK_REACH_PX = 45.0
# Hands and feet carry person pixels only this far beyond them (pixels at 512).
SHORT_REACH_PX = 6.0
# Cloth between two limbs narrower than twice this (pixels at 512) is no cloth (`_prepare_carried`).
BETWEEN_MIN_PX = 4.0
# Details smaller than about this (pixels at 512, the median filter's radius) are left out of the
# front's texture where it stands in for the back.
BACK_DETAIL_PX = 7.0


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
# Within a photo's upper arm or forearm capsule, a pixel whose colour is within ARM_COLOUR grey levels
# (per channel) of the arm's own along its axis (median-filtered over ARM_AXIS_MEDIAN pixels at 512)
# and clearly not the trunk's most common colour (further than ARM_OWN, and not it in shade), joined
# through such pixels to the axis (within ARM_AXIS_PX of it), is the arm, whatever the fitted depth
# says, and so is its outline (ARM_EDGE pixels around, not the trunk's colour). Only where the trunk
# has a garment colour: its most common colour (within a coarse bin) covers ARM_OWN_SHARE of it (a
# smooth rainbow or a busy print has none, and its pixels beside the arm may be the arm's colour).
# Skin beside a dark shirt differs by over 100.
ARM_COLOUR = 30.0
ARM_AXIS_MEDIAN = 3
ARM_OWN = 60.0
ARM_AXIS_PX = 2.0
ARM_EDGE = 3.0
ARM_OWN_SHARE = 0.3


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


def nearest(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance to and flat index of the nearest pixel of `mask`, for every pixel."""
    dist, labels = cv2.distanceTransformWithLabels(
        (~mask).astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
    )
    idx = np.flatnonzero(mask.ravel())
    return dist, idx[labels.ravel() - 1].reshape(mask.shape)


def nearest_within(mask: np.ndarray, ys: np.ndarray, xs: np.ndarray, radius: float) -> np.ndarray:
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


def segment_distance(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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
    arm: np.ndarray | None = None  # (H, W) bool: the photo shows an arm there over the trunk


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
    image: np.ndarray | None = None,
    mask: np.ndarray | None = None,
) -> LimbOcclusion:
    """Where a photo shows a limb in front of the body, from the photo's own keypoints: a fitted limb
    is often a few pixels off the real one; the surface the fit puts beside its limb (the shirt just
    above a forearm held across the waist) would take the real sleeve's pixels, and the fitted limb
    would hide surface the photo shows.

    Every limb segment whose two joints were detected is drawn as a capsule along the detected joints
    (`keypoints` (24, 3): x, y, confidence in this photo's pixels), as wide as the fitted limb there;
    its depth runs along the fitted limb's axis (`joints` (24, 3) world, posed as in the photo).
    `raster`: the full body's render in this photo, when already made. With the photo's `image` and
    person `mask`, also where its arms show over the trunk whatever the fitted depth says (`arm`)."""
    vertices = np.asarray(vertices, dtype=np.float64)
    kp = np.asarray(keypoints, dtype=np.float64)
    segments = _limb_segments(kp, np.asarray(joints, dtype=np.float64), vertices, vertex_part, camera)
    drawn = _draw_limbs(kp, segments, width, height)
    behind = np.zeros((height, width), dtype=bool)
    unveiled = np.full((height, width), -1, dtype=np.int8)
    unveiled_depth = np.full((height, width), np.inf, dtype=np.float32)
    if not segments:
        return LimbOcclusion(drawn.region, drawn.region >= 0, drawn.depth, behind, unveiled, unveiled_depth)
    if raster is None:
        raster = rasterizer.render(vertices, faces, camera.K, camera.R, camera.t, width, height)
    part_regions_ = part_regions(int(vertex_part.max()) + 1)
    front_part = np.full((height, width), -1, dtype=np.int64)
    front_part[raster.mask] = vertex_part[raster.vertex_of_max_weight()]
    limb_parts = np.zeros(len(part_regions_), dtype=bool)
    limb_parts[[q for seg in segments for q in seg.parts]] = True
    face_region = part_regions_[vertex_part][faces]
    normal = face_normals(vertices, faces)
    towards = camera.centre[None, :] - vertices[faces].mean(1)
    front = (normal * towards).sum(1) > 0
    for g in np.unique(JOINT_REGION[[seg.joint for seg in segments]]):
        # The body without this limb: which surface lies behind the limb (its inside, seen through
        # the hole the limb leaves, faces away from the camera and does not count).
        keep = ~(face_region == g).all(1)
        ras = rasterizer.render(vertices, faces[keep], camera.K, camera.R, camera.t, width, height)
        surface = np.zeros((height, width), dtype=bool)
        surface[ras.mask] = front[keep][ras.tri[ras.mask]]
        behind |= (drawn.region == g) & surface & (ras.depth > drawn.depth)
        # The fitted limb in front where the photo shows none of it: the photo shows what is behind.
        off = (
            (front_part >= 0)
            & limb_parts[np.maximum(front_part, 0)]
            & (part_regions_[np.maximum(front_part, 0)] == g)
            & ~drawn.covered[g]
            & surface
            & (ras.depth > raster.depth + DEPTH_TOLERANCE)
        )
        unveiled[off] = g
        unveiled_depth[off] = ras.depth[off]
    arm = None
    if image is not None and mask is not None:
        shown = np.where(front_part >= 0, part_regions_[np.maximum(front_part, 0)], -1)
        arm = arm_pixels(np.asarray(image)[..., :3], np.asarray(mask) >= 0.5, kp, drawn.region, shown)
    return LimbOcclusion(drawn.region, drawn.core, drawn.depth, behind, unveiled, unveiled_depth, arm)


def hidden_by_limb(
    occ: LimbOcclusion, uvz: np.ndarray, region: np.ndarray, at: np.ndarray | None = None
) -> np.ndarray:
    """Whether points (N, 3: photo u, v, depth) of body regions `region` (N,) are not what the photo
    shows at their pixel although the fitted body's depth says so: behind a limb of another region
    that the photo shows there, or on a fitted limb where the photo shows no such limb. `at`: the
    points' `pixel_index` in the photo, when already known."""
    h, w = occ.region.shape
    if at is None:
        at = pixel_index(uvz, w, h)
    inside = np.flatnonzero(at >= 0)
    q, g = at[inside], region[inside]
    limb = occ.region.ravel()[q]
    hidden = np.zeros(len(uvz), dtype=bool)
    hidden[inside] = (
        (limb >= 0) & (limb != g) & occ.core.ravel()[q] & (uvz[inside, 2] > occ.depth.ravel()[q])
    ) | (occ.unveiled.ravel()[q] == g)
    if occ.arm is not None:
        hidden[inside] |= occ.arm.ravel()[q] & (g == TRUNK)
    return hidden


ARM_REGIONS = tuple(int(r) for r in np.unique(JOINT_REGION[[_J("left_shoulder"), _J("right_shoulder")]]))
LEG_REGIONS = tuple(int(r) for r in np.unique(JOINT_REGION[[_J("left_hip"), _J("right_hip")]]))


def arm_pixels(
    image: np.ndarray, person: np.ndarray, keypoints: np.ndarray, limb_region: np.ndarray, shown: np.ndarray
) -> np.ndarray:
    """(H, W) bool: where the photo shows an upper arm or forearm, whatever the fitted depth says. A
    fitted arm often hangs a little behind or beside the real one, and the trunk's side there took
    the arm's skin (in the atlas, and so round the back, and in the re-posed frames). The arm's
    pixels: within its capsule (`limb_region`, as `_draw_limbs` drew it; on the `person`), of the
    arm's own colour along its axis nearby and not the trunk's most common colour (among the pixels
    off the capsules where the fitted body, `shown` (H, W: its region in front, -1: none), shows its
    trunk), joined to the axis through such pixels (a print beside the arm is not joined); and the
    outline around them, whose pixels blend the arm and the shirt. None where the trunk has no
    garment colour (ARM_OWN_SHARE)."""
    from vmclip.person.texture import colour_histogram

    h, w = person.shape
    capsule = np.isin(limb_region, ARM_REGIONS) & person
    free = (shown == TRUNK) & person & (limb_region < 0)
    out = np.zeros((h, w), dtype=bool)
    if not capsule.any() or free.sum() < 20:
        return out
    scale = max(h, w) / 512.0
    # The trunk's own colour: the most common among its pixels off the limbs, as their median.
    free_colour = image[free].astype(np.float32)
    q = (free_colour // 32).astype(np.int64)
    hist = colour_histogram(q @ np.array([64, 8, 1]))
    common = (np.abs(q - np.unravel_index(hist.argmax(), hist.shape)) <= 1).all(1)
    if common.mean() < ARM_OWN_SHARE:
        return out
    own = np.median(free_colour[common], 0)
    ys, xs = np.nonzero(capsule)
    colour = image[ys, xs].astype(np.float32)
    differs, off_axis = _off_arm_colour(image, np.stack([xs, ys], 1).astype(np.float64), colour, keypoints)
    arm_like = (differs <= ARM_COLOUR) & _not_own(colour, own)
    like = np.zeros((h, w), np.uint8)
    like[ys[arm_like], xs[arm_like]] = 1
    _, labels = cv2.connectedComponents(like, connectivity=8)
    axis = arm_like & (off_axis <= ARM_AXIS_PX * scale)
    out = np.isin(labels, np.unique(labels[ys[axis], xs[axis]])) & (like > 0)
    r = max(1, round(ARM_EDGE * scale))
    edge = cv2.dilate(out.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1,) * 2))
    edge = edge.astype(bool)
    edge[edge] = capsule[edge] & _not_own(image[edge].astype(np.float32), own)
    return out | edge


def _off_arm_colour(
    image: np.ndarray, pts: np.ndarray, colour: np.ndarray, keypoints: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel `pts` (N, 2) of colour `colour` (N, 3): how far (grey levels, per channel) it is from
    the colour of the nearest upper arm's or forearm's axis (between the photo's joints `keypoints`)
    nearby, and how far (pixels) it lies from that axis; inf where no arm was detected. The axis's
    colour goes through a median (a seam or a shadow line is not the arm's colour) and is taken as
    far either way along as the pixel is off the axis (a sleeve's hem slants across)."""
    from vmclip.person.texture import sample

    k = 2 * max(1, round(ARM_AXIS_MEDIAN * max(image.shape[:2]) / 512.0)) + 1
    smooth = cv2.medianBlur(np.ascontiguousarray(image), k).astype(np.float32)
    differs = np.full(len(pts), np.inf)
    best = np.full(len(pts), np.inf)
    for a, b, _, _ in LIMB_SEGMENTS:
        # (upper arms and forearms: a hand's segment reaches past the knuckles, over what it holds)
        if JOINT_REGION[a] not in ARM_REGIONS or JOINT_NAMES[a].endswith("wrist"):
            continue
        if min(keypoints[a, 2], keypoints[b, 2]) < KEYPOINT_MIN_CONF:
            continue
        pa, pb = keypoints[a, :2], keypoints[b, :2]
        d, t = segment_distance(pts, pa, pb)
        near = d < best
        along = (pb - pa) / max(float(np.linalg.norm(pb - pa)), 1e-6)
        foot = pa + t[near, None] * (pb - pa)
        differs[near] = np.min(
            [
                np.abs(colour[near] - sample(smooth, foot + f * d[near, None] * along)).max(1)
                for f in (-1.0, 0.0, 1.0)
            ],
            axis=0,
        )
        best[near] = d[near]
    return differs, best


def _not_own(colour: np.ndarray, own: np.ndarray) -> np.ndarray:
    """Whether colours (N, 3) are clearly not the garment's `own` (3,): further than ARM_OWN grey levels
    in some channel, and not it in shade or light (the atlas's test: a sleeve's fold is the shirt)."""
    from vmclip.person.texture import SHADE_CHROMA, SHADE_RATIO

    total, own_total = colour.sum(1) + 1.0, float(own.sum()) + 1.0
    ratio = total / own_total
    chroma = np.abs(colour / total[:, None] - own[None] / own_total).max(1)
    shade = (ratio >= SHADE_RATIO) & (ratio <= 1.0 / SHADE_RATIO) & (chroma < SHADE_CHROMA)
    return (np.abs(colour - own[None]).max(1) > ARM_OWN) & ~shade


def off_own_segment(
    keypoints: np.ndarray,
    joints: np.ndarray,
    vertices: np.ndarray,
    vertex_part: np.ndarray,
    camera: Camera,
    uv: np.ndarray,
    part: np.ndarray,
    width: int,
    height: int,
) -> np.ndarray:
    """Whether points (photo pixels `uv` (N, 2), of body parts `part` (N,)) of a limb segment the
    photo's keypoints show lie outside that segment's capsule as the photo shows it (its width and a
    margin as in `limb_occluders`): the photo shows something else there."""
    out = np.zeros(len(uv), dtype=bool)
    margin = 2.0 * max(width, height) / 512.0
    kp = np.asarray(keypoints, dtype=np.float64)
    for seg in _limb_segments(
        kp, np.asarray(joints, np.float64), np.asarray(vertices, np.float64), vertex_part, camera
    ):
        sel = np.flatnonzero(np.isin(part, seg.parts))
        if not len(sel):
            continue
        pa = kp[seg.joint, :2]
        pb = kp[seg.child, :2] + seg.beyond * (kp[seg.child, :2] - pa)
        out[sel[segment_distance(uv[sel], pa, pb)[0] > seg.radius_px + margin]] = True
    return out


@dataclass
class _LimbSegment:
    """A limb segment the photo's keypoints show: its joints (a, b) and how far it goes on beyond b,
    the parts it covers, its fitted width (pixels in the photo, metres) and its joints' depth."""

    near_depth: float
    joint: int
    child: int
    beyond: float
    parts: tuple[int, ...]
    radius_px: float
    radius_m: float
    depth_a: float
    depth_b: float


def _limb_segments(
    kp: np.ndarray, joints: np.ndarray, vertices: np.ndarray, vertex_part: np.ndarray, camera: Camera
) -> list[_LimbSegment]:
    """The limb segments whose two joints the photo's keypoints show (in front of the camera), each
    as wide as the fitted limb: its vertices' distance from its axis."""
    uv_j, z_j = project(joints, camera.K, camera.R, camera.t)
    uv_v, _ = project(vertices, camera.K, camera.R, camera.t)
    segments = []
    for a, b, beyond, parts in LIMB_SEGMENTS:
        sel = np.isin(vertex_part, parts)
        if min(kp[a, 2], kp[b, 2]) < KEYPOINT_MIN_CONF or sel.sum() < 10 or min(z_j[a], z_j[b]) <= 0:
            continue
        end_px = uv_j[b] + beyond * (uv_j[b] - uv_j[a])
        end_m = joints[b] + beyond * (joints[b] - joints[a])
        r_px = float(np.percentile(segment_distance(uv_v[sel], uv_j[a], end_px)[0], 75))
        r_m = float(np.percentile(segment_distance(vertices[sel], joints[a], end_m)[0], 75))
        segments.append(
            _LimbSegment(min(z_j[a], z_j[b]), a, b, beyond, parts, max(r_px, 1.0), r_m, z_j[a], z_j[b])
        )
    return segments


@dataclass
class _DrawnLimbs:
    """The photo's limbs drawn as capsules: per pixel the nearest limb's region (with a margin for a
    sleeve wider than the fit; -1: none), `core` (without the margin), the depth beyond which it hides
    another region, and per region where its limb is (`covered`, with the margin)."""

    region: np.ndarray
    core: np.ndarray
    depth: np.ndarray
    covered: np.ndarray


def _draw_limbs(kp: np.ndarray, segments: list[_LimbSegment], width: int, height: int) -> _DrawnLimbs:
    region = np.full((height, width), -1, dtype=np.int8)
    core = np.zeros((height, width), dtype=bool)
    depth = np.full((height, width), np.inf, dtype=np.float32)
    covered = np.zeros((NUM_REGIONS, height, width), dtype=bool)
    margin = 2.0 * max(width, height) / 512.0
    # Far limbs first: where two overlap, the nearer one is drawn last and wins.
    for seg in sorted(segments, key=lambda seg: -seg.near_depth):
        a, beyond = seg.joint, seg.beyond
        pa = kp[a, :2]
        pb = kp[seg.child, :2] + beyond * (kp[seg.child, :2] - pa)
        reach = seg.radius_px + margin
        x0, y0 = np.floor(np.minimum(pa, pb) - reach - 1).astype(int)
        x1, y1 = np.ceil(np.maximum(pa, pb) + reach + 2).astype(int)
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
        if x1 <= x0 or y1 <= y0:
            continue
        ys, xs = np.mgrid[y0:y1, x0:x1]
        d, t = segment_distance(np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float64), pa, pb)
        d = d.reshape(xs.shape)
        z = (
            seg.depth_a + t * (1.0 + beyond) * (seg.depth_b - seg.depth_a) + BEHIND_LIMB * seg.radius_m
        ).reshape(xs.shape)
        inside = (d <= reach) & (z < depth[y0:y1, x0:x1])
        region[y0:y1, x0:x1][inside] = JOINT_REGION[a]
        core[y0:y1, x0:x1][inside] = d[inside] <= seg.radius_px
        depth[y0:y1, x0:x1][inside] = z[inside]
        covered[JOINT_REGION[a], y0:y1, x0:x1] |= d <= reach
    return _DrawnLimbs(region, core, depth, covered)


def arm_map(part: np.ndarray, region_of_part: np.ndarray, occ: LimbOcclusion | None) -> np.ndarray:
    """(H, W) int8: the arm region a photo shows at each pixel (-1: none), from the fitted body's
    part map `part` (H, W; -1 off the body) and, with the photo's joints, its own arms (`occ`)."""
    region = np.where(part >= 0, region_of_part[np.maximum(part, 0)], -1)
    arm = np.where(np.isin(region, ARM_REGIONS), region, -1)
    if occ is not None:
        arm = np.where(occ.core & np.isin(occ.region, ARM_REGIONS), occ.region, arm)
        if occ.arm is not None:
            arm = np.where(occ.arm & (arm < 0), ARM_REGIONS[0], arm)
    return arm.astype(np.int8)


def photo_skirt(
    image: np.ndarray,
    mask: np.ndarray,
    arms: np.ndarray,
    camera: Camera,
    vertices: np.ndarray,
    vertex_part: np.ndarray,
    joints: np.ndarray,
) -> Skirt | None:
    """`find_skirt` for a photo whose arms (`arm_map` >= 0) end the cloth's runs."""
    region_of_part = part_regions(int(np.max(vertex_part)) + 1)
    lower = np.isin(region_of_part[vertex_part], (TRUNK, *LEG_REGIONS))
    return find_skirt(image, mask, arms, camera, vertices, lower, vertex_part, joints)


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


def pixel_index(uv: np.ndarray, width: int, height: int) -> np.ndarray:
    """Flat (row-major) index of the pixel nearest to each point uv (N, 2) of a width x height image,
    -1 where the point is off it: worked out once for several look-ups at the same points."""
    u = np.rint(uv[:, 0]).astype(np.int64)
    v = np.rint(uv[:, 1]).astype(np.int64)
    return np.where((u >= 0) & (u < width) & (v >= 0) & (v < height), v * width + u, -1)


def lookup(img: np.ndarray, uv: np.ndarray, fill, at: np.ndarray | None = None) -> np.ndarray:
    """Values of `img` at the pixels nearest to points uv (N, 2); `fill` where a point is off it.
    `at`: the points' `pixel_index` in `img`, when already known."""
    h, w = img.shape[:2]
    if at is None:
        at = pixel_index(uv, w, h)
    inside = at >= 0
    out = np.full(len(at), fill, dtype=img.dtype)
    out[inside] = img.reshape(h * w, *img.shape[2:])[at[inside]]
    return out


def wide_parts(ys: np.ndarray, xs: np.ndarray, shape: tuple[int, int], px: float) -> np.ndarray:
    """(H, W) bool of `shape`: the pixels (`ys`, `xs`) that lie in parts of them at least
    2 BETWEEN_MIN_PX (at 512; `px` pixels per pixel at 512) wide (a morphological opening)."""
    pixels = np.zeros(shape, np.uint8)
    pixels[ys, xs] = 1
    r = max(1, round(BETWEEN_MIN_PX * px))
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return cv2.morphologyEx(pixels, cv2.MORPH_OPEN, disk).astype(bool)


class SourceView:
    """One source photo with its posed body, prepared once: vertex projections, depth buffer, body
    part map, how squarely each vertex was seen and its colour there, and the person pixels off the
    body with the surface points they hang from. With the photo's `keypoints` (SMPL-24 (24, 3): x, y,
    confidence) and the fitted `joints` (24, 3), a limb the photo shows in front of the body also
    hides what lies behind it where the fit put its limb a little off (see `limb_occluders`); `seed`
    drives PatchMatch's random search where such a limb is painted out. With the person's
    `skin_tone` (`vmclip.render.hands.skin_tone`), a fitted hand the photo does not show (in a
    pocket, behind a phone) is not taken from it (`unseen_hands`)."""

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
        skin_tone: np.ndarray | None = None,
    ) -> None:
        h, w = image.shape[:2]
        px = max(h, w) / 512.0
        faces = np.asarray(faces, dtype=np.int64)
        vertex_part = np.asarray(vertex_part, dtype=np.int64)
        self.image = np.ascontiguousarray(image[..., :3], dtype=np.uint8)
        mask = np.clip(np.asarray(mask, dtype=np.float32), 0.0, 1.0)
        self._prepare_images(mask, px)
        self.camera = camera
        self.width, self.height = w, h
        self.vertices = np.asarray(vertices, dtype=np.float64)  # the body posed as in the photo
        uv, z = project(vertices, camera.K, camera.R, camera.t)
        self.uvz = np.concatenate([uv, z[:, None]], axis=1).astype(np.float32)
        cos = facing(vertices, vertex_normals(vertices, faces), camera)
        self.facing = np.clip(cos, 0.0, 1.0).astype(np.float32)
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
            self.occlusion = limb_occluders(
                rasterizer, keypoints, joints, vertices, faces, vertex_part, camera, w, h,
                raster=self.raster, image=self.image, mask=mask,
            )  # fmt: skip
            self._apply_occlusion(self.occlusion, mask, px, seed)
        body = self.raster.mask
        part = np.full((h, w), -1, dtype=np.int16)
        part[body] = vertex_part[self.raster.vertex_of_max_weight()]
        self.part = part
        self.skirt = None if joints is None else self._find_skirt(vertices, vertex_part, joints, px, seed)
        # The skirt's cloth where the photo shows it (its rows, its colour): never an arm's surface (a
        # hand holding the hem takes the cloth's colour where the fitted hand lies over it).
        self.skirt_cloth = None
        if self.skirt is not None:
            self.skirt_cloth = skirt_cloth(self.image, self.mask, self.skirt)
        # The fitted hands that lie over something else than skin of the person's tone (a pocket, a
        # held phone): not what the photo shows (see `vmclip.render.hands`).
        self.unseen_hands = unseen_hands(self.image, self.mask, self.part, skin_tone)
        self._prepare_vertex_colours(uv, z, vertex_part, px)
        self._prepare_carried(body, part, px)

    def _find_skirt(
        self, vertices: np.ndarray, vertex_part: np.ndarray, joints: np.ndarray, px: float, seed: int
    ) -> Skirt | None:
        """The photo's skirt or dress as a shell around the hips and legs (see `find_skirt`); where an
        arm hangs in front of it, the photo with the arm painted out of the skirt (`clean`, and the
        back texture there)."""
        arm = arm_map(self.part, self.region_of_part, self.occlusion)
        blocked = arm >= 0
        skirt = photo_skirt(self.image, self.mask, blocked, self.camera, vertices, vertex_part, joints)
        if skirt is not None and skirt.under_arm.any():
            # (the arm's soft outline too: a pixel or two of the cloth around it, lent the arm's region)
            grow = np.ones((5, 5), np.uint8)
            under = cv2.dilate(skirt.under_arm.astype(np.uint8), grow).astype(bool) & (self.mask >= 0.5)
            arm_near = cv2.dilate((arm + 1).astype(np.uint8), grow).astype(np.int8) - 1
            painted = paint_out(self.bled, under, (self.mask < 0.5) | blocked, px, seed)
            self.clean = painted if self.clean is None else np.where(under[..., None], painted, self.clean)
            self.clean_region = np.where(under, arm_near, self.clean_region).astype(np.int8)
            k = 2 * round(BACK_DETAIL_PX * px) + 1
            self.back = np.where(
                skirt.footprint[..., None] | under[..., None], cv2.medianBlur(painted, k), self.back
            )
        return skirt

    def _prepare_images(self, mask: np.ndarray, px: float) -> None:
        """The photo's mattes, the photo bled outwards, and its back texture."""
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

    def _apply_occlusion(self, occ: LimbOcclusion, mask: np.ndarray, px: float, seed: int) -> None:
        """The photo's limbs in front of the body: the depth test sees through a fitted limb where the
        photo shows none, and the limbs that hide another surface are painted out of the photo."""
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

    def _prepare_vertex_colours(
        self, uv: np.ndarray, z: np.ndarray, vertex_part: np.ndarray, px: float
    ) -> None:
        """How squarely each vertex was seen (`quality`, 0 where hidden), and the (slightly blurred)
        photo colour there (`vertex_colour`): the raw material of the fill colour."""
        h, w = self.height, self.width
        ui, vi = np.rint(uv[:, 0]).astype(np.int64), np.rint(uv[:, 1]).astype(np.int64)
        inside = (ui >= 0) & (ui < w) & (vi >= 0) & (vi < h) & (z > 0)
        visible = np.zeros(len(uv), dtype=bool)
        visible[inside] = z[inside] <= self.depth_vis[vi[inside], ui[inside]] + DEPTH_TOLERANCE
        visible &= ~self.hidden_by_limb(self.uvz, self.region_of_part[vertex_part])
        visible &= ~np.isin(vertex_part, self.unseen_hands)
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

    def hidden_by_limb(self, uvz: np.ndarray, region: np.ndarray, at: np.ndarray | None = None) -> np.ndarray:
        """Whether points (N, 3: source u, v, depth) of body regions `region` (N,) are not what the
        photo shows at their pixel although the fitted body's depth says so: behind a limb of another
        region that the photo shows there, or on a fitted limb where the photo shows no such limb, or
        an arm's point where the photo shows the skirt's cloth (a hand the photo does not show:
        `unseen_hands`). `at`: the points' `pixel_index` in the photo, when already known."""
        hidden = np.zeros(len(uvz), dtype=bool)
        if self.occlusion is not None:
            hidden = hidden_by_limb(self.occlusion, uvz, region, at)
        if self.skirt_cloth is not None:
            if at is None:
                at = pixel_index(uvz, self.width, self.height)
            inside = np.flatnonzero(at >= 0)
            hidden[inside] |= self.skirt_cloth.ravel()[at[inside]] & np.isin(region[inside], ARM_REGIONS)
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
        if self.skirt is not None:  # the skirt's shell shows that cloth
            carried &= ~self.skirt.footprint
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
                d, near = nearest(sel)
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
        # Cloth between two limbs that the trunk takes (a skirt between the thighs) is wide: a thin
        # strip there is trousers a little wider than the fitted thighs, filling the gap between them
        # below the crotch, which would hang from it as a tail when the legs part.
        between = trunk & shared & ~near[TRUNK]
        if between.any():
            keep &= ~between | wide_parts(ys[between], xs[between], body.shape, px)[ys, xs]
        # (nor does a hand the photo does not show carry what covers it: a pocket's rim, a phone)
        keep &= ~np.isin(part.ravel()[anc], self.unseen_hands)
        if self.skirt_cloth is not None:
            # The skirt's cloth beside an arm (a hand holding its hem out) is the skirt's, not the arm's.
            on_arm = np.isin(JOINT_REGION[part.ravel()[anc] % len(JOINT_REGION)], ARM_REGIONS)
            keep &= ~(on_arm & self.skirt_cloth[ys, xs])
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
