"""Background plate: the photo with the person removed and the hole filled by PatchMatch.

The hole is the person mask, grown by an edge band (MediaPipe's mask stops short of hair and soft
edges) plus the contact shadow under the feet, plus the person's mirror image where a glossy floor
shows one (`reflection_mask`) and their cast shadow where it clearly shows (`shadow_mask`).
PatchMatch (`pypatchmatch`) fills it band by band (see `_fill_in_bands`); OpenCV's Telea
in-painting (smooth, smeary) is the fallback when the native PatchMatch library is unavailable.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy.ndimage import maximum_filter1d

WORK_SIDE = 512  # PatchMatch runs at most at this size (longest side)
# Height of the hole's bands filled one after another, as a fraction of the person's height. Each band
# is a source for the next, so thin bands hand a column's colours down band after band (vertical streaks
# through a brick wall at 0.15); three or so bands per person keep rows of bricks, a plinth or a skirting
# board running across, while a single band (the whole hole at once) averages into a grey smear.
BAND = 0.4

# Floor reflection test (`reflection_mask`); lengths are fractions of the person's height.
MIRROR_WORK = 240.0  # the test runs with the person about this many pixels tall
MIRROR_ROWS = 0.08  # rows of the mirror image judged together, from the soles downwards
MIRROR_SIDE = (0.02, 0.12)  # floor beside the mirror image it is compared with: gap, reach
MIRROR_MIN_STEP = 8.0  # smallest colour step (RGB distance, 0-255) taken for a reflection
MIRROR_Z = 4.0  # the step must exceed the same shape's steps elsewhere on the floor by this many spreads
MIRROR_MIN_NULL = 4  # fewer free places on the floor to compare with: no verdict (nothing added)

# Cast shadow test (`shadow_mask`); lengths are fractions of the person's height.
SHADOW_WORK = 200.0  # the test runs with the person about this many pixels tall
SHADOW_SEED_REACH = 0.15  # a seed is a dark dip narrower than about twice this ...
SHADOW_REACH = 0.25  # ... and the shadow grows through dips up to about twice this wide
SHADOW_SEED_DARK = 0.8  # seed: at most this fraction of the lit surface's brightness
SHADOW_DARKEST = 0.2  # darker than this is a dark thing (a black pole, a doorway), not sky-lit shade
SHADOW_DARK = 0.87  # grown part: dimmed to at most this (per channel, along the seed's colour ratio)
SHADOW_AREA = (0.01, 1.0, 1.5)  # seed at least / at most, whole shadow at most x the person's area


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def hole_mask(
    mask: np.ndarray,
    box: tuple[float, float, float, float],
    band: float = 0.03,
    shadow: float = 0.04,
    image: np.ndarray | None = None,
) -> np.ndarray:
    """uint8 0/1 hole: the soft mask thresholded low, grown by `band` x person height, plus an ellipse
    `shadow` x height tall under the lowest part of the person (where a contact shadow falls). With
    the photo (`image`), also the person's floor reflection (`reflection_mask`) and cast shadow
    (`shadow_mask`) where the photo shows them, but never a letterbox strip at the photo's edges."""
    h, w = mask.shape
    height = max(8.0, box[3] - box[1])
    hole = (mask > 0.2).astype(np.uint8)
    radius = max(2, int(round(band * height)))
    hole = cv2.dilate(hole, _disk(radius))
    if image is not None:
        # Reflections are blurred by the floor's gloss: twice the edge band around them.
        mirror = cv2.dilate(reflection_mask(image, mask, box), _disk(2 * radius))
        # A shadow's penumbra: the edge band around it.
        cast = cv2.dilate(shadow_mask(image, mask, box), _disk(radius))
        hole |= (mirror | cast) & ~_frame(image)
    ys, xs = np.nonzero(mask > 0.5)
    if len(ys):
        bottom = ys.max()
        feet = xs[ys > bottom - 0.05 * height]
        if len(feet):
            cx = int((feet.min() + feet.max()) / 2)
            half_w = int((feet.max() - feet.min()) / 2 + 0.05 * height)
            half_h = max(2, int(shadow * height))
            cv2.ellipse(hole, (cx, int(bottom)), (half_w, half_h), 0, 0, 360, 1, -1)
    return hole


