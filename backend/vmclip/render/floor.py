"""The floor the photo shows, for a person photographed in mid-air (a jump, a dancer's leap).

The renderer stands every frame on a ground line. The fitted soles are that line for a person who
stands; for one in mid-air they are not, and the whole video would float. Two things in a photo show
the floor:

1. the contact shadow: a dark patch on the floor below the feet, detached from them;
2. the floor line of the background plate: the boundary where a wall meets the floor (a step in
   brightness across the whole width around the feet). A person standing in front of a wall stands
   below that line in the image (nearer the camera than the wall); soles clearly above it mean the
   person is off the floor, by at least as much as the line's ray passes below the soles at the
   feet's distance (the floor under the feet is lower still, the wall being behind them).

`photo_floor` tries them in that order. A shadow touching the feet or a floor line above the soles
says the person stands: the soles stay the floor. When the photo shows the ground below the feet but
neither a shadow nor a floor line is found, the soles stay the floor with a warning (a person in
mid-air there would float).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import cv2
import numpy as np

from vmclip.geometry import Camera

# Lengths are shares of the person's height in the photo.
SEARCH_BELOW = 0.6  # the shadow and the floor line are looked for this far below the soles
SEARCH_SIDE = 0.12  # ... the shadow this far beside the feet
REFERENCE_SIDE = 0.6  # the lit floor of each row is taken this far beside the feet
MIN_GAP = 0.04  # a shadow or floor line nearer the soles than this touches them: the person stands
MIN_AREA = 0.002  # of the height squared: smaller dark specks are texture
SHADE = (0.15, 0.72)  # a shadow dims the lit floor to between these (darker: a dark object)
MAX_DROP_M = 1.5  # a floor further below the soles than this is not the person's
# The floor line: looked for from this far above the soles (where it lies behind a standing person)
# across this far either side of the feet; the brightness is compared over bands this tall above and
# below each row (a tile joint or a thin skirting line is a thin line, not a step between surfaces).
LINE_ABOVE = 0.35
LINE_SIDE = 0.5
LINE_BAND = 0.03
# A row is a floor line where the bands differ by at least LINE_STEP grey levels (median over the
# columns) and at least LINE_SPAN of the columns step the same way by half that (a boundary running
# across the whole view, not a rug or a shadow's edge).
LINE_STEP = 15.0
LINE_SPAN = 0.7
# The feet are clearly above what the photo shows when this much of the person's height is left under
# the soles (full-body photos mostly keep 3-10 %: four of the five beside the repository): finding no
# floor there is worth a warning.
SHOWN_BELOW = 0.25


@dataclass
class Floor:
    """The rest floor's height (world y, metres), how it was found ("soles", "shadow" or "floor
    line") and a warning for the user when no floor was found where the photo shows one."""

    ground_y: float
    source: str
    warning: str | None = None


@dataclass
class _Feet:
    """The fitted feet in the photo: lowest sole row, columns, height of the person (pixels) and the
    feet's mean column and camera depth."""

    sole_row: float
    x0: float
    x1: float
    tall: float
    column: float
    depth: float


