"""Image quilting: an image grown beyond its edges with blocks cut from its own content.

Each side grows column by column outward, each column block by block along the edge (Efros and
Freeman 2001). A block overlaps what is already there (the previous column, and the block before it
in this column) and is the candidate whose overlap matches best (OpenCV `matchTemplate`, masked sum
of squared differences; searched on a copy reduced to about COARSE_BLOCK pixels a block, then refined
at full resolution; one drawn at random among the near-best, so the same piece is not tiled again
and again). Candidates come from the half of the image nearest the edge: on the left and right from
the block's own rows with a small slide (the floor continues the floor, the wall the wall, a sloping
floor line included), above and below from anywhere along the image's width (the floor under a
sloping floor line is wider on one side). Each block is shaded towards what it joins (the colour
difference over the overlap, smoothed along it and fading out across the block) and joined along
the minimum-error boundary cut through the overlap. The image's own pixels are never changed: the
first column joins along the image's edge. Everything is copied at the image's resolution, so the
grown border is as sharp as the image. Left and right grow first, then top and bottom across the
whole width.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter1d

# Block size, as a share of the image's shorter side: larger blocks repeat the photo's large features
# (a door, a window) visibly, smaller ones make more seams and cost more (one search each).
BLOCK_SHARE = 0.3
MIN_BLOCK = 12  # pixels: a smaller block has too little texture to match on
# The overlap matched (and cut through) between a block and what it joins, as a share of the block.
OVERLAP_SHARE = 1 / 3
# Blocks are cut from this share of the image nearest the growing edge: the floor near the bottom, the
# light and perspective near that side.
POOL_SHARE = 0.5
# Above and below, the nearest this share: the rows just above or below the photo's edge (the floor
# nearest the camera, not the plinth above it).
POOL_SHARE_ENDS = 0.3
# A block is at most this share of the pool across, so that there are places to choose from.
BLOCK_POOL = 0.5
# On the left and right, a block comes from its own rows give or take this share of the image's
# height (a sloping floor line, a plinth a little higher on one side).
SHIFT_SHARE = 0.06
# A candidate's error is raised by this share for each earlier block cut from the same place (on
# average over it): without it a column of blocks repeats the previous one's best matches, a stripe
# pattern.
REUSE = 0.5
# Candidates within this share of the best overlap error are equally good; one is drawn at random.
TOLERANCE = 0.1
# The search runs on the image reduced so that a block is about this many pixels (the exhaustive
# search's cost grows with the block's area times the pool's), then refines at full resolution.
COARSE_BLOCK = 16
# The colour difference over an overlap is smoothed along it over this share of the block (the
# brightness of surfaces, not their texture).
SHADE_SIGMA = 0.15
# Along the image's own edge a block is shaded so that its first this many columns match the image's
# last ones: a wall darkening towards the photo's edge goes on from that darkness.
EDGE_COLUMNS = 3
SHADE_MAX = 80.0  # grey levels: a larger difference is a different surface, not its lighting
FEATHER = 3  # pixels across the boundary cut blended, so that a cut through texture is no hard step


def extend(image: np.ndarray, reach: tuple[int, int, int, int], rng: np.random.Generator) -> np.ndarray:
    """`image` (H, W, 3 uint8) grown by `reach` pixels (left, top, right, bottom)."""
    left, top, right, bottom = (max(0, int(r)) for r in reach)
    h, w = image.shape[:2]
    block = max(MIN_BLOCK, round(BLOCK_SHARE * min(w, h)))
    out = np.ascontiguousarray(image)
    if left or right:
        before = _grow(out[:, ::-1], left, block, rng)[:, ::-1][:, :left]
        after = _grow(out, right, block, rng)[:, w:]
        out = np.concatenate([before, out, after], axis=1)
    if top or bottom:
        rows = out.transpose(1, 0, 2)
        span = (left, left + w)
        up = _grow(rows[:, ::-1], top, block, rng, span=span)[:, ::-1][:, :top]
        down = _grow(rows, bottom, block, rng, span=span)[:, h:]
        out = np.concatenate([up, rows, down], axis=1).transpose(1, 0, 2)
    return np.ascontiguousarray(out)


@dataclass
class _Pool:
    """Where blocks are cut from: `full` (float32) and `small` (reduced `coarse` times)."""

    full: np.ndarray
    small: np.ndarray
    coarse: int
    rng: np.random.Generator
    used: np.ndarray  # (small's rows, columns): how many blocks were cut from each reduced pixel


def _grow(
    image: np.ndarray, n: int, block: int, rng: np.random.Generator, span: tuple[int, int] | None = None
) -> np.ndarray:
    """`image` (L, W, 3) grown to the right by `n` columns of blocks cut from its POOL_SHARE nearest
    the edge: from each block's own rows give or take SHIFT_SHARE of L, or with `span` (start, stop)
    from any rows within it."""
    length, width = image.shape[:2]
    out = np.empty((length, width + n, 3), np.uint8)
    out[:, :width] = image
    if n == 0:
        return out
    near = int(np.clip(round((POOL_SHARE if span is None else POOL_SHARE_ENDS) * width), 2, width))
    source = np.ascontiguousarray(image[:, width - near :])
    shift = int(SHIFT_SHARE * length)
    full = (source if span is None else source[span[0] : span[1]]).astype(np.float32)
    block = int(np.clip(block, 2, min(BLOCK_POOL * near, full.shape[0])))
    overlap = int(np.clip(round(OVERLAP_SHARE * block), 1, block // 2))
    step = block - overlap
    coarse = max(1, min(block // COARSE_BLOCK, overlap // 2))
    size = (max(1, full.shape[1] // coarse), max(1, full.shape[0] // coarse))
    small = full if coarse == 1 else cv2.resize(full, size, interpolation=cv2.INTER_AREA)
    pool = _Pool(full, small, coarse, rng, np.zeros(small.shape[:2], np.float32))
    own = np.zeros(length, bool)  # the image's own pixels along its edge: never cut into
    own[slice(*span) if span is not None else slice(None)] = True
    for x in range(width, width + n, step):
        cols = overlap + min(step, width + n - x)
        for y in range(0, max(1, length - overlap), step):
            rows = min(block, length - y)
            tops = (
                (max(0, y - shift), min(y + shift, length - rows))
                if span is None
                else (0, full.shape[0] - rows)
            )
            keep = own[y : y + rows] if x == width else np.zeros(rows, bool)
            _place(out, pool, tops, (x - overlap, y), (cols, rows), overlap, keep)
    return out


def _place(
    out: np.ndarray,
    pool: _Pool,
    tops: tuple[int, int],
    at: tuple[int, int],
    size: tuple[int, int],
    overlap: int,
    keep: np.ndarray,
) -> None:
    """One block of `size` (columns, rows) at `at` (x, y) of `out`, its left `overlap` columns (and,
    below the first block of a column, its top `overlap` rows) over what is already there: cut from
    `pool` with its top row within `tops`, shaded and joined along the boundary cut (along the
    overlap's edge in the rows where `keep`: those are the image's own pixels)."""
    (x, y), (cols, rows) = at, size
    seen = out[y : y + rows, x : x + cols].astype(np.float32)
    known = np.zeros((rows, cols), np.float32)
    known[:, :overlap] = 1.0
    if y > 0:
        known[:overlap] = 1.0
    piece = _pick(pool, tops, seen, known)
    _shade(piece, seen, overlap, y > 0, edge=bool(keep.all()))
    error = ((seen - piece) ** 2).sum(-1)
    alpha = np.ones((rows, cols), np.float32)
    overlaps = ([] if keep.all() else [error[:, :overlap]]) + ([error[:overlap].T] if y > 0 else [])
    cuts = _cut(overlaps) if overlaps else []
    if not keep.all():
        alpha[:, :overlap] = cuts.pop(0)
    alpha[keep, :overlap] = 0.0
    if y > 0:
        alpha[:overlap] = np.minimum(alpha[:overlap], cuts.pop(0).T)
    alpha = alpha[..., None]
    out[y : y + rows, x : x + cols] = np.clip(seen * (1 - alpha) + piece * alpha + 0.5, 0, 255)


def _pick(pool: _Pool, tops: tuple[int, int], seen: np.ndarray, known: np.ndarray) -> np.ndarray:
    """A block (the shape of `seen`, float32) of the pool, its top row within `tops`, whose `known`
    pixels match `seen`'s: drawn among the positions within TOLERANCE of the best error on the reduced
    pool (the error raised where earlier blocks were cut, REUSE), then the best within a reduced
    pixel of it at full resolution."""
    rows, cols = known.shape
    c = pool.coarse
    size = (max(1, cols // c), max(1, rows // c))
    if c == 1:
        small_seen, small_known = seen, known
    else:
        small_known = (cv2.resize(known, size, interpolation=cv2.INTER_AREA) > 0.999).astype(np.float32)
        small_seen = cv2.resize(seen, size, interpolation=cv2.INTER_AREA)
    y0 = tops[0] // c
    error = _match(pool.small[y0 : tops[1] // c + size[1]], small_seen, small_known)
    used = cv2.boxFilter(pool.used, -1, size, anchor=(0, 0), borderType=cv2.BORDER_CONSTANT)
    error *= 1.0 + REUSE * used[y0 : y0 + error.shape[0], : error.shape[1]]
    y, x = _draw(error, pool.rng)
    pool.used[y0 + y : y0 + y + size[1], x : x + size[0]] += 1.0
    if c == 1:
        return pool.full[y0 + y : y0 + y + rows, x : x + cols].copy()
    y, x = (y + y0) * c, x * c
    ya, yb = max(tops[0], y - c), min(tops[1], y + c)
    xa, xb = max(0, x - c), min(pool.full.shape[1] - cols, x + c)
    error = _match(pool.full[ya : yb + rows, xa : xb + cols], seen, known)
    dy, dx = np.unravel_index(int(np.argmin(error)), error.shape)
    return pool.full[ya + dy : ya + dy + rows, xa + dx : xa + dx + cols].copy()


def _match(window: np.ndarray, seen: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Masked sum of squared differences of `seen` against every position in `window`."""
    error = cv2.matchTemplate(np.ascontiguousarray(window), seen, cv2.TM_SQDIFF, mask=known)
    return np.nan_to_num(error.astype(np.float64), nan=np.inf, posinf=np.inf)