def _ground_line(person: np.ndarray, height: float) -> np.ndarray:
    """Per column, the row of the floor contact the mirror image hangs from: under the feet the
    lowest person pixel nearby (each foot its own, so a step forward mirrors right), elsewhere
    (outstretched arms, a raised foot) the nearest foot's line."""
    rows, cols = person.shape
    lowest = np.where(person.any(0), rows - 1 - np.argmax(person[::-1], 0), -1)
    on_floor = lowest >= lowest.max() - 0.08 * height
    reach = max(1, round(0.04 * height))
    line = maximum_filter1d(np.where(on_floor, lowest, -1), 2 * reach + 1).astype(np.float64)
    feet = np.nonzero(on_floor)[0]
    at = np.clip(np.searchsorted(feet, np.arange(cols)), 1, max(1, len(feet) - 1))
    left, right = feet[at - 1], feet[np.minimum(at, len(feet) - 1)]
    nearest = np.where(np.abs(np.arange(cols) - left) <= np.abs(right - np.arange(cols)), left, right)
    return np.where(on_floor, line, line[nearest])


def _frame(image: np.ndarray) -> np.ndarray:
    """Bool (H,W): uniform strips along the photo's edges (a black or white letterbox border), which
    are neither floor nor to be in-painted."""
    rows, cols = image.shape[:2]
    out = np.zeros((rows, cols), bool)
    grey = image[..., :3].astype(np.float32).mean(-1)
    for lines, mark in ((grey, out), (grey.T, out.T)):
        flat = lines.std(1) < 3.0
        if flat.all():
            continue
        # Wider strips are a plain backdrop (a studio's black), which is background to keep.
        first, last = (int(np.argmin(f)) for f in (flat, flat[::-1]))
        first, last = (n if n <= 0.08 * len(flat) else 0 for n in (first, last))
        mark[:first] = True
        mark[len(flat) - last :] = True
    return out


def _wide(region: np.ndarray, reach: int) -> np.ndarray:
    """`region` grown sideways by `reach` pixels (the comparison is row by row)."""
    return cv2.dilate(region.astype(np.uint8), np.ones((1, 2 * reach + 1), np.uint8)) > 0


def _mirror_shows(image: np.ndarray, inside: np.ndarray, seen: np.ndarray, height: float) -> bool | None:
    """Does the floor inside `inside` (mirrored person, a few rows) differ from the floor beside it
    on both sides, by more than the same shape does when shifted elsewhere along those rows?
    None when the person's own hole covers too much of it to judge."""
    rows = np.nonzero(inside.any(1))[0]
    r0, r1 = rows.min(), rows.max() + 1
    img, region, known = image[r0:r1], inside[r0:r1], seen[r0:r1]
    gap = max(1, round(MIRROR_SIDE[0] * height))
    side = _wide(region, max(gap + 2, round(MIRROR_SIDE[1] * height))) & ~_wide(region, gap)

    def step(b: np.ndarray, s: np.ndarray) -> np.ndarray | None:
        bk, sk = b & known, s & known
        if bk.sum() < max(6, 0.6 * b.sum()) or sk.sum() < max(6, 0.6 * s.sum()):
            return None
        return img[bk].mean(0) - img[sk].mean(0)

    found = step(region, side)
    if found is None:
        return None
    # The step on each side alone must point the same way: a floor edge or a door beside the
    # person would give a step on one side only.
    middle = np.nonzero(region.any(0))[0].mean()
    halves = np.zeros_like(side)
    halves[:, : int(middle)] = True
    size = float(np.linalg.norm(found))
    for half in (side & halves, side & ~halves):
        one = step(region, half) if half.sum() >= 6 else None
        if one is None:
            continue
        along = float(one @ found) / max(size, 1e-6)  # this side's step measured along the whole one
        if along < 0.3 * size or along < 0.5 * float(np.linalg.norm(one)):
            return False
    # The same shape shifted along the floor, clear of the mirror image, gives the chance level.
    cols = img.shape[1]
    span = np.nonzero((region | side).any(0))[0]
    clear = _wide(region, max(gap + 2, round(0.04 * height)))
    chance = []
    for shift in range(-span.min(), cols - span.max(), max(2, round(0.03 * height))):
        if shift == 0:
            continue
        b, s = np.roll(region, shift, 1), np.roll(side, shift, 1)
        if (b & clear).any():
            continue
        other = step(b, s)
        if other is not None:
            chance.append(float(np.linalg.norm(other)))
    if len(chance) < MIRROR_MIN_NULL:
        return False
    level = max(MIRROR_MIN_STEP, np.mean(chance) + MIRROR_Z * np.std(chance), 1.25 * max(chance))
    return size > level


