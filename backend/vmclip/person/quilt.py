"""Image quilting: an image grown beyond its edges with blocks cut from its own content.

Each side grows column by column outward, each column block by block along the edge (Efros and
Freeman 2001). A block overlaps what is already there (the previous column, and the block before it
in this column) and is the candidate whose overlap matches best (OpenCV `matchTemplate`, masked sum
of squared differences; searched on a copy reduced to about COARSE_BLOCK pixels a block, then refined
at full resolution; one drawn at random among the near-best, so the same piece is not tiled again
and again). Candidates come from the half of the image nearest the edge: on the left and right from
the block's own rows with a small slide (the floor continues the floor, the wall the wall, a sloping
floor line included), above and below from anywhere along the image's width (the floor under a
sloping floor line is wider on one side) where the block lies on the surface the edge shows (the
floor, not the plinth standing on a strip of it). Blocks are not cut from pixels the caller marks
(the hole in-painted where the person stood) where the pool has room without them. Each block is
shaded towards what it joins (the colour difference over the overlap, smoothed along it and fading
out across the block) and joined along the minimum-error boundary cut through the overlap. The
image's own pixels are never changed: the first column joins along the image's edge. Everything is
copied at the image's resolution, so the grown border is as sharp as the image. Left and right grow
first, then top and bottom across the whole width.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# Block size, as a share of the image's shorter side: larger blocks repeat the photo's large features
# (a door, a window) visibly, smaller ones make more seams and cost more (one search each).
BLOCK_SHARE = 0.36
MIN_BLOCK = 12  # pixels: a smaller block has too little texture to match on
# The overlap matched (and cut through) between a block and what it joins, as a share of the block.
OVERLAP_SHARE = 1 / 3
# Blocks are cut from this share of the image nearest the growing edge: the floor near the bottom, the
# light and perspective near that side.
POOL_SHARE = 0.5
# Above and below, the nearest this share: the rows just above or below the photo's edge (the floor
# nearest the camera, not the plinth above it).
POOL_SHARE_ENDS = 0.35
# A block is at most this share of the pool across, so that there are places to choose from.
BLOCK_POOL = 0.6
# Above and below, where the pool runs the whole width (places enough along it), at most this share
# of the pool's depth: large blocks from rows near the edge, so the floor goes on as floor in few
# blocks (each is a search, a cut and seams).
BLOCK_POOL_ENDS = 0.75
# On the left and right, a block comes from its own rows give or take this share of the image's
# height (a sloping floor line, a plinth a little higher on one side).
SHIFT_SHARE = 0.06
# ... about where the block beside it in the last column was cut, so a sloping floor line goes on
# sloping beyond the slide (it stepped back up block after block), at most this share of the height
# away from the block's own rows.
MAX_DRIFT = 0.25
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
# A straight line along the growing edge within the pool (a floor line, a skirting board, a door's
# edge) would be copied block after block into parallel bands across the grown border: the pool
# starts past the line nearest the edge, so the border continues the surface the edge shows. A line
# is a step of LINE_STEP levels (in the channel that steps most, across 2 LINE_WIDTH pixels) along at
# least LINE_SPAN of its length. More than
# LINE_GROUPS separate lines are a pattern (bricks, tiles, stripes) and the pool stays whole, as it
# does when less than LINE_MIN_POOL of the edge's length would be left beyond the line.
LINE_STEP = 10.0
LINE_SPAN = 0.3
LINE_GROUPS = 2
LINE_GAP = 3  # pixels skipped past the line: its blur and a resized photo's ringing
LINE_WIDTH = 3  # the step is taken over this many pixels either side: a soft edge is a line too
LINE_MIN_POOL = 0.1
LINE_RUN = 6 * LINE_WIDTH  # pixels: a soft edge's blur, a skirting board's width
# Above and below, a block is cut only where it lies on the surface the photo's edge shows (the floor
# under a plinth that stands on a thin strip of it): a block taller than that strip would carry the
# plinth into the floor below. The surface is, per column, what stays within SURFACE_STEP grey levels
# (or SURFACE_NOISE times the edge's own spread, for a textured floor) of the colour at the edge,
# until a run of SURFACE_RUN of the edge's length (at least MIN_SURFACE_RUN pixels) differs (a tile's
# joint, a crack or a dark cobble is thinner). Colours are smoothed along the edge over SURFACE_ALONG
# of its length first (a pebble is no surface).
SURFACE_STEP = 30.0
SURFACE_NOISE = 4.0
SURFACE_RUN = 0.04
MIN_SURFACE_RUN = 6
SURFACE_ALONG = 0.02
SURFACE_EDGE = 4  # columns at the edge (past LINE_GAP) whose median colour is the surface's
# A block is on the surface when this share of it is (a few pixels of a pebble across it are not
# another surface); the block shrinks (by SURFACE_SHRINK a try) until at least
# SURFACE_PLACES places along the edge per block of its length hold one.
SURFACE_SHARE = 0.95
SURFACE_SHRINK = 0.8
# Blocks smaller than this share of the usual size would take many more searches, each over the pool
# at full resolution (tens of seconds for a large border), and show the floor's grain as a grid.
SURFACE_MIN_BLOCK = 0.3
SURFACE_PLACES = 3
# Beside the photo, and above or below it where a block has no place on the surface clear of what is
# to be avoided (the in-painted hole), a place's match error is raised by this much times the share
# of it to be avoided.
FOUL_WEIGHT = 10.0


def extend(
    image: np.ndarray,
    reach: tuple[int, int, int, int],
    rng: np.random.Generator,
    avoid: np.ndarray | None = None,
) -> np.ndarray:
    """`image` (H, W, 3 uint8) grown by `reach` pixels (left, top, right, bottom); blocks keep off
    `avoid` (H, W bool: pixels in-painted where the person stood, a smear that copied out would
    streak the border): above and below, cut clear of it wherever enough of the pool is, else (and
    always beside the image) where they take least of it."""
    left, top, right, bottom = (max(0, int(r)) for r in reach)
    h, w = image.shape[:2]
    block = max(MIN_BLOCK, round(BLOCK_SHARE * min(w, h)))
    out = np.ascontiguousarray(image)
    avoid = np.zeros((h, w), bool) if avoid is None else np.asarray(avoid, bool)
    if left or right:
        before = _grow(out[:, ::-1], left, block, rng, avoid[:, ::-1])[:, ::-1][:, :left]
        after = _grow(out, right, block, rng, avoid)[:, w:]
        out = np.concatenate([before, out, after], axis=1)
        avoid = np.pad(avoid, ((0, 0), (left, right)))  # (the grown sides are copies of the photo)
    if top or bottom:
        rows, avoid_rows = out.transpose(1, 0, 2), avoid.T
        span = (left, left + w)
        up = _grow(rows[:, ::-1], top, block, rng, avoid_rows[:, ::-1], span=span)[:, ::-1][:, :top]
        down = _grow(rows, bottom, block, rng, avoid_rows, span=span)[:, h:]
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
    fits: np.ndarray | None = None  # (full's rows, columns): where a block may start; None: anywhere
    # (full's rows, columns): the share of a block starting there that is to be avoided; where a
    # block's rows have no place that `fits`, the least of it is preferred (FOUL_WEIGHT)
    foul: np.ndarray | None = None


def _grow(
    image: np.ndarray,
    n: int,
    block: int,
    rng: np.random.Generator,
    avoid: np.ndarray,
    span: tuple[int, int] | None = None,
) -> np.ndarray:
    """`image` (L, W, 3) grown to the right by `n` columns of blocks cut from its POOL_SHARE nearest
    the edge, keeping off `avoid` (L, W): from each block's own rows give or take SHIFT_SHARE of L
    (the least of `avoid` preferred), or with `span` (start, stop) from any rows within it and on the
    surface the edge shows (clear of `avoid` where the surface has room)."""
    length, width = image.shape[:2]
    out = np.empty((length, width + n, 3), np.uint8)
    out[:, :width] = image
    if n == 0:
        return out
    near = int(np.clip(round((POOL_SHARE if span is None else POOL_SHARE_ENDS) * width), 2, width))
    own_rows = slice(None) if span is None else slice(*span)
    near -= _past_line(image[own_rows, width - near :], avoid[own_rows, width - near :])
    source = np.ascontiguousarray(image[:, width - near :])
    shift = int(SHIFT_SHARE * length)
    full = (source if span is None else source[span[0] : span[1]]).astype(np.float32)
    block = int(
        np.clip(block, 2, min((BLOCK_POOL if span is None else BLOCK_POOL_ENDS) * near, full.shape[0]))
    )
    clear = ~(avoid[:, width - near :] if span is None else avoid[span[0] : span[1], width - near :])
    usual, foul, fits = block, None, None
    if span is not None:
        block, fits = _on_surface(full, block, clear)
        if fits is not None:  # the search runs over where blocks may start (any rows: `tops` below)
            rows, cols = np.flatnonzero(fits.any(1)), np.flatnonzero(fits.any(0))
            crop = np.s_[rows[0] : rows[-1] + block, cols[0] : cols[-1] + block]
            full, fits, clear = np.ascontiguousarray(full[crop]), fits[crop], clear[crop]
    # (Beside the photo the hole only weighs against a place: a place clear of it but rows off the
    # block's own would step a skirting board or a window sill at the photo's edge.)
    if not clear.all():  # (where no clear place will do, `_pick` prefers the least foul)
        foul = cv2.boxFilter(
            (~clear).astype(np.float32), -1, (block, block), anchor=(0, 0), borderType=cv2.BORDER_CONSTANT
        )
    overlap = int(np.clip(round(OVERLAP_SHARE * block), 1, block // 2))
    step = block - overlap
    # (a block shrunk to the surface is searched as coarsely as the usual one: as many times more
    # searches as it is smaller, each no dearer)
    coarse = max(1, min(usual // COARSE_BLOCK, overlap // 2))
    size = (max(1, full.shape[1] // coarse), max(1, full.shape[0] // coarse))
    small = full if coarse == 1 else cv2.resize(full, size, interpolation=cv2.INTER_AREA)
    pool = _Pool(full, small, coarse, rng, np.zeros(small.shape[:2], np.float32), fits, foul)
    own = np.zeros(length, bool)  # the image's own pixels along its edge: never cut into
    own[slice(*span) if span is not None else slice(None)] = True
    # Beside the photo, per row, how far above (negative) or below its own rows the last column's
    # block was cut: the next column slides about that, so a sloping line goes on sloping.
    drift = np.zeros(length, np.int64)
    for x in range(width, width + n, step):
        cols = overlap + min(step, width + n - x)
        cut = drift.copy()
        for y in range(0, max(1, length - overlap), step):
            rows = min(block, length - y)
            if span is None:
                centre = y + int(
                    np.clip(np.median(drift[y : y + rows]), -MAX_DRIFT * length, MAX_DRIFT * length)
                )
                lo = int(np.clip(centre - shift, 0, length - rows))
                tops = (lo, int(np.clip(centre + shift, lo, length - rows)))
            else:
                tops = (0, full.shape[0] - rows)
            keep = own[y : y + rows] if x == width else np.zeros(rows, bool)
            top = _place(out, pool, tops, (x - overlap, y), (cols, rows), overlap, keep)
            cut[y : y + rows] = top - y
        drift = cut
    return out


def _past_line(pool: np.ndarray, avoid: np.ndarray) -> int:
    """Columns of `pool` (L, near, 3; its last column at the growing edge) up to and just past the
    straight line along it nearest the edge (LINE_STEP..LINE_MIN_POOL); 0 where there is none. Steps
    touching `avoid` (L, near) are none: the in-painted hole's outline is no line in the picture."""
    colour = pool.astype(np.float32)
    # (L, near - 2 LINE_WIDTH): the step across column c + LINE_WIDTH, in the channel that steps most
    # (a lavender wall on a beige floor is one grey)
    step = np.abs(colour[:, 2 * LINE_WIDTH :] - colour[:, : -2 * LINE_WIDTH]).max(-1)
    if avoid.any():
        width = 2 * LINE_WIDTH + 1
        touched = cv2.dilate(avoid.astype(np.uint8), np.ones((1, width), np.uint8)).astype(bool)
        step[touched[:, LINE_WIDTH : LINE_WIDTH + step.shape[1]]] = 0.0
    if step.shape[1] == 0:
        return 0
    lines = np.flatnonzero(np.quantile(step, 1.0 - LINE_SPAN, axis=0) > LINE_STEP) + LINE_WIDTH
    # (the edge's own last lines are no line along it: a resize's ringing, a dark last row)
    lines = lines[lines < pool.shape[1] - 1 - LINE_GAP - LINE_WIDTH]
    # Steps closer than 2 LINE_WIDTH apart are one line's two edges; a run of them wider than
    # LINE_RUN is texture (a rough wall steps everywhere), not a line.
    if len(lines) == 0:
        return 0
    breaks = np.flatnonzero(np.diff(lines) > 2 * LINE_WIDTH)
    starts, ends = lines[np.r_[0, breaks + 1]], lines[np.r_[breaks, len(lines) - 1]]
    if len(starts) > LINE_GROUPS or int((ends - starts).max()) > LINE_RUN:
        return 0
    start = int(lines[-1]) + 1 + LINE_GAP
    return start if pool.shape[1] - start >= LINE_MIN_POOL * pool.shape[0] else 0