def photo_floor(
    image: np.ndarray,
    mask: np.ndarray,
    camera: Camera,
    vertices: np.ndarray,
    plate: np.ndarray | None = None,
) -> Floor:
    """The floor under the fitted body `vertices` (V, 3, world) posed as in the photo `image` (H, W, 3)
    with person `mask` (H, W, 0..1) and `camera` (at the image's size); `plate` is the photo's
    background without the person (the floor line is looked for there; else in the image beside
    the person)."""
    v = np.asarray(vertices, dtype=np.float64)
    soles = float(v[:, 1].min())
    keep = Floor(soles, "soles")
    uv, z = camera.project_depth(v)
    if not (z > 0).all():
        return keep
    near = v[:, 1] < soles + 0.03
    feet = _Feet(
        sole_row=float(uv[near, 1].max()),
        x0=float(uv[near, 0].min()),
        x1=float(uv[near, 0].max()),
        tall=float(np.ptp(uv[:, 1])),
        column=float(np.mean(uv[near, 0])),
        depth=float(np.median(z[near])),
    )
    h = mask.shape[0]
    if feet.tall < 40:
        return keep
    person = cv2.dilate((np.asarray(mask) > 0.3).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    lum = np.asarray(image, dtype=np.float32)[..., :3].mean(-1)
    shadow = _shadow_row(lum, person, feet)
    if shadow is not None and shadow - feet.sole_row >= MIN_GAP * feet.tall:
        return _at_row(camera, feet, shadow, soles, "shadow") or keep
    background = lum if plate is None else np.asarray(plate, dtype=np.float32)[..., :3].mean(-1)
    line = _floor_line_row(background, None if plate is not None else person, feet)
    if line is not None and line - feet.sole_row >= MIN_GAP * feet.tall:
        return _at_row(camera, feet, line, soles, "floor line") or keep
    if shadow is None and line is None and h - feet.sole_row >= SHOWN_BELOW * feet.tall:
        keep.warning = (
            "no floor found in the photo (neither a contact shadow nor a wall's floor line below the "
            "feet): the soles are taken as the floor; a person in mid-air in the photo would float"
        )
    return keep


def _at_row(camera: Camera, feet: _Feet, row: float, soles: float, source: str) -> Floor | None:
    """The floor point under the feet seen at image `row`: that row, at the feet's distance from the
    camera; None when it is not plausibly the person's floor."""
    ray = np.linalg.solve(np.asarray(camera.K, float), [feet.column, row, 1.0])
    world = np.asarray(camera.R, float).T @ (ray * feet.depth / ray[2] - np.asarray(camera.t, float))
    if not soles - MAX_DROP_M < world[1] < soles - 0.02:
        return None
    return Floor(float(world[1]), source)


def _shadow_row(lum: np.ndarray, person: np.ndarray, feet: _Feet) -> float | None:
    """The image row of the centre of the contact shadow below the feet (pixels dimmed like shade
    relative to the lit floor of their row, in one large enough patch), or the sole row itself when
    that patch touches the feet; None without one."""
    h, w = lum.shape
    tall, sole_row = feet.tall, feet.sole_row
    r0, r1 = int(sole_row + MIN_GAP * tall * 0.5), int(min(h, sole_row + SEARCH_BELOW * tall))
    if r1 - r0 < 4:
        return None
    ref_c0 = max(0, int(feet.x0 - REFERENCE_SIDE * tall))
    ref_c1 = min(w, int(feet.x1 + REFERENCE_SIDE * tall) + 1)
    rows = lum[r0:r1, ref_c0:ref_c1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # (a row wholly covered by the person: NaN)
        ref = np.nanmedian(np.where(person[r0:r1, ref_c0:ref_c1], np.nan, rows), axis=1)
    c0, c1 = max(0, int(feet.x0 - SEARCH_SIDE * tall)), min(w, int(feet.x1 + SEARCH_SIDE * tall) + 1)
    ratio = lum[r0:r1, c0:c1] / np.maximum(ref[:, None], 1.0)
    dark = (ratio > SHADE[0]) & (ratio < SHADE[1]) & ~person[r0:r1, c0:c1] & np.isfinite(ref)[:, None]
    count, _, stats, centres = cv2.connectedComponentsWithStats(dark.astype(np.uint8), connectivity=8)
    if count < 2:
        return None
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    if stats[best, cv2.CC_STAT_AREA] < MIN_AREA * tall * tall:
        return None
    if r0 + stats[best, cv2.CC_STAT_TOP] - sole_row < MIN_GAP * tall:
        return sole_row  # the shadow touches the feet: the person stands on it
    return r0 + float(centres[best, 1])


def _floor_line_row(lum: np.ndarray, person: np.ndarray | None, feet: _Feet) -> float | None:
    """The row of the strongest wall/floor boundary around the feet: a step in brightness between
    the bands above and below the row, the same way across most columns (`person` pixels, when
    given, left out); None without one."""
    h, w = lum.shape
    tall = feet.tall
    k = max(2, int(round(LINE_BAND * tall)))
    r0 = max(k, int(feet.sole_row - LINE_ABOVE * tall))
    r1 = min(h - k - 1, int(feet.sole_row + SEARCH_BELOW * tall))
    c0 = max(0, int(feet.column - LINE_SIDE * tall))
    c1 = min(w, int(feet.column + LINE_SIDE * tall) + 1)
    if r1 <= r0 or c1 - c0 < 8:
        return None
    grey = cv2.GaussianBlur(lum, (0, 0), 1.0)[:, c0:c1].astype(np.float64)
    cum = np.vstack([np.zeros((1, c1 - c0)), np.cumsum(grey, axis=0)])
    rows = np.arange(r0, r1)
    below = (cum[rows + 1 + k] - cum[rows + 1]) / k
    above = (cum[rows] - cum[rows - k]) / k
    step = below - above
    valid = np.ones_like(step, dtype=bool)
    if person is not None:  # (the bands must not cross the person)
        cover = np.vstack([np.zeros((1, c1 - c0)), np.cumsum(person[:, c0:c1], axis=0)])
        valid = (cover[rows + 1 + k] - cover[rows - k]) == 0
    n = valid.sum(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # (a row with no valid column: NaN)
        med = np.nan_to_num(np.nanmedian(np.where(valid, step, np.nan), axis=1))
    same = ((np.sign(step) == np.sign(med)[:, None]) & (np.abs(step) >= 0.5 * LINE_STEP) & valid).sum(1)
    score = np.where((n >= 8) & (same >= LINE_SPAN * np.maximum(n, 1)), np.abs(med), 0.0)
    if score.max() < LINE_STEP:
        return None
    return float(rows[int(np.argmax(score))]) + 0.5
