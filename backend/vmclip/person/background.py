"""Background plate: the photo with the person removed and the hole filled by PatchMatch.

The hole is the person mask, grown by an edge band (MediaPipe's mask stops short of hair and soft
edges) plus the contact shadow under the feet. PatchMatch (`pypatchmatch`) fills it band by band
(see `_fill_in_bands`); OpenCV's Telea
in-painting (smooth, smeary) is the fallback when the native PatchMatch library is unavailable.
"""

from __future__ import annotations

import cv2
import numpy as np

WORK_SIDE = 512  # PatchMatch runs at most at this size (longest side)
# Height of the hole's bands filled one after another, as a fraction of the person's height. Each band
# is a source for the next, so thin bands hand a column's colours down band after band (vertical streaks
# through a brick wall at 0.15); three or so bands per person keep rows of bricks, a plinth or a skirting
# board running across, while a single band (the whole hole at once) averages into a grey smear.
BAND = 0.4


def hole_mask(
    mask: np.ndarray, box: tuple[float, float, float, float], band: float = 0.03, shadow: float = 0.04
) -> np.ndarray:
    """uint8 0/1 hole: the soft mask thresholded low, grown by `band` x person height, plus an ellipse
    `shadow` x height tall under the lowest part of the person (where a contact shadow falls)."""
    h, w = mask.shape
    height = max(8.0, box[3] - box[1])
    hole = (mask > 0.2).astype(np.uint8)
    radius = max(2, int(round(band * height)))
    hole = cv2.dilate(hole, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1)))
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


def background_plate(
    image: np.ndarray,
    mask: np.ndarray,
    box: tuple[float, float, float, float],
    seed: int = 0,
    method: str = "patchmatch",
) -> np.ndarray:
    """The in-painted background (H,W,3 uint8). `seed` makes PatchMatch's random search repeatable."""
    hole = hole_mask(mask, box)
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
        target[y0 - c0:y1 - c0] = hole[y0:y1]
        if not target.any():
            continue
        unknown = pending[c0:c1].copy()
        unknown[y0 - c0:y1 - c0] = False  # still-unfilled rows below: neither filled now nor a source
        filled = patchmatch.inpaint(np.ascontiguousarray(out[c0:c1]), target * 255,
                                    global_mask=unknown.astype(np.uint8) * 255, patch_size=3)
        inside = hole[y0:y1] > 0
        out[y0:y1][inside] = filled[y0 - c0:y1 - c0][inside]
        pending[y0:y1] = False
    return out