def _surface(pool: np.ndarray) -> np.ndarray:
    """(L, near) bool: the pixels of `pool` (L, near, 3 float32; its last column at the growing edge)
    on the surface the edge shows: in each row, those past the last run of SURFACE_RUN pixels whose
    colour differs from the edge's (SURFACE_STEP..SURFACE_EDGE)."""
    length, near = pool.shape[:2]
    runs = max(MIN_SURFACE_RUN, round(SURFACE_RUN * length))
    along = max(3, int(SURFACE_ALONG * length)) | 1
    colour = cv2.GaussianBlur(cv2.blur(pool, (1, along)), (0, 0), 1.0)
    end = max(1, near - LINE_GAP)  # (the edge's own last columns: a resize's ringing)
    ref = np.median(colour[:, max(0, end - SURFACE_EDGE) : end], axis=1)  # (L, 3)
    spread = np.median(np.abs(colour[:, max(0, end - 3 * SURFACE_EDGE) : end] - ref[:, None]).max(-1))
    differs = np.abs(colour - ref[:, None]).max(-1) > max(SURFACE_STEP, SURFACE_NOISE * float(spread))
    # (L, near): a run of `runs` differing pixels starts at this column
    run = cv2.boxFilter(
        differs.astype(np.float32), -1, (runs, 1), normalize=False, anchor=(0, 0),
        borderType=cv2.BORDER_CONSTANT,
    ) > runs - 0.5  # fmt: skip
    cols = np.arange(near)
    last = np.where(run, cols[None, :], -1).max(1)
    start = np.where(last >= 0, last + runs, 0)
    return cols[None, :] >= start[:, None]