def reflection_mask(
    image: np.ndarray, mask: np.ndarray, box: tuple[float, float, float, float]
) -> np.ndarray:
    """uint8 0/1: the person's mirror image on a glossy floor, where the photo shows one.

    The person mask is flipped about the floor contact line (`_ground_line`) and judged from the
    soles downwards, a few rows at a time: the floor inside the mirrored silhouette must differ in
    colour from the floor on both sides of it by clearly more than the same silhouette does when
    shifted along the floor. Mirror rows are kept down to the last band that passes; the first band
    that fails ends it (a matte floor fails at once and adds nothing)."""
    rows, cols = mask.shape
    empty = np.zeros((rows, cols), np.uint8)
    height = max(8.0, box[3] - box[1])
    scale = min(1.0, MIRROR_WORK / height)
    small = (max(1, round(cols * scale)), max(1, round(rows * scale)))
    img = cv2.resize(image, small, interpolation=cv2.INTER_AREA) if scale < 1 else image
    soft = cv2.resize(mask, small, interpolation=cv2.INTER_AREA) if scale < 1 else mask
    person = soft > 0.5
    if not person.any():
        return empty
    height *= scale
    img = img[..., :3].astype(np.float32)
    line = _ground_line(person, height)
    yy, xx = np.mgrid[0 : person.shape[0], 0 : person.shape[1]].astype(np.float32)
    source = (2 * line[None, :] - yy).astype(np.float32)
    mirrored = cv2.remap(person.astype(np.float32), xx, source, cv2.INTER_LINEAR, borderValue=0) > 0.5
    depth = yy - line[None, :]
    mirrored &= depth > 0
    # What the photo shows of the background: outside the person and its edge band.
    seen = cv2.dilate((soft > 0.2).astype(np.uint8), _disk(max(2, round(0.03 * height)))) == 0
    frame = _frame(img)
    seen &= ~frame
    band = max(2, round(MIRROR_ROWS * height))
    last = -1
    for k in range(int(np.ceil(1.1 / MIRROR_ROWS))):
        inside = mirrored & (depth > k * band) & (depth <= (k + 1) * band)
        if inside.sum() < 8:
            break  # past the image's bottom or the mirrored head
        verdict = _mirror_shows(img, inside, seen, height)
        if verdict is False:
            break
        if verdict:
            last = k
    if last < 0:
        return empty
    keep = (mirrored & (depth <= (last + 1) * band) & ~frame).astype(np.uint8)
    if scale < 1:
        keep = cv2.resize(keep, (cols, rows), interpolation=cv2.INTER_NEAREST)
    return keep


