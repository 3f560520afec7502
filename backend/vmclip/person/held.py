"""Objects held in a hand (a basket, a bag, a ball): in MediaPipe's person mask, but neither body nor
clothes.

Left in the person, the fit's clothing offsets grow over them and the renderer carries their pixels
with the thigh or the trunk: wicker patches on a skirt, fragments floating beside a walking body. A
held object is told from a loose garment (a skirt held out by the hand) by its colour: it is mask
outside the fitted bare body whose colours the trunk and legs nearby do not have, near a hand, and
not hair (not joined to the head through the mask outside the body). It is taken out of the person's
mask; the background plate, made from MediaPipe's whole mask, paints it out with the person, so the
video shows the hand empty rather than the object stuck to the body.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy.ndimage import binary_fill_holes, maximum_filter

from vmclip.person.detect import MP

# All shares are of the person's height in the photo (its box).
GAP = 0.015  # mask this near the bare body is body (a fit a little thin), not beyond it
EDGE_PX = 2  # the mask's rim mixes the object's colours with the background's: not judged
ARM_REACH = 0.05  # pixels this near an arm's bones or a hand are no reference for the garment's colour
NEAR = 0.12  # each place is compared with the trunk and legs within about this reach
COLOUR_BIN = 8  # Lab levels per histogram bin (and a bin's neighbours count as alike: shading)
COMMON = 0.002  # a colour is the garment's when at least this share of the reference has it
MIN_REFERENCE = 50  # fewer reference pixels nearby: the whole trunk's and legs' colours are the reference
SPECK = 0.008  # unlike places thinner than this are a seam's shading or a fold's shadow, not an object
JOIN = 0.02  # unlike places this close together are one object (a basket's weave and its gaps)
MIN_AREA = 0.002  # share of the height squared: smaller is a detail (a watch, a ring of a bag)
HAND_REACH = 0.12  # an object is held: its nearest pixel within this of a hand landmark
HEAD_REACH = 0.1  # joined to mask within this of the head's landmarks: hair, never an object
WHOLE = 0.4  # an object that is at least this share of its piece of mask outside the body is all of it
GROW = 0.02  # otherwise it takes the mask outside the body within this of it (a handle, a rim)
# It also takes its own colours this far inside the body's outline where they are not the garment's
# (a ball over the fitted hand; the fitted body is a little larger than the person there).
INSIDE = 0.08
SHADES = 3  # grown from the colours taken so far this many times: a ball's shading, lit side to dark

_HAND = [MP[f"{s}_{p}"] for s in ("left", "right") for p in ("wrist", "pinky", "index", "thumb")]
_ARM_BONES = [
    (MP[f"{s}_{a}"], MP[f"{s}_{b}"])
    for s in ("left", "right")
    for a, b in (("shoulder", "elbow"), ("elbow", "wrist"))
]
_HEAD = list(range(MP["left_shoulder"]))  # nose, eyes, ears, mouth: MediaPipe's first eleven
_SHOULDERS = [MP["left_shoulder"], MP["right_shoulder"]]
VISIBLE = 0.3  # landmark visibility taken as seen


def _disk(radius: float) -> np.ndarray:
    r = max(1, round(radius))
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def _within(region: np.ndarray, radius: float) -> np.ndarray:
    """(H, W) bool: pixels within `radius` of `region` (a distance transform: a large disk's dilation
    costs its area per pixel)."""
    outside = (~np.asarray(region, bool)).astype(np.uint8)
    return cv2.distanceTransform(outside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE) <= radius


def _points(keypoints: np.ndarray, index: list[int]) -> np.ndarray:
    return np.array([keypoints[k, :2] for k in index if keypoints[k, 3] > VISIBLE]).reshape(-1, 2)


def _reach(region: np.ndarray, points: np.ndarray) -> float:
    """Least distance (pixels) from any pixel of `region` to any of `points` (inf if either is empty)."""
    ys, xs = np.nonzero(region)
    if len(xs) == 0 or len(points) == 0:
        return float("inf")
    return float(min(np.hypot(xs - x, ys - y).min() for x, y in points))


def _garment_reference(
    mask: np.ndarray, bare: np.ndarray, keypoints: np.ndarray, height: float, limbs: np.ndarray | None
) -> np.ndarray:
    """The trunk's and legs' own pixels: mask inside the bare body, below the shoulders, off the fitted
    arms and head (`limbs`) and away from the arms' and hands' landmarks (a skin-coloured forearm
    would make a wicker basket look like the body, a hand on a ball the ball)."""
    ref = mask & (cv2.erode(bare.astype(np.uint8), _disk(1)) > 0)
    if limbs is not None:
        ref &= ~_within(np.asarray(limbs), GAP * height)
    arms = np.zeros(mask.shape, np.uint8)
    width = max(2, round(2 * ARM_REACH * height))
    for a, b in _ARM_BONES:
        if min(keypoints[a, 3], keypoints[b, 3]) > VISIBLE:
            cv2.line(
                arms,
                tuple(int(v) for v in keypoints[a, :2]),
                tuple(int(v) for v in keypoints[b, :2]),
                1,
                width,
            )
    for x, y in _points(keypoints, _HAND):
        cv2.circle(arms, (int(x), int(y)), width // 2, 1, -1)
    ref &= arms == 0
    shoulders = _points(keypoints, _SHOULDERS)
    if len(shoulders):
        ref[: max(0, int(shoulders[:, 1].mean()))] = False
    return ref


BINS = 256 // COLOUR_BIN


def _colour_codes(image: np.ndarray) -> np.ndarray:
    """(H, W) int64: each pixel's Lab histogram bin."""
    lab = cv2.cvtColor(np.ascontiguousarray(image[..., :3]), cv2.COLOR_RGB2LAB) // COLOUR_BIN
    return (lab[..., 0].astype(np.int64) * BINS + lab[..., 1]) * BINS + lab[..., 2]