def _places(inside: np.ndarray, size: int, need: float = SURFACE_PLACES) -> np.ndarray | None:
    """Where a block of `size` may start in a pool (bool, `inside`'s shape): SURFACE_SHARE of its
    pixels within the pool `inside` (float32 0/1; a block cut short by the pool's end is judged on
    what it has); None where that leaves fewer than `need` places along the edge per block of its
    length."""
    off = cv2.boxFilter(
        1.0 - inside, -1, (size, size), anchor=(0, 0), normalize=False, borderType=cv2.BORDER_CONSTANT
    )
    fits = off <= (1.0 - SURFACE_SHARE) * size * size + 1e-3
    whole = fits[: fits.shape[0] - size + 1, : fits.shape[1] - size + 1]  # (where a whole block fits)
    return fits if whole.any(1).sum() >= max(1.0, need * size) else None


def _on_surface(pool: np.ndarray, block: int, clear: np.ndarray) -> tuple[int, np.ndarray | None]:
    """The block size and where blocks of it may start in `pool` (bool, the pool's shape) so that
    they lie on the surface the edge shows (`_surface`) and, where the photo has room for it, on
    `clear` pixels: shrunk by SURFACE_SHRINK until they fit (`_places`), to SURFACE_MIN_BLOCK of
    `block` at least; the given block and None where not even that fits (the whole pool is then used)."""
    surface = _surface(pool)
    smallest = max(MIN_BLOCK, round(SURFACE_MIN_BLOCK * block))
    for inside in (surface & clear, surface):
        size = block
        while size >= smallest:
            fits = _places(inside.astype(np.float32), size)
            if fits is not None:
                return size, fits
            size = int(size * SURFACE_SHRINK)
    return block, None


