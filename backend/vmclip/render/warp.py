"""The flow maps an output frame is warped with (`Flow`, one per frame) and the warp itself: the
source photos' pixels sampled along the flow, blended with the fill, with the person's matte.

A flow pixel's `candidate` says what it shows (`Candidate`): the surface point as a photo saw it, its
mirror image, the same body part seen from its other side, or what a limb hid in the photo (from the
photo with the limb painted out); -1 where only the fill shows."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import cv2
import numpy as np

from vmclip.geometry import SEEN_FACING
from vmclip.person.texture import sample
from vmclip.render.regions import HEAD as HEAD_REGION
from vmclip.render.source_view import SourceView, lookup

# Inside the body the matte is the person's; only a band this wide (pixels at 512) along the body's
# outline takes the photo's matte, which trims a fitted body that is wider than the person.
OUTLINE_BAND_PX = 4.0
# In that band the photo's matte is trusted only where the photo saw the surface at least this
# squarely; a point it saw edge-on sat on its outline, where the matte is half background.
MATTE_FACING = SEEN_FACING
# Carried clothes: matte pieces smaller than this share of the frame are sampling noise (specks).
SPECK_SHARE = 1e-4


class Candidate(IntEnum):
    """Where a body pixel's colour comes from (in the order the flow offers them)."""

    NONE = -1  # no photo: the fill
    SEEN = 0  # the surface point, where a photo sees it
    MIRROR = 1  # the mirror-image point of the body (the opposite limb), where a photo sees it
    OTHER_SIDE = 2  # the same body part seen from its other side (the back texture, no details)
    PAINTED_OUT = 3  # what a limb hid in the photo, from the photo with that limb painted out


@dataclass
class Flow:
    """Backward flow for one posed body over a window of the output frame (all arrays (h, w)).

    `map_x`, `map_y`: source-photo coordinates; `source`: index of the source photo used (-1: none);
    `body`: the body's mask; `hole`: body pixels no source showed (fill colour only); `part`: body part
    under the pixel (-2 - p for carried clothes hanging from part p; -1 elsewhere); `facing`: how
    squarely the chosen photo saw it; `weight`: share of the photo's colour against `fill` (h, w, 3);
    `fill_x`, `fill_y`: first-photo coordinates of the fill texture where `textured`; `edge`: the thin
    ring just outside the body that takes the photo's soft outline; `candidate`: a `Candidate`."""

    map_x: np.ndarray
    map_y: np.ndarray
    source: np.ndarray
    body: np.ndarray
    hole: np.ndarray
    part: np.ndarray
    facing: np.ndarray
    weight: np.ndarray
    fill: np.ndarray
    fill_x: np.ndarray
    fill_y: np.ndarray
    textured: np.ndarray
    edge: np.ndarray
    candidate: np.ndarray
    # (h, w, 3) the avatar's atlas colour, if it has one, where the warp may show it: on the head, in the
    # holes and where the candidate is OTHER_SIDE or MIRROR (zero elsewhere)
    atlas: np.ndarray | None = None


@dataclass
class Warped:
    """A warped person: `rgb` (h, w, 3) float32 0..255 and `alpha` (h, w) over the window whose
    top-left pixel in the output frame is (x0, y0); `flow` holds the maps behind it (same window)."""

    rgb: np.ndarray
    alpha: np.ndarray
    x0: int
    y0: int
    flow: Flow


def _at(image: np.ndarray, x: np.ndarray, y: np.ndarray, border: int = cv2.BORDER_REPLICATE) -> np.ndarray:
    """`image` sampled (bilinear) at the points (x, y) only: the flow's windows are mostly background,
    and remapping just the pixels a step uses is several times cheaper than remapping the window
    (each output pixel of a remap depends only on its own coordinates, so the values are the same)."""
    return sample(image, np.stack([x, y], 1), border=border)


def put_pixels(image: np.ndarray, index: np.ndarray, values: np.ndarray) -> None:
    """`image`'s pixels at the flat indices `index` (N,) set to `values` (N, C), in place: each pixel
    moved as one C-channel item (numpy's row-wise fancy assignment is several times slower)."""
    if not image.flags.c_contiguous:
        raise ValueError("put_pixels needs a C-contiguous image")
    item = np.dtype((np.void, image.dtype.itemsize * image.shape[-1]))
    rows = np.ascontiguousarray(values, dtype=image.dtype).reshape(-1, image.shape[-1])
    image.reshape(-1).view(item)[index] = rows.view(item).ravel()


def pixels_at(image: np.ndarray, index: np.ndarray) -> np.ndarray:
    """`image`'s pixels (N, C) at the flat indices `index` (N,) (np.take: faster than fancy indexing)."""
    return np.take(image.reshape(-1, image.shape[-1]), index, axis=0)


def warp_flow(
    fl: Flow, sources: list[SourceView], part_region: np.ndarray, px: float, width: int, height: int
) -> tuple[np.ndarray, np.ndarray]:
    """Colour (h, w, 3) float32 and matte (h, w) of the person over the flow's window: the fill
    (textured from the first photo off the head), the sources' pixels along the flow blended in,
    then the matte's outline. `part_region`: body region of every part; `px`: output pixels per pixel
    at 512; (width, height): the output frame's size."""
    rgb = _fill_rgb(fl, sources[0], part_region)
    if fl.atlas is not None:
        # The avatar where no photo saw the surface squarely enough (the head's fill was one smooth
        # colour; the back of the head shows the hair's texture).
        # Under a mirror image's blend too: the first photo's texture of the same part there is
        # the front's (a print's letters on a turned person's back).
        body = np.flatnonzero(fl.body)
        head = part_region[np.maximum(fl.part.ravel()[body], 0)] == HEAD_REGION
        mirror = fl.candidate.ravel()[body] == Candidate.MIRROR
        use = body[fl.hole.ravel()[body] | head | mirror]
        put_pixels(rgb, use, pixels_at(fl.atlas, use))
    alpha = np.zeros(fl.body.shape, dtype=np.float32)
    alpha[fl.hole] = 1.0
    for si, src in enumerate(sources):
        sel = np.flatnonzero(fl.source == si)
        if len(sel):
            _blend_source(fl, src, sel, rgb, alpha, (width, height))
    return _finish_matte(fl, rgb, alpha, px)