def _masked_blur(values: np.ndarray, weight: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of `values` that only averages where `weight` > 0 (per channel)."""
    if values.ndim == 3:
        return np.stack([_masked_blur(values[..., c], weight, sigma) for c in range(values.shape[2])], -1)
    num = cv2.GaussianBlur(values * weight, (0, 0), sigma)
    return num / np.maximum(cv2.GaussianBlur(weight, (0, 0), sigma), 1e-3)


def _shade(colour: np.ndarray, hole: np.ndarray, reach: int) -> np.ndarray:
    """Per pixel and channel, log(colour / lit colour), the lit colour being a morphological closing
    (brightest-then-darkest over a disk of radius `reach`) that ignores the hole: dips narrower than
    the disk (shadows) read negative, broad surfaces read 0 whatever their albedo."""
    disk = _disk(reach)
    grown = cv2.dilate(np.where(hole[..., None], -1e3, colour).astype(np.float32), disk)
    grown[hole] = 1e3
    return colour - cv2.erode(grown, disk)


def _shadow_colour(shade: np.ndarray) -> np.ndarray:
    """Bool: darkening by light, not by paint: the three channels dim alike, or blue dims least
    (sky-lit shade under sunlight); red dimming less than green or green less than blue is a
    different surface."""
    r, g, b = shade[..., 0], shade[..., 1], shade[..., 2]
    return (r <= g + 0.08) & (g <= b + 0.08) & (b - r < 0.45)


def shadow_mask(image: np.ndarray, mask: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """uint8 0/1: the person's cast shadow on the surface beside them, where the photo clearly shows one.

    Conservative by design: a seed must be a dark dip (`SHADOW_DARKEST` to `SHADOW_SEED_DARK` of the
    brightness of the lit surface around it, dimmed like shade rather than paint) that touches the
    person's hole, lies clear of the photo's edges, is 1-100% of the person's area and has the
    texture of the lit surface around it (a different material, e.g. paving below a wall, differs
    in texture). From the seed the shadow grows through pixels darkened in the same colour ratio and
    with the same texture; if it would grow past 1.5 x the person's area, nothing is added."""
    rows, cols = mask.shape
    empty = np.zeros((rows, cols), np.uint8)
    height = max(8.0, box[3] - box[1])
    scale = min(1.0, SHADOW_WORK / height)
    small = (max(1, round(cols * scale)), max(1, round(rows * scale)))
    img = cv2.resize(image, small, interpolation=cv2.INTER_AREA) if scale < 1 else image
    soft = cv2.resize(mask, small, interpolation=cv2.INTER_AREA) if scale < 1 else mask
    height *= scale
    person_area = float((soft > 0.5).sum())
    if person_area < 16:
        return empty
    box_small = (box[0] * scale, box[1] * scale, box[2] * scale, box[3] * scale)
    hole = hole_mask(soft, box_small) > 0
    seen = (~hole).astype(np.float32)
    logc = np.log(img[..., :3].astype(np.float32) + 8.0)
    colour = _masked_blur(logc, seen, 0.02 * height)  # above brick/paving scale: surfaces, not texture
    lum = logc.mean(-1)
    texture = np.sqrt(_masked_blur((lum - _masked_blur(lum, seen, 0.01 * height)) ** 2, seen, 0.03 * height))
    log_texture = np.log(texture + 1e-3)

    shade = _shade(colour, hole, max(2, round(SHADOW_SEED_REACH * height)))
    dim = shade.mean(-1)
    dark = (dim < np.log(SHADOW_SEED_DARK)) & (dim > np.log(SHADOW_DARKEST)) & _shadow_colour(shade) & ~hole
    lit = ((dim > np.log(0.92)) & ~hole).astype(np.float32)
    lit_texture = _masked_blur(log_texture, lit, 0.08 * height)
    touching = cv2.dilate(hole.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    count, labels, stats, _ = cv2.connectedComponentsWithStats(dark.astype(np.uint8), connectivity=8)
    seed = np.zeros_like(dark)
    h_small, w_small = dark.shape
    for i in range(1, count):
        x, y, w, h, area = stats[i]
        if x == 0 or y == 0 or x + w >= w_small or y + h >= h_small:
            continue
        if not SHADOW_AREA[0] * person_area <= area <= SHADOW_AREA[1] * person_area:
            continue
        part = labels == i
        if not (part & touching).any():
            continue
        if abs(np.median(log_texture[part] - lit_texture[part])) > np.log(1.8):
            continue
        seed |= part
    if not seed.any():
        return empty
    # Grow through wider dips darkened the same way (the lighter penumbra of a head's shadow, ...).
    shade = _shade(colour, hole, max(3, round(SHADOW_REACH * height)))
    ratio = np.median(shade[seed], 0)
    direction = ratio / max(float(np.linalg.norm(ratio)), 1e-6)
    along = shade @ direction
    across = np.linalg.norm(shade - along[..., None] * direction, axis=-1)
    alike = (
        (along > -np.log(SHADOW_DARK) * np.sqrt(3))  # |log ratio| per channel ~ along / sqrt(3)
        & (across < 0.12 + 0.25 * along)
        & (shade.mean(-1) > np.log(SHADOW_DARKEST))
        & (np.abs(log_texture - np.median(log_texture[seed])) < np.log(2.0))
        & ~hole
    ) | seed
    count, labels = cv2.connectedComponents(alike.astype(np.uint8), connectivity=8)
    shadow = np.isin(labels, np.unique(labels[seed])) & (labels > 0)
    if shadow.sum() > SHADOW_AREA[2] * person_area:
        return empty
    keep = shadow.astype(np.uint8)
    if scale < 1:
        keep = cv2.resize(keep, (cols, rows), interpolation=cv2.INTER_NEAREST)
    return keep


def background_plate(
    image: np.ndarray,
    mask: np.ndarray,
    box: tuple[float, float, float, float],
    seed: int = 0,
    method: str = "patchmatch",
) -> np.ndarray:
    """The in-painted background (H,W,3 uint8). `seed` makes PatchMatch's random search repeatable."""
    hole = hole_mask(mask, box, image=image)
    if not hole.any():
        return image.copy()
    # A letterbox border is no background: fill inside it, or patches of the border's edge are
    # copied into a hole that reaches it (a dark line at the bottom of the floor).
    inner = ~_frame(image)
    rows, cols = np.nonzero(inner.any(1))[0], np.nonzero(inner.any(0))[0]
    if len(rows) and len(cols) and (len(rows), len(cols)) != hole.shape:
        r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        out = image.copy()
        out[r0:r1, c0:c1] = _fill(image[r0:r1, c0:c1], hole[r0:r1, c0:c1], box, seed, method)
        return out
    return _fill(image, hole, box, seed, method)


def _fill(
    image: np.ndarray, hole: np.ndarray, box: tuple[float, float, float, float], seed: int, method: str
) -> np.ndarray:
    if not hole.any():
        return image.copy()
    if method == "patchmatch":
        import patchmatch

        if patchmatch.patchmatch_available:
            patchmatch.set_random_seed(seed)
            height = max(8.0, box[3] - box[1])
            h, w = image.shape[:2]
            scale = min(1.0, WORK_SIDE / max(h, w))
            if scale >= 1.0:
                return _fill_in_bands(image, hole, height)
            # Large photos: fill at WORK_SIDE (PatchMatch's cost grows with the area), then paste the
            # upscaled fill into the hole only; everything outside keeps full resolution.
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            small_hole = cv2.resize(hole, size, interpolation=cv2.INTER_NEAREST)
            small_hole = cv2.dilate(small_hole, np.ones((3, 3), np.uint8))
            filled = _fill_in_bands(small, small_hole, height * scale)
            up = cv2.resize(filled, (w, h), interpolation=cv2.INTER_CUBIC)
            return np.where(hole[..., None] > 0, up, image)
    radius = max(3, int(0.01 * max(image.shape[:2])))
    return cv2.inpaint(np.ascontiguousarray(image), hole, radius, cv2.INPAINT_TELEA)


def _fill_in_bands(image: np.ndarray, hole: np.ndarray, height: float, band: float = BAND) -> np.ndarray:
    """PatchMatch top to bottom, one horizontal band of the hole at a time, each from a crop of the
    rows around it. Filling a person-sized hole in one go lets the patch votes average into a grey
    smear; rows at the same height (the wall beside a standing person, the floor beside the feet)
    are the right source, and filled bands above serve as source for the next."""
    import patchmatch

    out = image.copy()
    rows = np.nonzero(hole.any(1))[0]
    if not len(rows):
        return out
    step = max(8, int(band * height))
    pending = hole.astype(bool)
    for y0 in range(int(rows.min()), int(rows.max()) + 1, step):
        y1 = min(y0 + step, int(rows.max()) + 1)
        c0, c1 = max(0, y0 - step), min(image.shape[0], y1 + step)
        target = np.zeros((c1 - c0, image.shape[1]), np.uint8)
        target[y0 - c0 : y1 - c0] = hole[y0:y1]
        if not target.any():
            continue
        unknown = pending[c0:c1].copy()
        unknown[y0 - c0 : y1 - c0] = False  # still-unfilled rows below: neither filled now nor a source
        filled = patchmatch.inpaint(
            np.ascontiguousarray(out[c0:c1]),
            target * 255,
            global_mask=unknown.astype(np.uint8) * 255,
            patch_size=3,
        )
        inside = hole[y0:y1] > 0
        out[y0:y1][inside] = filled[y0 - c0 : y1 - c0][inside]
        pending[y0:y1] = False
    return out


# A photo's own frame (a letterbox margin, a black line along an edge): edge rows or columns of one
# colour (each channel's spread along the line under BORDER_FLAT grey levels), at most
# BORDER_MAX_SHARE of the photo across, followed within three lines by one most of whose pixels are
# more than BORDER_STEP levels from that colour (a plain wall or sky that goes on into the picture is
# no frame).
BORDER_FLAT = 8.0
BORDER_STEP = 30.0
BORDER_MAX_SHARE = 0.2
# Resizing twice (a photo resized before upload, then to the video's size) blends the frame into up to
# three lines: after the first, up to BLEND_LINES more go with the frame where each is nearer the
# frame's colour than the next by more than BLEND_STEP grey levels (median along the line) and more
# than BLEND_RATIO x the largest such step among the BLEND_INNER lines beyond (the photo's own gradient).
BLEND_LINES = 2
BLEND_INNER = 4
BLEND_STEP = 4.0
BLEND_RATIO = 3.0


# A video frame's or a crop's broken last line (black in parts, from the encoder or a resize's
# border; grey once the photo is resized to the video's size): up to ARTIFACT_LINES edge lines with a
# run of at least ARTIFACT_RUN of their length darker, in every channel, by more than BORDER_STEP
# levels than the next line inward, where that line and the one after it agree (at most ARTIFACT_CALM
# of their pixels that far apart): the photo itself goes on smoothly there, and something dark at the
# edge would go on inward too (a dark mortar joint ending at the edge is a short run). A line dark all
# along (more than ARTIFACT_PARTIAL of it) is the photo's (a course of mortar) or, if flat, a frame.
ARTIFACT_LINES = 2
ARTIFACT_RUN = 0.1
ARTIFACT_PARTIAL = 0.9
ARTIFACT_CALM = 0.05


def frame_border(image: np.ndarray) -> tuple[int, int, int, int]:
    """Widths in pixels (left, top, right, bottom) of the photo's own frame along each edge (0: none).
    (Top and bottom first, then the sides between them, then top and bottom between the sides: a
    line along the top crosses the side margins.)"""
    img = np.asarray(image)[..., :3].astype(np.float32)
    h, w = img.shape[:2]
    top, bottom = _frame_run(img), _frame_run(img[::-1])
    rows = img[top : h - bottom] if top + bottom < h else img
    left, right = _frame_run(rows.transpose(1, 0, 2)), _frame_run(rows.transpose(1, 0, 2)[::-1])
    cols = img[:, left : w - right] if left + right < w else img
    return left, max(top, _frame_run(cols)), right, max(bottom, _frame_run(cols[::-1]))


def _frame_run(lines: np.ndarray) -> int:
    """How many lines (rows of `lines`, from the edge inward) the frame along this edge takes."""
    most = int(BORDER_MAX_SHARE * len(lines))
    colour = np.median(lines[0], axis=0)
    k = 0
    while (
        k < most
        and lines[k].std(0).max() < BORDER_FLAT
        and np.abs(np.median(lines[k], axis=0) - colour).max() < BORDER_STEP
    ):
        k += 1
    # (the photo's content within a line or two: a resized photo blends the frame's last line into
    # the first one inside, which goes with the frame)
    unlike = any(
        (np.abs(lines[j] - colour).max(1) > BORDER_STEP).mean() > 0.5
        for j in range(k, min(k + 3, len(lines)))
    )
    if not (0 < k < most and unlike):
        return _broken_edge(lines)
    return k + 1 + _blended(lines[k + 1 :], colour)


def _longest_run(flags: np.ndarray, gap: int = 3) -> int:
    """Length of the longest run of True in `flags` (1-D), gaps of up to `gap` bridged (a resized
    broken line's own noise)."""
    bridge = np.ones((1, gap + 1), np.uint8)
    flags = cv2.morphologyEx(flags.astype(np.uint8)[None], cv2.MORPH_CLOSE, bridge)[0]
    edges = np.diff(np.concatenate([[0], flags.astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return int((stops - starts).max()) if len(starts) else 0


def _broken_edge(lines: np.ndarray) -> int:
    """How many edge lines (ARTIFACT_LINES at most) are a broken last line rather than the photo."""

    def apart(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.abs(a - b).max(-1) > BORDER_STEP

    for k in range(1, ARTIFACT_LINES + 1):
        if len(lines) < k + 2:
            break
        broken = (lines[k] - lines[k - 1]).min(-1) > BORDER_STEP
        if (
            ARTIFACT_RUN * len(broken) <= _longest_run(broken)
            and broken.mean() <= ARTIFACT_PARTIAL
            and apart(lines[k], lines[k + 1]).mean() <= ARTIFACT_CALM
        ):
            return k + 1  # and the line inside it, which a resize darkened (a faint grey line)
    return 0


def _blended(lines: np.ndarray, colour: np.ndarray) -> int:
    """How many more lines (from the first of `lines` inward) are the frame's colour blended into the
    photo's: each nearer that colour than the next line by a step above BLEND_STEP and above
    BLEND_RATIO x the steps between the photo's own lines further in (a gradient in the photo is no
    blend)."""
    span = min(BLEND_LINES + BLEND_INNER + 1, len(lines))
    if span < BLEND_INNER + 2:
        return 0
    dist = np.abs(lines[:span].astype(np.float32) - colour).max(-1)  # (lines, pixels)
    step = np.median(dist[1:] - dist[:-1], axis=1)  # > 0: the line is nearer the frame than the next
    inner = np.abs(step[BLEND_LINES:]).max()
    k = 0
    while k < BLEND_LINES and step[k] > max(BLEND_STEP, BLEND_RATIO * inner):
        k += 1
    return k


def extend_plate(
    plate: np.ndarray, reach: tuple[int, int, int, int], seed: int = 0, painted: np.ndarray | None = None
) -> np.ndarray:
    """The plate grown by `reach` pixels (left, top, right, bottom), the new border quilted from the
    photo's own content at its resolution (`vmclip.person.quilt.extend`, seeded by `seed`): what a
    camera that pans, zooms out or steps back sees beyond the photo's edges. The photo's own pixels
    are kept exactly, except its own frame along an edge (`frame_border`: a letterbox margin, a black
    line), which is quilted over with the border: seen from farther back it would be a bar or a line
    across the picture. `painted` (H, W bool) marks the plate's in-painted pixels: the border is not
    cut from them where the photo has enough else."""
    from vmclip.person.quilt import extend

    left, top, right, bottom = (max(0, int(r)) for r in reach)
    if not (left or top or right or bottom):
        return plate
    h, w = plate.shape[:2]
    fl, ft, fr, fb = frame_border(plate)
    inner = np.ascontiguousarray(np.asarray(plate)[ft : h - fb, fl : w - fr, :3])
    avoid = None if painted is None else np.asarray(painted, bool)[ft : h - fb, fl : w - fr]
    rng = np.random.default_rng(seed)
    return extend(inner, (left + fl, top + ft, right + fr, bottom + fb), rng, avoid)