def _fits_at(fits: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """(len(rows), len(cols)) bool: `fits` at those rows and columns, False beyond it."""
    r, c = fits.shape
    inside = (rows < r)[:, None] & (cols < c)[None, :]
    return fits[np.minimum(rows, r - 1)][:, np.minimum(cols, c - 1)] & inside


def _restrict(pool: _Pool, error: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> None:
    """`error` at the pool's `rows` and `cols` (in place): infinite where a block may not start
    (`fits`, unless no place in it may), and raised by FOUL_WEIGHT times the share to be avoided (a
    floor's surface that takes in the in-painted hole: its clearest places first)."""
    ok = None if pool.fits is None else _fits_at(pool.fits, rows, cols)
    if ok is not None and ok.any():
        error[~ok] = np.inf
    if pool.foul is not None:
        r, c = pool.foul.shape
        error *= 1.0 + FOUL_WEIGHT * pool.foul[np.minimum(rows, r - 1)][:, np.minimum(cols, c - 1)]


def _place(
    out: np.ndarray,
    pool: _Pool,
    tops: tuple[int, int],
    at: tuple[int, int],
    size: tuple[int, int],
    overlap: int,
    keep: np.ndarray,
) -> int:
    """One block of `size` (columns, rows) at `at` (x, y) of `out`, its left `overlap` columns (and,
    below the first block of a column, its top `overlap` rows) over what is already there: cut from
    `pool` with its top row within `tops`, shaded and joined along the boundary cut (along the
    overlap's edge in the rows where `keep`: those are the image's own pixels). Returns the pool's
    row it was cut from."""
    (x, y), (cols, rows) = at, size
    seen = out[y : y + rows, x : x + cols].astype(np.float32)
    piece, cut_at = _pick(pool, tops, seen, overlap, overlap if y > 0 else 0)
    _shade(piece, seen, overlap, y > 0, edge=bool(keep.all()))
    overlaps = [] if keep.all() else [((seen[:, :overlap] - piece[:, :overlap]) ** 2).sum(-1)]
    if y > 0:
        overlaps.append(((seen[:overlap] - piece[:overlap]) ** 2).sum(-1).T)
    cuts = _cut(overlaps) if overlaps else []
    # Past the overlaps the block is the piece; within them, blended across the cut.
    out[y : y + rows, x : x + cols] = np.clip(piece + 0.5, 0, 255)
    alpha = np.ones((rows, overlap), np.float32) if keep.all() else cuts.pop(0)
    alpha[keep] = 0.0
    blend = [(np.s_[:, :overlap], alpha)]
    if y > 0:
        top = cuts.pop(0).T
        top[:, :overlap] = np.minimum(top[:, :overlap], alpha[:overlap])
        blend.append((np.s_[:overlap, :], top))
    for where, a in blend:
        a = a[..., None]
        mixed = seen[where] * (1 - a) + piece[where] * a
        out[y : y + rows, x : x + cols][where] = np.clip(mixed + 0.5, 0, 255)
    return cut_at


def _pick(
    pool: _Pool, tops: tuple[int, int], seen: np.ndarray, left: int, top: int
) -> tuple[np.ndarray, int]:
    """A block (the shape of `seen`, float32) of the pool, its top row within `tops`, whose `left`
    columns and `top` rows match `seen`'s: drawn among the positions within TOLERANCE of the best
    error on the reduced pool (the error raised where earlier blocks were cut, REUSE), then the best
    within a reduced pixel of it at full resolution."""
    rows, cols = seen.shape[:2]
    c = pool.coarse
    size = (max(1, cols // c), max(1, rows // c))
    # The reduced overlaps, each from its own pixels only (the rest of `seen` is not yet drawn).
    # (c <= overlap / 2: each is at least two reduced pixels across; cut to whole c x c squares.)
    kl, kt = max(1, left // c), max(1, top // c)
    small_left = _reduce(seen[: size[1] * c, : kl * c], (kl, size[1]))
    small_top = _reduce(seen[: kt * c, : size[0] * c], (size[0], kt)) if top else None
    y0 = tops[0] // c
    error = _match(pool.small[y0 : tops[1] // c + size[1]], (size[1], size[0]), small_left, small_top)
    used = cv2.boxFilter(pool.used, -1, size, anchor=(0, 0), borderType=cv2.BORDER_CONSTANT)
    error *= 1.0 + REUSE * used[y0 : y0 + error.shape[0], : error.shape[1]]
    _restrict(pool, error, (y0 + np.arange(error.shape[0])) * c, np.arange(error.shape[1]) * c)
    y, x = _draw(error, pool.rng)
    pool.used[y0 + y : y0 + y + size[1], x : x + size[0]] += 1.0
    if c == 1:
        return pool.full[y0 + y : y0 + y + rows, x : x + cols].copy(), y0 + y
    y, x = (y + y0) * c, x * c
    ya, yb = max(tops[0], y - c), min(tops[1], y + c)
    xa, xb = max(0, x - c), min(pool.full.shape[1] - cols, x + c)
    error = _match(
        pool.full[ya : yb + rows, xa : xb + cols], (rows, cols), seen[:, :left], seen[:top] if top else None
    )
    _restrict(pool, error, ya + np.arange(error.shape[0]), xa + np.arange(error.shape[1]))
    dy, dx = np.unravel_index(int(np.argmin(error)), error.shape)
    return pool.full[ya + dy : ya + dy + rows, xa + dx : xa + dx + cols].copy(), ya + int(dy)


def _reduce(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`image` resized to `size` (columns, rows) by area averaging, contiguous."""
    if image.shape[1] == size[0] and image.shape[0] == size[1]:
        return np.ascontiguousarray(image)
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _match(
    window: np.ndarray, shape: tuple[int, int], left: np.ndarray, top: np.ndarray | None
) -> np.ndarray:
    """Sum of squared differences, at every position in `window` of a block of `shape` (rows,
    columns), of its `left` columns and `top` rows (an L: two plain templates, faster than one
    masked) against the known pixels."""
    rows, cols = shape
    wr, wc = window.shape[:2]
    k = left.shape[1]
    error = cv2.matchTemplate(
        np.ascontiguousarray(window[:, : wc - cols + k]), np.ascontiguousarray(left), cv2.TM_SQDIFF
    )
    if top is not None and cols > k:
        strip = np.ascontiguousarray(top[:, k:])
        error += cv2.matchTemplate(
            np.ascontiguousarray(window[: wr - rows + top.shape[0], k:]), strip, cv2.TM_SQDIFF
        )
    return np.maximum(error, 0.0).astype(np.float64)  # the FFT's rounding can dip below 0


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
    them), and per column across the top one (where `top`; the nearer one weighs more), each smoothed
    along its overlap, at most SHADE_MAX, and fading out linearly from it across the rest of the block
    (so that shading never drifts from block to block)."""
    rows, cols = seen.shape[:2]
    sigma = max(1.0, SHADE_SIGMA * max(rows, cols))
    if edge:  # the last columns of the image against the block's first new ones, across the seam
        k = max(1, min(EDGE_COLUMNS, overlap, cols - overlap))
        near = seen[:, overlap - k : overlap] - piece[:, overlap : overlap + k]
    else:
        near = seen[:, :overlap] - piece[:, :overlap]
    left = _smooth_median(near, sigma)
    w_left = np.clip(1.0 - (np.arange(cols, dtype=np.float32) - overlap + 1) / max(1, cols - overlap), 0, 1)
    if not top:
        piece += left[:, None, :] * w_left[None, :, None]
        return
    above = _smooth_median((seen[:overlap] - piece[:overlap]).transpose(1, 0, 2), sigma)
    w_top = np.clip(1.0 - (np.arange(rows, dtype=np.float32) - overlap + 1) / max(1, rows - overlap), 0, 1)
    # Each point takes the offset of the overlap nearer to it (inverse distance), faded as that one.
    near_left = 1.0 / (np.maximum(np.arange(cols) - overlap + 1, 0) + 1.0).astype(np.float32)
    near_top = 1.0 / (np.maximum(np.arange(rows) - overlap + 1, 0) + 1.0).astype(np.float32)
    fade = np.maximum(w_left[None, :], w_top[:, None])
    by_left = fade * near_left[None, :] / (near_left[None, :] + near_top[:, None])
    piece += left[:, None, :] * by_left[..., None]
    piece += above[None] * (fade - by_left)[..., None]


def _smooth_median(strip: np.ndarray, sigma: float) -> np.ndarray:
    """(L, 3): the median of `strip` (L, k, 3) across k, smoothed along L (Gaussian, `sigma` rows),
    clipped to SHADE_MAX. The median is taken over groups of a few rows (the smoothing is broader
    than a group) and interpolated between."""
    length, k = strip.shape[:2]
    every = max(1, min(int(sigma // 3), length))
    groups = length // every
    # (The upper median, by a partition along a contiguous last axis: numpy's median is twice as slow.)
    group = np.ascontiguousarray(strip[: groups * every].reshape(groups, every * k, 3).transpose(0, 2, 1))
    group.partition(every * k // 2, axis=-1)
    med = group[..., every * k // 2].astype(np.float32)
    med = cv2.GaussianBlur(
        med[:, None], (1, 0), sigmaX=0.0, sigmaY=sigma / every, borderType=cv2.BORDER_REPLICATE
    )
    med = (
        cv2.resize(med, (1, length), interpolation=cv2.INTER_LINEAR)[:, 0] if groups != length else med[:, 0]
    )
    return np.clip(med, -SHADE_MAX, SHADE_MAX)


# The boundary cut's dynamic programme runs on rows summed in groups so that there are at most this
# many (each step may then move as many columns as it has rows); the path is interpolated between.
CUT_ROWS = 24


def _cut(errors: list[np.ndarray]) -> list[np.ndarray]:
    """Per overlap error (L, overlap): the new block's weights across the overlap, 0 before the
    minimum-error boundary cut (a path of one column per row, moving at most one column per row,
    found by dynamic programming on groups of rows, all overlaps at once), 1 after, blended over
    FEATHER pixels."""
    length = max(e.shape[0] for e in errors)
    width = max(e.shape[1] for e in errors)
    group = max(1, -(-length // CUT_ROWS))
    steps = -(-length // group)
    cost = np.zeros((len(errors), steps * group, width), np.float64)
    for k, e in enumerate(errors):
        cost[k, : e.shape[0], : e.shape[1]] = e  # rows past a shorter overlap: free
        cost[k, :, e.shape[1] :] = np.inf
    cost = cost.reshape(len(errors), steps, group, width).sum(2)
    reach = group  # columns a path may move over one group of rows
    kernel = np.ones((1, 2 * reach + 1), np.uint8)  # erosion: the least over the reach (min filter)
    for y in range(1, steps):
        cost[:, y] += cv2.erode(cost[:, y - 1], kernel, borderType=cv2.BORDER_CONSTANT, borderValue=np.inf)
    path = np.empty((len(errors), steps), np.int64)
    path[:, -1] = np.argmin(cost[:, -1], axis=1)
    for k in range(len(errors)):
        for y in range(steps - 1, 0, -1):
            lo = max(0, int(path[k, y]) - reach)
            path[k, y - 1] = lo + int(np.argmin(cost[k, y - 1, lo : path[k, y] + reach + 1]))
    centres = (np.arange(steps) + 0.5) * group - 0.5
    out = []
    for k, e in enumerate(errors):
        line = np.interp(np.arange(e.shape[0]), centres, path[k].astype(np.float64))
        cols = np.arange(e.shape[1])[None, :] - line[:, None]
        out.append(np.clip(cols / FEATHER + 0.5, 0.0, 1.0).astype(np.float32))
    return out