def _fill_rgb(fl: Flow, first: SourceView, part_region: np.ndarray) -> np.ndarray:
    """The fill colour; off the head, the first photo's texture of the same part where it saw it
    squarely."""
    rgb = fl.fill.copy()
    tex = np.flatnonzero(fl.textured)
    if not len(tex):
        return rgb
    x, y = fl.fill_x.ravel()[tex], fl.fill_y.ravel()[tex]
    sampled = _at(first.bled, x, y).astype(np.float32)
    if first.clean is not None:
        # Where the fill texture reaches under a limb that hid this surface in the photo, the
        # photo with that limb painted out (the limb's own fill keeps the limb).
        limb = lookup(first.clean_region, np.stack([x, y], 1), -1)
        clean = (limb >= 0) & (limb != part_region[np.maximum(fl.part.ravel()[tex], 0)])
        if clean.any():
            sampled[clean] = _at(first.clean, x[clean], y[clean])
    put_pixels(rgb, tex, sampled)
    return rgb


def _blend_source(
    fl: Flow,
    src: SourceView,
    sel: np.ndarray,
    rgb: np.ndarray,
    alpha: np.ndarray,
    frame: tuple[int, int],
) -> None:
    """Blend source `src`'s pixels into `rgb` and `alpha` (in place, both C-contiguous) where the flow
    takes them (`sel`: flat indices into the window); `frame`: the output frame's (width, height)."""
    x, y = fl.map_x.ravel()[sel], fl.map_y.ravel()[sel]
    col = _at(src.bled, x, y).astype(np.float32)
    # (index arrays, not boolean masks, for the subsets used several times)
    candidate = fl.candidate.ravel()[sel]
    back = np.flatnonzero(candidate == Candidate.OTHER_SIDE)
    if len(back) and fl.atlas is not None:  # a surface the photo saw only from its other side
        col[back] = pixels_at(fl.atlas, sel[back])
    elif len(back):  # the same part seen from its other side: without the front's details
        col[back] = _at(src.back, x[back], y[back])
    painted = np.flatnonzero(candidate == Candidate.PAINTED_OUT)
    if len(painted):  # what a limb hid in this photo, from the photo with the limb painted out
        col[painted] = _at(src.clean, x[painted], y[painted])
    a = _at(src.mask_trim, x, y, cv2.BORDER_CONSTANT)
    on = fl.body.ravel()[sel]
    on_edge = fl.edge.ravel()[sel]
    edge, off_body = np.flatnonzero(on_edge), np.flatnonzero(~on & ~on_edge)
    if len(edge):
        a[edge] = _at(src.mask_edge, x[edge], y[edge], cv2.BORDER_CONSTANT)
    if len(off_body):
        a_off = _at(src.mask_off, x[off_body], y[off_body], cv2.BORDER_CONSTANT)
        # No specks: pieces of a few dozen pixels (at 512) are sampling noise.
        solid = np.zeros(fl.body.shape, dtype=np.uint8)
        solid.ravel()[sel[off_body]] = a_off > 0.3
        count, labels = cv2.connectedComponents(solid, connectivity=8)
        if count > 1:
            keep = np.bincount(labels.ravel(), minlength=count) >= SPECK_SHARE * frame[0] * frame[1]
            keep[0] = False
            a_off *= keep[labels.ravel()[sel[off_body]]]
        a[off_body] = a_off
    body, rest = sel[on], sel[~on]
    wt = np.take(fl.weight.ravel(), body)[:, None]
    put_pixels(rgb, body, wt * np.compress(on, col, axis=0) + (1.0 - wt) * pixels_at(rgb, body))
    put_pixels(rgb, rest, np.compress(~on, col, axis=0))  # the ring and the carried clothes: as they are
    alpha.ravel()[sel] = a


def _finish_matte(fl: Flow, rgb: np.ndarray, alpha: np.ndarray, px: float) -> tuple[np.ndarray, np.ndarray]:
    """The person's matte: solid inside the body, the photo's matte in a band along its outline,
    thin gaps to the carried clothes closed (and their colour in-painted)."""
    body = fl.body
    band = max(2, int(round(OUTLINE_BAND_PX * px)))
    interior = cv2.erode(
        body.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band + 1, 2 * band + 1))
    )
    alpha[interior.astype(bool)] = 1.0
    band_px = body & ~interior.astype(bool)
    alpha[band_px] = np.maximum(alpha[band_px], np.clip(1.0 - fl.facing[band_px] / MATTE_FACING, 0.0, 1.0))
    # Close thin gaps between the body and the clothes carried beside it (a slightly misplaced fit
    # leaves a seam of a pixel or two that would show the background through the person).
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    alpha = np.maximum(alpha, cv2.morphologyEx(alpha, cv2.MORPH_CLOSE, kernel))
    unset = (fl.source < 0) & ~body & (alpha > 0)  # gap pixels the closing made opaque
    if unset.any():
        rgb = cv2.inpaint(
            np.clip(rgb, 0, 255).astype(np.uint8), unset.astype(np.uint8), 5, cv2.INPAINT_TELEA
        ).astype(np.float32)
    return rgb, alpha
