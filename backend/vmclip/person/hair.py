"""The back of the head's hair, synthesised from the hair the photos saw (`synthesise_hair`).

A photo from the front sees the hair above the forehead and at the sides; the back of the head it
never sees. One flat colour there reads as a helmet. The head's texels are laid out on a sphere map
around the head's centre (rows: the angle down from the crown; columns: the angle around the
vertical, the back in the middle), where hair falls down the rows wherever it grows, whatever the
atlas's layout. The seen hair is splatted into it, its shading taken out, and its detail quilted
over the back (image quilting: whole blocks of the seen hair, each matched to its neighbours at their
overlap); each back texel reads the crown's colour plus that detail there: strands, curls and their
highlights continue from what the photos saw. (PatchMatch, which fills the background plate, was
tried first: its patch votes average a hole as large as the back of the head into a smooth smear.)
Hair a photo saw in a few coarse pixels (a 300-px photo) holds no strands to quilt, only its blends
with skin and wall: its own colour is taken from the texels farthest from the skin, and its texture
is noise drawn out along the hair's fall.
"""

from __future__ import annotations

import cv2
import numpy as np

# Sphere-map cell (metres along the head's surface): about the photos' resolution on a head (a 512-px
# full-body photo gives 2-4 mm per pixel); finer cells only spread each photo pixel over more cells.
CELL_M = 0.0025
# A seen texel counts as hair when each channel is within this many levels of the crown's colour
# (hair's highlights and shadows; a face's skin is further off on dark or fair hair alike).
HAIR_TOLERANCE = 55.0
# Quilting blocks (cells: 15 mm, a lock of hair) overlapping by QUILT_OVERLAP cells; a block is
# drawn among those whose overlap error is within QUILT_TOLERANCE of the best (variety without seams),
# out of at most MAX_CANDIDATES source blocks. Fewer than MIN_BLOCKS whole source blocks: the seen
# hair is too little to repeat across the whole back, and the flat colour is kept.
QUILT_BLOCK = 6
QUILT_OVERLAP = 2
QUILT_TOLERANCE = 1.15
MAX_CANDIDATES = 400
MIN_BLOCKS = 30
# The crown is a scalp, not hair, when its colour is within this many levels (every channel) of the
# face's skin: a bald head has no strands to continue, and its flat colour is kept.
SCALP_CONTRAST = 30.0
# A source cell must be hair over this radius (cells) around it, so that no block drawn from it
# carries skin (eyebrows, the forehead at the hairline); at 1 cell, a thin band of seen hair gave
# every block the same edge, repeated as regular stripes over the back.
SOURCE_ERODE = 2
# The seen hair's shading (blurred over this many cells) is taken out before quilting; the detail
# finer than it (strands, locks, their highlights) is continued over the crown's colour.
SHADING_CELLS = 4.0
# ... at the seen hair's contrast, raised at most this much.
MAX_GAIN = 2.0
# Hair the photos did not resolve: their pixels on it are over this size (metres; 3 cells, so a
# quilting block spans under 2 pixels). The 300-px iPER pair sees it at 7.8 mm (a head about 20 px
# wide), the 256-px curly-haired photo at 6.9 mm, the 512-px ones at 3-5 mm. Its texels are blended
# with the skin at the hairline and with the wall at the outline, which pulled the crown's colour
# off the black hair to mid-grey, and its quilted "detail" (the interpolation between a few pixels
# and those blends, the same in every block) repeated as regular vertical stripes, a striped cap.
# Its colour is then the median of the seen hair texels farthest from the face's skin (this share),
# and its texture noise in the hair's own colours, drawn out along the hair's fall (cells: down the
# rows, around), at the seen hair's robust spread of brightness, at most NOISE_MAX levels.
RESOLVED_M = 0.0073
PURE_SHARE = 0.25
NOISE_SIGMA = (2.5, 0.8)
NOISE_MAX = 6.0


