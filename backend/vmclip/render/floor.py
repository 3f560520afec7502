"""The floor the photo shows, for a person photographed in mid-air (a jump, a dancer's leap).

The renderer stands every frame on a ground line. The fitted soles are that line for a person who
stands; for one in mid-air they are not, and the whole video would float. What shows the floor is the
contact shadow: a dark patch on the floor below the feet, detached from them. `photo_floor` looks for
it below the fitted feet and, when it is clearly below them, puts the floor at the patch's centre (the
floor point under the feet, at the feet's distance from the camera). Without such a patch the soles
stay the floor: a photo without a visible shadow gives no evidence of a gap.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vmclip.geometry import Camera

# Lengths are shares of the person's height in the photo.
SEARCH_BELOW = 0.6  # the shadow is looked for this far below the soles
SEARCH_SIDE = 0.12  # ... and this far beside the feet
REFERENCE_SIDE = 0.6  # the lit floor of each row is taken this far beside the feet
MIN_GAP = 0.04  # a shadow whose top is nearer the soles than this touches them: the person stands
MIN_AREA = 0.002  # of the height squared: smaller dark specks are texture
SHADE = (0.15, 0.72)  # a shadow dims the lit floor to between these (darker: a dark object)
MAX_DROP_M = 1.5  # a floor further below the soles than this is not the person's


@dataclass
class Floor:
    """The rest floor's height (world y, metres) and how it was found ("soles" or "shadow")."""

    ground_y: float
    source: str


def photo_floor(image: np.ndarray, mask: np.ndarray, camera: Camera, vertices: np.ndarray) -> Floor:
    """The floor under the fitted body `vertices` (V, 3, world) posed as in the photo `image` (H, W, 3)
    with person `mask` (H, W, 0..1) and `camera` (at the image's size)."""
    v = np.asarray(vertices, dtype=np.float64)
    soles = float(v[:, 1].min())
    keep = Floor(soles, "soles")
    uv, z = camera.project_depth(v)
    if not (z > 0).all():
        return keep
    tall = float(np.ptp(uv[:, 1]))
    feet = v[:, 1] < soles + 0.03
    sole_row = float(uv[feet, 1].max())
    x0, x1 = float(uv[feet, 0].min()), float(uv[feet, 0].max())
    h, w = mask.shape
    r0, r1 = int(sole_row + MIN_GAP * tall * 0.5), int(min(h, sole_row + SEARCH_BELOW * tall))
    if r1 - r0 < 4 or tall < 40:
        return keep
    lum = np.asarray(image, dtype=np.float32)[..., :3].mean(-1)
    person = cv2.dilate((np.asarray(mask) > 0.3).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    ref_c0, ref_c1 = max(0, int(x0 - REFERENCE_SIDE * tall)), min(w, int(x1 + REFERENCE_SIDE * tall) + 1)
    rows = lum[r0:r1, ref_c0:ref_c1]
    ref = np.nanmedian(np.where(person[r0:r1, ref_c0:ref_c1], np.nan, rows), axis=1)
    c0, c1 = max(0, int(x0 - SEARCH_SIDE * tall)), min(w, int(x1 + SEARCH_SIDE * tall) + 1)
    ratio = lum[r0:r1, c0:c1] / np.maximum(ref[:, None], 1.0)
    dark = (ratio > SHADE[0]) & (ratio < SHADE[1]) & ~person[r0:r1, c0:c1] & np.isfinite(ref)[:, None]
    count, labels, stats, centres = cv2.connectedComponentsWithStats(dark.astype(np.uint8), connectivity=8)
    if count < 2:
        return keep
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    if stats[best, cv2.CC_STAT_AREA] < MIN_AREA * tall * tall:
        return keep
    top = r0 + stats[best, cv2.CC_STAT_TOP]
    if top - sole_row < MIN_GAP * tall:
        return keep  # the shadow touches the feet: the person stands on it
    row = r0 + float(centres[best, 1])
    # The floor point under the feet: that row, at the feet's distance from the camera.
    depth = float(np.median(z[feet]))
    ray = np.linalg.solve(np.asarray(camera.K, float), [float(np.mean(uv[feet, 0])), row, 1.0])
    world = np.asarray(camera.R, float).T @ (ray * depth / ray[2] - np.asarray(camera.t, float))
    if not soles - MAX_DROP_M < world[1] < soles - 0.02:
        return keep
    return Floor(float(world[1]), "shadow")