def _draw(error: np.ndarray, rng: np.random.Generator) -> tuple[int, int]:
    """A position (row, column) drawn among those within TOLERANCE of the least `error`."""
    best = float(error.min())
    ys, xs = np.nonzero(error <= best * (1 + TOLERANCE) + 1e-6)
    k = int(rng.integers(len(ys)))
    return int(ys[k]), int(xs[k])


def _shade(piece: np.ndarray, seen: np.ndarray, overlap: int, top: bool, edge: bool = False) -> None:
    """Shift `piece`'s colour towards `seen` in place, so that brightness carries on across the seam:
    per row, the median difference across the left overlap (where `edge`, the block joining the
    image's own edge: between the image's last EDGE_COLUMNS columns and the block's first ones beyond
    them), and per column across the top one (where
    `top`; the nearer one weighs more), each smoothed along its overlap, at most SHADE_MAX, and fading
    out linearly from it across the rest of the block (so that shading never drifts from block to
    block)."""
    rows, cols = seen.shape[:2]
    sigma = max(1.0, SHADE_SIGMA * max(rows, cols))
    diff = seen - piece
    if edge:  # the last columns of the image against the block's first new ones, across the seam
        k = max(1, min(EDGE_COLUMNS, overlap, cols - overlap))
        near = seen[:, overlap - k : overlap] - piece[:, overlap : overlap + k]
    else:
        near = diff[:, :overlap]
    left = gaussian_filter1d(np.median(near, axis=1), sigma, axis=0, mode="nearest")
    left = np.clip(left, -SHADE_MAX, SHADE_MAX)
    w_left = np.clip(1.0 - (np.arange(cols) - overlap + 1) / max(1, cols - overlap), 0.0, 1.0)
    w_left = np.broadcast_to(w_left[None, :, None], (rows, cols, 1)).astype(np.float32)
    if not top:
        piece += left[:, None, :] * w_left
        return
    above = gaussian_filter1d(np.median(diff[:overlap], axis=0), sigma, axis=0, mode="nearest")
    above = np.clip(above, -SHADE_MAX, SHADE_MAX)
    w_top = np.clip(1.0 - (np.arange(rows) - overlap + 1) / max(1, rows - overlap), 0.0, 1.0)
    w_top = np.broadcast_to(w_top[:, None, None], (rows, cols, 1)).astype(np.float32)
    # Each point takes the offset of the overlap nearer to it (inverse distance), faded as that one.
    near_left = 1.0 / (np.maximum(np.arange(cols) - overlap + 1, 0) + 1.0)[None, :, None]
    near_top = 1.0 / (np.maximum(np.arange(rows) - overlap + 1, 0) + 1.0)[:, None, None]
    mixed = (left[:, None, :] * near_left + above[None] * near_top) / (near_left + near_top)
    piece += mixed * np.maximum(w_left, w_top)