def _common(codes: np.ndarray) -> np.ndarray:
    """(BINS**3,) bool: the colour bins common among `codes` (COMMON), with their neighbours (a bin's
    26 neighbours count too: shading moves a colour by a level, not to another)."""
    counts = np.bincount(codes, minlength=BINS**3).reshape(BINS, BINS, BINS)
    return maximum_filter((counts >= max(3, COMMON * len(codes))).astype(np.uint8), size=3).reshape(-1) > 0


def _unlike(code: np.ndarray, judged: np.ndarray, ref: np.ndarray, height: float) -> np.ndarray:
    """Pixels of `judged` whose colour bin (`code`) is not common among the `ref` pixels within NEAR
    of them (judged in square cells NEAR across; where there are too few, among all of them: an
    object held at arm's length)."""
    h, w = judged.shape
    cell = max(4, round(NEAR * height))
    out = np.zeros((h, w), bool)
    if ref.sum() < MIN_REFERENCE:  # no trunk or legs seen: no verdict
        return out
    everywhere = _common(code[ref])
    for y0 in range(0, h, cell):
        for x0 in range(0, w, cell):
            here = judged[y0 : y0 + cell, x0 : x0 + cell]
            if not here.any():
                continue
            around = np.s_[max(0, y0 - cell) : y0 + 2 * cell, max(0, x0 - cell) : x0 + 2 * cell]
            near = ref[around]
            common = _common(code[around][near]) if near.sum() >= MIN_REFERENCE else everywhere
            out[y0 : y0 + cell, x0 : x0 + cell] = here & ~common[code[y0 : y0 + cell, x0 : x0 + cell]]
    return out


def held_objects(
    image: np.ndarray,
    mask: np.ndarray,
    bare: np.ndarray,
    keypoints: np.ndarray,
    box: tuple[float, float, float, float],
    limbs: np.ndarray | None = None,
) -> np.ndarray:
    """(H, W) bool: the pixels of `mask` (H, W, > 0.5: the person) that are an object held in a hand,
    given the photo `image` (H, W, 3 uint8), the fitted bare body's silhouette `bare` (H, W) and
    MediaPipe's `keypoints` (33, 4: x, y, z, visibility) in `box` (x0, y0, x1, y1); `limbs` (H, W), the
    silhouette of the fitted arms and head, where the body's colours are no garment's."""
    person = np.asarray(mask) > 0.5
    bare = np.asarray(bare).astype(bool)
    height = max(8.0, float(box[3] - box[1]))
    held = np.zeros(person.shape, bool)
    hands = _points(keypoints, _HAND)
    if len(hands) == 0:
        return held
    outside = person & ~_within(bare, GAP * height)
    if not outside.any():
        return held
    judged = outside & (cv2.erode(person.astype(np.uint8), _disk(EDGE_PX)) > 0)
    ref = _garment_reference(person, bare, keypoints, height, limbs)
    code = _colour_codes(image)
    unlike = _unlike(code, judged, ref, height).astype(np.uint8)
    unlike = cv2.morphologyEx(unlike, cv2.MORPH_OPEN, _disk(SPECK * height))
    unlike = cv2.morphologyEx(unlike, cv2.MORPH_CLOSE, _disk(JOIN * height))
    unlike = unlike > 0
    # Judged piece by piece of the mask outside the body: an object's unlike parts (a basket's weave,
    # a ball's lit side) count together however its shading splits them.
    count, pieces, stats, _ = cv2.connectedComponentsWithStats(outside.astype(np.uint8), connectivity=8)
    head = _points(keypoints, _HEAD)
    for k in range(1, count):
        if stats[k, cv2.CC_STAT_AREA] < MIN_AREA * height**2:
            continue
        piece = pieces == k
        found = unlike & piece
        if found.sum() < MIN_AREA * height**2 or _reach(found, hands) > HAND_REACH * height:
            continue
        if _reach(piece, head) <= HEAD_REACH * height:
            continue
        if found.sum() >= WHOLE * piece.sum():
            held |= piece
        else:
            held |= _within(found, GROW * height) & piece
    if held.any():
        near = person & ~held & _within(held, INSIDE * height)
        near &= _unlike(code, near, ref, height)
        for _ in range(SHADES):
            own = near & _common(code[held & judged])[code]
            _, joined = cv2.connectedComponents((held | own).astype(np.uint8), connectivity=8)
            ids = np.unique(joined[held])
            grown = held | (own & np.isin(joined, ids[ids > 0]))
            if (grown == held).all():
                break
            held, judged = grown, judged | grown
        held |= binary_fill_holes(held) & person  # what the object surrounds: its handle, its inside
    return held
