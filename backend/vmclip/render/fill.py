"""The fill: what a frame shows where no photo saw the surface (or saw it too obliquely to stretch).

Per vertex, the colour of the photo that saw it most squarely, spread over the mesh to what no photo
saw squarely (within the body part first, then across parts); the back of the head from the crown as
the photos saw it. And first-photo coordinates spread the same way, so that off the head a surface
the photo did not see squarely takes the texture of the same part where it did."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vmclip.geometry import SEEN_FACING
from vmclip.render.source_view import SourceView

# Where the photos saw less than this share of a part squarely, the fill would repeat a few pixels
# over the whole part: a stretched sample of the photo looks better there.
MIN_SEEN_SHARE = 0.1
# A later photo's colour is taken for the fill only where it saw the vertex clearly (by this much of
# the facing) more squarely than the first: one photo's light and fit look better than a patchwork.
LATER_PHOTO_BIAS = 0.3


def smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    t = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def mesh_adjacency(faces: np.ndarray, num_vertices: int):
    from scipy import sparse

    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    e = np.concatenate([e, e[:, ::-1]])
    adj = sparse.coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(num_vertices,) * 2).tocsr()
    adj.data[:] = 1.0
    return adj


def spread_colours(
    colour: np.ndarray, known: np.ndarray, adjacency, smooth: int = 30
) -> tuple[np.ndarray, np.ndarray]:
    """Fill the vertices not `known` with colours spread over the mesh edges from the known ones (each
    new ring takes the mean of its known neighbours), then smooth what was filled."""
    col = np.where(known[:, None], colour, 0.0).astype(np.float64)
    have = known.astype(np.float64)
    for _ in range(len(have)):
        if have.all():
            break
        count = adjacency @ have
        new = (have == 0) & (count > 0)
        if not new.any():
            break
        col[new] = (adjacency @ (col * have[:, None]))[new] / count[new, None]
        have[new] = 1.0
    filled = (have > 0) & ~known
    deg = np.maximum(np.asarray(adjacency.sum(1)).ravel(), 1.0)
    for _ in range(smooth):
        col[filled] = (adjacency @ col)[filled] / deg[filled, None]
    return col, have > 0


@dataclass
class FillColours:
    """Per-vertex fill: `colour` (V, 3), first-photo coordinates `uv` (V, 2) for the same part's
    texture off the head, and `ok` (V,): whether the photos saw enough of the vertex's part squarely
    for the fill to be used for stretched samples."""

    colour: np.ndarray
    uv: np.ndarray
    ok: np.ndarray


def fill_colours(
    sources: list[SourceView],
    faces: np.ndarray,
    vertex_part: np.ndarray,
    num_parts: int,
    head_part: np.ndarray,
    rest: np.ndarray | None = None,
) -> FillColours:
    """The fill of a body (faces (F, 3), `vertex_part` (V,) of `num_parts`, `head_part` (V,) bool,
    `rest` (V, 3) its rest vertices, for the back of the head) seen by the `sources`.

    Colour: the colour of the photo that saw the vertex most squarely (the first photo unless another
    is clearly better), spread within each body part to what no photo saw squarely, then across parts
    for a part no photo saw at all. Coordinates: first-photo coordinates spread the same way
    (smoothly, so they sweep across the part's squarely seen surface): off the head, what the photo
    did not see squarely takes the texture of the same part where it did (the front of a sleeve for
    its back or its stretched side)."""
    quality = np.stack([s.quality - (LATER_PHOTO_BIAS if i else 0.0) for i, s in enumerate(sources)])
    best = quality.argmax(0)
    colour = np.stack([s.vertex_colour for s in sources])[best, np.arange(quality.shape[1])]
    known = quality.max(0) >= SEEN_FACING
    spread = _Spreader(faces, vertex_part, len(known))
    first = sources[0]
    # A part the photo saw only obliquely (a forearm pointing at the camera) still has its best
    # seen vertices as texture source, rather than a couple of squarely seen ones.
    best_q = np.zeros(num_parts)
    np.maximum.at(best_q, vertex_part, first.quality)
    threshold = np.minimum(SEEN_FACING, 0.6 * best_q)[vertex_part]
    seen_share = np.bincount(vertex_part, weights=known.astype(float), minlength=num_parts) / np.maximum(
        np.bincount(vertex_part, minlength=num_parts), 1
    )
    ok = (seen_share >= MIN_SEEN_SHARE)[vertex_part]
    uv = spread(
        first.uvz[:, :2].astype(np.float64), (first.quality >= threshold) & (first.quality > 0.05), 100
    ).astype(np.float32)
    fill = spread(colour, known, 30)
    if rest is not None and head_part.any():
        fill = _back_of_head(fill, colour, quality, known, head_part, rest, spread)
    return FillColours(colour=fill.astype(np.float32), uv=uv, ok=ok)


class _Spreader:
    """Spreads per-vertex values from the known vertices over the mesh, within each body part first,
    then across parts for what a part's own vertices cannot reach."""

    def __init__(self, faces: np.ndarray, vertex_part: np.ndarray, num_vertices: int) -> None:
        from scipy import sparse

        self.adjacency = mesh_adjacency(faces, num_vertices)
        same = self.adjacency.tocoo()
        keep = vertex_part[same.row] == vertex_part[same.col]
        self.within = sparse.coo_matrix(
            (same.data[keep], (same.row[keep], same.col[keep])), shape=self.adjacency.shape
        ).tocsr()

    def __call__(self, values: np.ndarray, have: np.ndarray, smooth: int) -> np.ndarray:
        out, reached = spread_colours(values, have, self.within, smooth)
        if not reached.all():
            out2, _ = spread_colours(out, reached, self.adjacency, smooth)
            out = np.where(reached[:, None], out, out2)
        return out


def _back_of_head(
    fill: np.ndarray,
    colour: np.ndarray,
    quality: np.ndarray,
    known: np.ndarray,
    head: np.ndarray,
    rest: np.ndarray,
    spread: _Spreader,
) -> np.ndarray:
    """The back of the head: from the top of the head as the photos saw it (hair, or a bald scalp),
    not from the face around it; blended in towards the back (rest pose: +Y up, +Z forward), so that
    a turned cheek keeps the face's colours."""
    centre = rest[head].mean(0)
    size = max(float(np.ptp(rest[head, 2])), 1e-6)
    # (the crown is seen only obliquely in a photo from the front: any view of it will do)
    top = head & (quality.max(0) >= 0.08) & (rest[:, 1] > centre[1] + 0.3 * size)
    if not top.any():
        return fill
    top_fill = spread(colour, top | (known & ~head), 30)
    back = smoothstep((centre[2] - rest[:, 2]) / size, -0.1, 0.25)
    back = np.where(head & ~known, back, 0.0)[:, None]
    return back * top_fill + (1.0 - back) * fill