def _cut(errors: list[np.ndarray]) -> list[np.ndarray]:
    """Per overlap error (L, overlap): the new block's weights across the overlap, 0 before the
    minimum-error boundary cut (a path of one column per row, moving at most one column per row,
    found by dynamic programming, all overlaps at once), 1 after, blended over FEATHER pixels."""
    length = max(e.shape[0] for e in errors)
    width = max(e.shape[1] for e in errors)
    cost = np.full((len(errors), length, width + 2), np.inf)
    for k, e in enumerate(errors):
        cost[k, : e.shape[0], 1 : e.shape[1] + 1] = e
        cost[k, e.shape[0] :, 1 : e.shape[1] + 1] = 0.0  # rows past a shorter overlap: free
    for y in range(1, length):
        prev = cost[:, y - 1]
        cost[:, y, 1:-1] += np.minimum(np.minimum(prev[:, :-2], prev[:, 1:-1]), prev[:, 2:])
    path = np.empty((len(errors), length), np.int64)
    path[:, -1] = np.argmin(cost[:, -1], axis=1)
    which = np.arange(len(errors))
    for y in range(length - 2, -1, -1):
        around = cost[which[:, None], y, path[:, y + 1, None] + np.arange(-1, 2)[None, :]]
        path[:, y] = path[:, y + 1] - 1 + np.argmin(around, axis=1)
    out = []
    for k, e in enumerate(errors):
        cols = np.arange(e.shape[1])[None, :] - (path[k, : e.shape[0], None] - 1)
        out.append(np.clip(cols / FEATHER + 0.5, 0.0, 1.0).astype(np.float32))
    return out