def _sphere_coords(
    pos: np.ndarray, centre: np.ndarray, head: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float]:
    """Per texel, the angle around the vertical (0 at the back, +z is forward) and the angle down
    from the crown, and the `head` texels' median distance from the centre."""
    d = pos - centre
    radius = float(np.median(np.linalg.norm(d[head], axis=1)))
    around = np.arctan2(d[:, 0], -d[:, 2])
    down = np.arccos(np.clip(d[:, 1] / np.maximum(np.linalg.norm(d, axis=1), 1e-9), -1.0, 1.0))
    return around, down, radius


def _hair_texels(
    colour: np.ndarray, seen: np.ndarray, pos: np.ndarray, centre: np.ndarray, radius: float, hair: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """The `seen` head texels that are hair (near the crown's colour `hair` and nearer it than the
    face's skin: the seen front of the head at eye height), and the face's skin colour; None when
    the crown is skin."""
    d = pos - centre
    face = seen & (d[:, 2] > 0.5 * radius) & (np.abs(d[:, 1]) < 0.3 * radius)
    if face.sum() < 20:
        return None
    skin = np.median(colour[face], axis=0)
    if np.abs(skin - hair).max() < SCALP_CONTRAST:
        return None
    to_hair = np.abs(colour - hair).max(1)
    sel = seen & (to_hair <= HAIR_TOLERANCE) & (to_hair < np.abs(colour - skin).max(1))
    return sel, skin


def synthesise_hair(
    colour: np.ndarray,
    seen: np.ndarray,
    pos: np.ndarray,
    head: np.ndarray,
    hair: np.ndarray,
    target: np.ndarray,
    centre: np.ndarray,
    pixel_m: np.ndarray | None = None,
    seed: int = 0,
) -> np.ndarray | None:
    """Hair colours (N, 3) for the `target` texels (the unseen back of the head; others are returned
    as the hair's own colour), synthesised from the `seen` `head` texels (a photo saw them squarely)
    whose `colour` is near the crown's `hair` colour; `pos` are the texels' rest positions (+y up,
    +z forward), `centre` the head's, `pixel_m` the size of the seeing photo's pixel at each texel
    (metres; None: resolved). None when the crown is skin or the photos saw too little hair."""
    if not target.any():
        return None
    around, down, radius = _sphere_coords(pos, centre, head)
    w = max(32, int(round(2 * np.pi * radius / CELL_M)))
    h = max(16, int(round(np.pi * radius / CELL_M)))
    col = (around + np.pi) / (2 * np.pi) * (w - 1)
    row = down / np.pi * (h - 1)
    cells = np.rint(row).astype(np.int64) * w + np.rint(col).astype(np.int64)
    found = _hair_texels(colour, seen & head & ~target, pos, centre, radius, hair)
    if found is None or found[0].sum() < 20:
        return None
    src, skin = found
    acc = np.bincount(cells[src], minlength=h * w)
    image = np.zeros((h * w, 3), np.float64)
    for c in range(3):
        image[:, c] = np.bincount(cells[src], weights=colour[src, c], minlength=h * w)
    image = (image / np.maximum(acc, 1)[:, None]).reshape(h, w, 3).astype(np.float32)
    hit = (acc > 0).reshape(h, w).astype(np.float32)
    # (the splat leaves pinholes between texels: closed, and coloured from the cells around them)
    source = cv2.morphologyEx(hit.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    around_sum = cv2.blur(image * hit[..., None], (3, 3)) / np.maximum(cv2.blur(hit, (3, 3)), 1e-6)[..., None]
    image = np.where(hit[..., None] > 0, image, around_sum)
    source = cv2.erode(source, np.ones((2 * SOURCE_ERODE + 1,) * 2, np.uint8)).astype(bool)
    hole = np.zeros(h * w, bool)
    hole[cells[target]] = True
    hole = cv2.dilate(hole.reshape(h, w).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    hole &= ~source
    # Only the hair's detail is quilted: the seen hair's shading (lit on top, darker at the sides) in
    # blocks would lay stripes across the back.
    weight = source.astype(np.float32)
    local = cv2.GaussianBlur(image * weight[..., None], (0, 0), SHADING_CELLS)
    local /= np.maximum(cv2.GaussianBlur(weight, (0, 0), SHADING_CELLS), 1e-6)[..., None]
    detail = image - local
    rng = np.random.default_rng(seed)
    tiny = pixel_m is not None and float(np.median(pixel_m[src])) > RESOLVED_M
    filled = None if tiny else _quilt(detail, source, hole, rng)
    if tiny:
        away = np.linalg.norm(colour[src] - skin, axis=1)
        hair = np.median(colour[src][away >= np.quantile(away, 1.0 - PURE_SHARE)], axis=0)
    if filled is None:
        filled = _noise(colour[src], (h, w), rng)
    else:
        # (blocks drawn from the source's quieter parts can soften it: brought back to its contrast)
        gain = float(detail[source].std()) / max(float(filled[hole].std()), 1e-6)
        filled = float(np.clip(gain, 1.0, MAX_GAIN)) * filled
    filled = np.asarray(hair, np.float32) + filled
    out = np.repeat(np.asarray(hair, np.float32)[None], len(pos), 0)
    xy = np.stack([col[target], row[target]], 1).astype(np.float32)
    from vmclip.person.texture import sample  # (texture.py imports this module)

    out[target] = sample(filled, xy)
    return out


def _noise(seen: np.ndarray, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Hair that the photos did not resolve: grey noise drawn out down the rows (the hair's fall),
    at the seen hair's spread of brightness (robust: its blend with skin and wall is the tail),
    capped at NOISE_MAX levels; nothing of the photo's pixel grid is repeated."""
    lum = seen.mean(1)
    spread = 1.4826 * float(np.median(np.abs(lum - np.median(lum))))
    noise = cv2.GaussianBlur(
        rng.standard_normal(shape).astype(np.float32), (0, 0), NOISE_SIGMA[1], sigmaY=NOISE_SIGMA[0]
    )
    noise *= min(spread, NOISE_MAX) / max(float(noise.std()), 1e-6)
    return np.repeat(noise[..., None], 3, 2)


def _quilt(
    image: np.ndarray, source: np.ndarray, hole: np.ndarray, rng: np.random.Generator
) -> np.ndarray | None:
    """Image quilting (after Efros and Freeman): the `hole` cells of `image` covered in raster order
    by QUILT_BLOCK-cell blocks taken whole from the `source` cells, each chosen at random among the
    blocks that best match what is already placed (and the seen hair) over their overlap, which it
    then overwrites (averaging the overlaps left a faint grid of softer lines). Unlike PatchMatch's
    voting, whole blocks keep their strands: nothing is averaged into a smear far from the seen
    hair. None when the source holds too few whole blocks."""
    b, step = QUILT_BLOCK, QUILT_BLOCK - QUILT_OVERLAP
    h, w = hole.shape
    whole = cv2.erode(source.astype(np.uint8), np.ones((b, b), np.uint8), anchor=(0, 0), borderValue=0)
    whole[h - b + 1 :] = 0
    whole[:, w - b + 1 :] = 0
    cy, cx = np.nonzero(whole)
    if len(cy) < MIN_BLOCKS:
        return None
    pick = rng.choice(len(cy), size=min(len(cy), MAX_CANDIDATES), replace=False)
    cy, cx = cy[pick], cx[pick]
    d = np.arange(b)
    blocks = image[cy[:, None, None] + d[None, :, None], cx[:, None, None] + d[None, None, :]]
    out = image.copy()
    known = source.copy()
    ys, xs = np.nonzero(hole)
    for y0 in range(int(ys.min()), int(ys.max()) + 1, step):
        for x0 in range(int(xs.min()), int(xs.max()) + 1, step):
            todo = hole[y0 : y0 + b, x0 : x0 + b]
            if not todo.any():
                continue
            bh, bw = todo.shape
            ref = out[y0 : y0 + bh, x0 : x0 + bw]
            over = known[y0 : y0 + bh, x0 : x0 + bw]
            cand = blocks[:, :bh, :bw]
            err = (((cand - ref) ** 2).sum(-1) * over).sum((1, 2))
            best = rng.choice(np.flatnonzero(err <= err.min() * QUILT_TOLERANCE + 1e-6))
            ref[todo] = cand[best][todo]
            known[y0 : y0 + bh, x0 : x0 + bw] |= todo
    return out
