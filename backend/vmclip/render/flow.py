"""Transformation flow (after Liquid Warping GAN, with the fitted body instead of SMPL).

For every output frame the posed body is rasterised in the output camera. Each covered pixel lies on
one body-surface point (triangle + barycentric); the same point's pixel in every source photo is the
interpolation of the vertices' projections in that source, which gives a backward flow applied with
`cv2.remap`. A point is taken from a source where that source's depth buffer shows it (visible),
else from the mirror-image point of the body (the opposite limb), else from the same body part (or
its neighbour in the skeleton) seen from the other side, median-filtered so that the front's small
details (a print, buttons) do not appear on the back (not on the head: a face on the back of the head
is worse than hair), else from the fill. A surface the photo saw at a grazing angle but the frame
shows face-on would be a few pixels stretched over a large area, so its colour is blended, by how much
it would be stretched, into the fill: off the head the same part's texture where the first photo saw
it squarely (photo coordinates spread over the mesh), on the head a smooth colour spread over the head
from what the photos saw squarely (the back of the head from the crown).

Person pixels outside the bare body (hair, clothes) are carried forward: every such pixel of the
first photo hangs from the body region whose silhouette is nearest (the trunk when another region is
about as near: the cloth between a hanging arm and the chest must not fly up with a raised arm, a
skirt between the thighs must not go with one leg); it moves with the surface point it hangs from
(offset turned and scaled as that part turned), rigidly with the head for hair, and is splatted into
the frame.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import cv2
import numpy as np

from vmclip.geometry import DEPTH_TOLERANCE, Camera, project
from vmclip.motion.skeleton import JOINT_NAMES, PARENTS
from vmclip.person.texture import sample
from vmclip.person.uvmap import uv_pixels
from vmclip.render.fill import fill_colours, smoothstep
from vmclip.render.raster import Raster, Rasterizer
from vmclip.render.regions import HEAD, JOINT_REGION, TRUNK, part_regions, part_similarities
from vmclip.render.skirt import PELVIS, Skirt
from vmclip.render.source_view import (
    BACK_DETAIL_PX,
    SourceView,
    lookup,
    nearest,
    nearest_within,
    pixel_index,
)
from vmclip.render.warp import Candidate, Flow, Warped, put_pixels, warp_flow

# Margin (pixels at 512) of the output window around the body (clothes and hair beyond the body).
EXTEND_PX = 48.0
# How much a photo's sample may be stretched: the ratio of the photo's facing (cosine between the
# surface normal and the direction to the camera) to the frame's. Above the upper ratio the photo is
# used as it is, below the lower one only the fill colour; blended in between.
STRETCH_OK, STRETCH_BAD = 0.55, 0.22
# A back the photo shows only from the front takes the front of the same part from this far away
# (pixels at 512) where the photo shows something else in front of it (a hand over the hips).
BACK_REACH_PX = 30.0
# Candidates rank by kind, then by how squarely the photo saw the point (its facing, 0..1, added to
# the kind's base): a visible point before its visible mirror image before the same body part seen
# from its other side. The best score across sources wins (a point one photo saw edge-on comes from
# another that saw it squarely); the photo's colour is then blended into the fill by how much it
# would be stretched.
RANK = {Candidate.SEEN: 2.0, Candidate.MIRROR: 1.0, Candidate.OTHER_SIDE: 0.0}
# What a limb hid in a photo (the photo with that limb painted out), in place: on the trunk and head
# before the mirror point unless a photo saw that squarely (the mirror point lies under the same
# forearm more often than not), on a limb after the mirror point (the other leg is the better guess),
# and for a surface that faced away from the photo only before the same part seen from its other side.
PAINTED_RANK_TRUNK, PAINTED_RANK_LIMB, PAINTED_RANK_AWAY = 1.65, 0.9, 0.5
# A surface faces away from a camera below this facing (a frame that shows a surface at a grazing
# angle is treated as seeing it at this facing, so that the stretch ratio stays finite).
AWAY_FACING = 0.05
# Later photos only win clearly (by this much of the score): a patchwork of photos with different
# light and fit errors looks worse than one photo slightly less head-on.
LATER_PHOTO_MARGIN = 0.3


@dataclass
class _Pixels:
    """What the output frame's body shows at each covered pixel (N,): the nearest vertex, its body
    part and region, its mirror vertex's region and part, whether it is on the head, whether the fill
    may stand in for a stretched sample there, and how squarely the output camera sees it."""

    vertex: np.ndarray
    part: np.ndarray
    region: np.ndarray
    region_mirror: np.ndarray
    part_mirror: np.ndarray
    head: np.ndarray
    fill_ok: np.ndarray
    target_facing: np.ndarray


class _Choice:
    """The best candidate so far for every covered pixel (N,)."""

    def __init__(self, n: int) -> None:
        self.source = np.full(n, -1, dtype=np.int64)
        self.uv = np.full((n, 2), np.nan, dtype=np.float32)
        self.score = np.full(n, -np.inf, dtype=np.float32)
        self.facing = np.zeros(n, dtype=np.float32)  # of the chosen point when it is itself seen
        self.weight = np.ones(n, dtype=np.float32)
        self.kind = np.full(n, Candidate.NONE, dtype=np.int8)

    def offer(
        self,
        si: int,
        kind: Candidate,
        ok: np.ndarray,
        uv: np.ndarray,
        score: np.ndarray,
        ratio: np.ndarray,
        facing: np.ndarray,
        fill_ok: np.ndarray,
    ) -> None:
        """Take source `si`'s candidate where it is usable (`ok`) and scores better; `ratio`: how much
        less squarely the photo saw it than the frame shows it (its colour is blended into the fill
        by that, where the fill may stand in: `fill_ok`)."""
        # (indices, not the boolean mask: eight look-ups would each scan the mask again)
        take = np.flatnonzero(ok & (score > self.score))
        self.source[take] = si
        self.uv[take] = uv[take]
        self.score[take] = score[take]
        self.facing[take] = facing[take] if kind == Candidate.SEEN else 0.0
        blend = smoothstep(ratio[take], STRETCH_BAD, STRETCH_OK)
        self.weight[take] = np.where(fill_ok[take], blend, 1.0)
        self.kind[take] = kind


def _on_window(
    shape: tuple[int, int], index: np.ndarray, values: np.ndarray, empty: float, dtype: type
) -> np.ndarray:
    """A map over the window (h, w, ...): `values` (N, ...) at the flat pixel indices `index` (N,),
    `empty` elsewhere (flat indices: cheaper than a boolean mask of the whole window)."""
    values = np.asarray(values)
    out = np.full(shape + values.shape[1:], empty, dtype=dtype)
    if values.ndim == 2:
        put_pixels(out, index, values)
    else:
        out.ravel()[index] = values
    return out


@dataclass
class _Carried:
    """The first photo's carried pixels (clothes, hair) as every frame reads them, built once: photo
    pixel `xy` (n, 2), body part hung from, the anchor surface point (its photo pixel, barycentrics
    and triangle corners), whether it moves rigidly with the head or the trunk; and per vertex the
    photo projection and whether it lies in front of the photo's camera; the trunk's vertices."""

    xy: np.ndarray
    part: np.ndarray
    anchor_xy: np.ndarray
    anchor_bary: np.ndarray
    anchor_corners: np.ndarray
    on_head: np.ndarray
    trunk_rigid: np.ndarray
    src_uv: np.ndarray
    src_front: np.ndarray
    trunk_vertices: np.ndarray


def _skirt_seen(skirt: Skirt, src: SourceView) -> np.ndarray:
    """Per shell vertex (V, 3): its pixel in a later photo (posed as that photo's body) and how
    squarely that photo saw it there (0 where it did not: off the person, behind an arm)."""
    shell = skirt.posed(src.vertices)
    cam = src.camera
    uv, z = project(shell, cam.K, cam.R, cam.t)
    # (the shell's outline and hem lie on the person's outline: a few pixels' slack)
    r = max(1, round(3 * max(src.width, src.height) / 512.0))
    person = cv2.dilate((src.mask_trim >= 0.5).astype(np.uint8), np.ones((2 * r + 1, 2 * r + 1), np.uint8))
    on = lookup(person, uv, 0) > 0
    in_front = z <= lookup(src.depth_vis, uv, np.inf) + DEPTH_TOLERANCE
    cos = np.where(on & in_front & (z > 0), np.maximum(skirt.facing(shell, cam), 0.0), 0.0)
    return np.concatenate([uv, cos[:, None]], 1).astype(np.float32)


@dataclass
class _SkirtMaps:
    """The flow's maps over the window that the skirt's pixels are written into."""

    map_x: np.ndarray
    map_y: np.ndarray
    source: np.ndarray
    part: np.ndarray
    weight: np.ndarray
    facing: np.ndarray
    kind: np.ndarray
    atlas: np.ndarray | None


class FlowWarper:
    """Builds the backward flow from an output frame's posed body to the source photos and warps."""

    def __init__(
        self,
        rasterizer: Rasterizer,
        sources: list[SourceView],
        faces: np.ndarray,
        vertex_part: np.ndarray,
        mirror: np.ndarray,
        camera: Camera,
        width: int,
        height: int,
        extend_px: float | None = None,
        rest_vertices: np.ndarray | None = None,
        texture: np.ndarray | None = None,
        uv: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        self.rasterizer = rasterizer
        # The avatar's atlas and the body's per-corner UVs (atlas pixels): what the frame shows where
        # the photos saw nothing or only the surface's other side.
        self.texture = None
        if texture is not None and uv is not None:
            self.texture = np.ascontiguousarray(texture, dtype=np.float32)
            uv_px = uv_pixels(uv[0], texture.shape[0]).astype(np.float32)
            self.face_uv = uv_px[np.asarray(uv[1], dtype=np.int64)]  # (F, 3, 2) each face's corners
        self.sources = sources
        self.faces = np.ascontiguousarray(faces, dtype=np.int64)
        self.vertex_part = np.asarray(vertex_part, dtype=np.int64)
        self.px = max(width, height) / 512.0
        self.extend_px = (EXTEND_PX * self.px) if extend_px is None else extend_px
        self.num_parts = max(int(self.vertex_part.max()) + 1, len(JOINT_NAMES))
        self.part_region = part_regions(self.num_parts)
        self.head_part = self.part_region[self.vertex_part] == HEAD
        # Parts that stand in for each other when a surface is taken from the photo of its other
        # side: the same part or a neighbour in the skeleton (front and back split the parts at
        # different heights: the back of the waist lies where the photo shows the front of the hips).
        # The last row and column are for "no part" (index -1).
        self.part_near = np.zeros((self.num_parts + 1, self.num_parts + 1), dtype=bool)
        self.part_near[np.arange(self.num_parts), np.arange(self.num_parts)] = True
        for child, parent in enumerate(PARENTS):
            if parent >= 0:
                self.part_near[child, parent] = self.part_near[parent, child] = True
        self.mirror = mirror
        self.camera = camera
        self.width, self.height = width, height
        # Per-source vertex attributes: own projection (u, v, z), the mirror vertex's, facing weight.
        self.attr = [
            np.concatenate([s.uvz, s.uvz[mirror], s.facing[:, None], s.facing[mirror, None]], axis=1)
            for s in sources
        ]
        self.rest = None if rest_vertices is None else np.asarray(rest_vertices, dtype=np.float64)
        fill = fill_colours(sources, self.faces, self.vertex_part, self.num_parts, self.head_part, self.rest)
        self.fill, self.fill_uv, self.fill_ok = fill.colour, fill.uv, fill.ok
        self._nearest_cache: dict[tuple[int, int], np.ndarray | None] = {}
        # The first photo's attributes carry the fill colour and fill coordinates along (one
        # interpolation per frame).
        self.attr[0] = np.concatenate([self.attr[0], self.fill, self.fill_uv], axis=1).astype(np.float32)
        first = sources[0]
        region = np.zeros(self.num_parts, dtype=np.int64)
        region[: len(JOINT_REGION)] = JOINT_REGION
        anchor = first.carry_anchor
        self.carried = _Carried(
            xy=first.carry_xy.astype(np.float64),
            part=first.carry_part,
            anchor_xy=np.stack([anchor % first.width, anchor // first.width], 1).astype(np.float64),
            anchor_bary=first.carry_bary.astype(np.float64),
            anchor_corners=self.faces[first.carry_tri],
            on_head=JOINT_REGION[np.minimum(first.carry_part, len(JOINT_REGION) - 1)] == HEAD,
            trunk_rigid=first.carry_trunk_rigid,
            src_uv=first.uvz[:, :2].astype(np.float64),
            src_front=first.uvz[:, 2] > 0,
            trunk_vertices=np.flatnonzero(region[self.vertex_part] == TRUNK),
        )
        # The first photo's skirt, drawn as a shell with the body (one depth test hides the legs
        # inside it): its faces after the body's, and per shell vertex the photo pixel and back flag.
        self.skirt = first.skirt
        self.skirt_views: list[tuple[int, np.ndarray]] = []
        if self.skirt is not None:
            self.all_faces = np.concatenate([self.faces, self.skirt.faces + len(first.uvz)])
            self.skirt_attr = np.concatenate([self.skirt.src_uv, self.skirt.back[:, None]], 1)
            self.skirt_views = [
                (si, _skirt_seen(self.skirt, src)) for si, src in enumerate(sources) if si > 0
            ]

    def _other_side(
        self,
        si: int,
        own: np.ndarray,
        part_px: np.ndarray,
        facing: np.ndarray,
        head: np.ndarray,
        hidden: np.ndarray,
        at: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The candidate "same part seen from its other side" in source `si` (not on the head): the
        photo's pixel where the point projects when the photo shows that part (or a skeleton
        neighbour) there, unhidden; for a surface facing away from the photo whose projection falls
        on something else (a hand hanging in front of the hips), the nearest pixel within
        BACK_REACH_PX that shows the part at least BACK_DETAIL_PX inside its outline (so that the back
        texture's filter does not mix in the hand). (Moving every back point that way snaps the
        texture into streaks along the parts' outlines.)"""
        src = self.sources[si]
        uv = own[:, :2].copy()
        ok = self.part_near[part_px, lookup(src.part, own, -1, at)] & ~head & ~hidden
        reach = np.flatnonzero(~ok & ~head & (facing < AWAY_FACING))
        if len(reach):
            u, v = np.rint(uv[reach, 0]).astype(np.int64), np.rint(uv[reach, 1]).astype(np.int64)
            inside = (u >= 0) & (u < src.width) & (v >= 0) & (v < src.height)
            reach, u, v = reach[inside], u[inside], v[inside]
            reach_part = part_px[reach]
            for part in np.unique(reach_part):
                k = np.flatnonzero(reach_part == part)
                near = self._part_nearest(si, int(part))
                if near is None:
                    continue
                q = near[v[k], u[k]]
                qx, qy = q % src.width, q // src.width
                good = np.hypot(qx - u[k], qy - v[k]) <= (BACK_REACH_PX + BACK_DETAIL_PX) * self.px
                sel = reach[k[good]]
                uv[sel, 0], uv[sel, 1] = qx[good], qy[good]
                ok[sel] = True
        return ok, uv, facing, np.ones(len(uv), dtype=np.float32)

    def _part_nearest(self, si: int, part: int) -> np.ndarray | None:
        """Per pixel of source `si`, the flat index of the nearest pixel where the photo shows `part`
        or a skeleton neighbour of it, not covered by a limb of another region (cached: built once
        per source and part, when a back view first needs it)."""
        key = (si, part)
        if key not in self._nearest_cache:
            src = self.sources[si]
            shows = self.part_near[part][src.part]  # (-1, no part, is the last column: False)
            occ = src.occlusion
            if occ is not None:
                shows &= ~(occ.core & (occ.region >= 0) & (occ.region != self.part_region[part]))
            # Inside the part by the back texture's filter radius, so that the filter does not mix
            # in what lies beyond the part (the hands next to the hips).
            r = max(1, round(BACK_DETAIL_PX * max(src.width, src.height) / 512.0))
            inner = cv2.erode(
                shows.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
            ).astype(bool)
            shows = inner if inner.any() else shows
            self._nearest_cache[key] = nearest(shows)[1].astype(np.int32) if shows.any() else None
        return self._nearest_cache[key]

    def _with_skirt(self, vertices: np.ndarray) -> np.ndarray:
        """The posed body's vertices followed by its skirt's (the body's alone without a skirt)."""
        if self.skirt is None:
            return vertices
        return np.concatenate([np.asarray(vertices, dtype=np.float64), self.skirt.posed(vertices)])

    def window(self, vertices: np.ndarray) -> tuple[int, int, int, int] | None:
        """The output-frame window (x0, y0, x1, y1) holding the body (and its skirt) plus the clothes
        margin."""
        uv, z = project(self._with_skirt(vertices), self.camera.K, self.camera.R, self.camera.t)
        uv = uv[z > 0]
        if not len(uv):
            return None
        m = self.extend_px + 2
        x0, y0 = np.floor(uv.min(0) - m).astype(int)
        x1, y1 = np.ceil(uv.max(0) + m).astype(int) + 1
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(self.width, x1), min(self.height, y1)
        if x1 <= x0 or y1 <= y0:
            return None
        return int(x0), int(y0), int(x1), int(y1)

    def _target_facing(self, vertices: np.ndarray, ras: Raster) -> np.ndarray:
        """Per covered pixel, how squarely the output camera sees the surface (flat per triangle;
        only the triangles in view are computed)."""
        tri = ras.covered[1]
        mark = np.zeros(len(self.faces), dtype=bool)
        mark[tri] = True
        seen = np.flatnonzero(mark)
        index = np.cumsum(mark) - 1
        inverse = index[tri]
        # One (S,) array per coordinate: numpy is slow along axes of three (same arithmetic, same
        # order as a cross product, a mean and norms over those axes).
        v = np.asarray(vertices, dtype=np.float64).T
        f = self.faces[seen].T
        (x0, x1, x2), (y0, y1, y2), (z0, z1, z2) = v[0][f], v[1][f], v[2][f]
        ax, ay, az = x1 - x0, y1 - y0, z1 - z0
        bx, by, bz = x2 - x0, y2 - y0, z2 - z0
        nx, ny, nz = ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx  # the face's normal
        c = self.camera.centre
        vx, vy, vz = c[0] - (x0 + x1 + x2) / 3.0, c[1] - (y0 + y1 + y2) / 3.0, c[2] - (z0 + z1 + z2) / 3.0
        cos = np.abs(nx * vx + ny * vy + nz * vz) / np.maximum(
            np.sqrt(nx * nx + ny * ny + nz * nz) * np.sqrt(vx * vx + vy * vy + vz * vz), 1e-12
        )
        return cos.astype(np.float32)[inverse]

    def flow(self, vertices: np.ndarray, roi: tuple[int, int, int, int]) -> Flow:
        """Backward flow for one posed body over the window `roi` (see `Flow`)."""
        ras = self.rasterizer.render(
            self._with_skirt(vertices),
            self.faces if self.skirt is None else self.all_faces,
            self.camera.K,
            self.camera.R,
            self.camera.t,
            self.width,
            self.height,
            roi=roi,
        )
        ras, skirt = self._split_skirt(ras)
        pixels = self._pixels(vertices, ras)
        choice = _Choice(len(pixels.vertex))
        fill_vals = None
        for si, (src, attr) in enumerate(zip(self.sources, self.attr, strict=True)):
            vals = ras.interpolate(attr)
            if si == 0:
                fill_vals = vals[:, 8:]
            bias = LATER_PHOTO_MARGIN if si > 0 else 0.0
            for kind, ok, uv, score, ratio in self._candidates(si, src, vals, pixels):
                choice.offer(si, kind, ok, uv, score - bias, ratio, vals[:, 6], pixels.fill_ok)
        return self._maps(vertices, ras, roi, pixels, choice, fill_vals, skirt)

    def _split_skirt(self, ras: Raster) -> tuple[Raster, Raster | None]:
        """The body's raster alone (what the skirt hides is gone) and the skirt's (None without one)."""
        if self.skirt is None:
            return ras, None
        nf = len(self.faces)
        on_skirt = ras.tri >= nf
        body = Raster(
            tri=np.where(on_skirt, -1, ras.tri),
            bary=ras.bary,
            depth=np.where(on_skirt, np.float32(np.inf), ras.depth),
            faces=self.faces,
            x0=ras.x0,
            y0=ras.y0,
        )
        skirt = Raster(
            tri=np.where(on_skirt, ras.tri - nf, -1),
            bary=ras.bary,
            depth=np.where(on_skirt, ras.depth, np.float32(np.inf)),
            faces=self.skirt.faces,
            x0=ras.x0,
            y0=ras.y0,
        )
        return body, skirt

    def _pixels(self, vertices: np.ndarray, ras: Raster) -> _Pixels:
        nearest_vertex = ras.vertex_of_max_weight()
        part = self.vertex_part[nearest_vertex]
        return _Pixels(
            vertex=nearest_vertex,
            part=part,
            region=self.part_region[part],
            region_mirror=self.part_region[self.vertex_part[self.mirror[nearest_vertex]]],
            part_mirror=self.vertex_part[self.mirror[nearest_vertex]],
            head=self.head_part[nearest_vertex],
            fill_ok=self.fill_ok[nearest_vertex],
            target_facing=np.maximum(self._target_facing(vertices, ras), AWAY_FACING),
        )

    def _candidates(
        self, si: int, src: SourceView, vals: np.ndarray, p: _Pixels
    ) -> list[tuple[Candidate, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """Source `si`'s candidates for every covered pixel: (kind, usable, source uv, score, ratio of
        the photo's facing to the frame's), from the source's attributes interpolated there (`vals`)."""
        own, mir = vals[:, 0:3], vals[:, 3:6]
        ratio_own = np.minimum(vals[:, 6] / p.target_facing, 1.0)
        ratio_mir = np.minimum(vals[:, 7] / p.target_facing, 1.0)
        # (a point behind a limb the photo shows in front of it is not seen there, whatever the
        # fitted body's depth says)
        at_own, at_mir = pixel_index(own, src.width, src.height), pixel_index(mir, src.width, src.height)
        # (nor is a hand the photo does not show: in a pocket, behind a phone)
        hidden_own = src.hidden_by_limb(own, p.region, at_own) | np.isin(p.part, src.unseen_hands)
        seen_own = (own[:, 2] <= lookup(src.depth_vis, own, -np.inf, at_own) + DEPTH_TOLERANCE) & ~hidden_own
        seen_mir = (
            (mir[:, 2] <= lookup(src.depth_vis, mir, -np.inf, at_mir) + DEPTH_TOLERANCE)
            & ~src.hidden_by_limb(mir, p.region_mirror, at_mir)
            & ~np.isin(p.part_mirror, src.unseen_hands)
        )
        candidates = [
            (Candidate.SEEN, seen_own, own[:, :2], RANK[Candidate.SEEN] + vals[:, 6], ratio_own),
            (Candidate.MIRROR, seen_mir, mir[:, :2], RANK[Candidate.MIRROR] + vals[:, 7], ratio_mir),
        ]
        ok, uv, facing, ratio = self._other_side(si, own, p.part, vals[:, 6], p.head, hidden_own, at_own)
        candidates.append((Candidate.OTHER_SIDE, ok, uv, RANK[Candidate.OTHER_SIDE] + facing, ratio))
        if src.clean is not None:
            # A point a limb hid in this photo (the photo's limb or the fitted one over it): the
            # photo with that limb painted out, in place.
            limb = lookup(src.clean_region, own, -1, at_own)
            ok = ~seen_own & (limb >= 0) & (limb != p.region)
            if self.texture is not None:
                # A surface facing away from the photo projects onto the front that the limb hid
                # (an open jacket's shirt and phone on the lower back): the avatar's side is better.
                # And a limb hidden behind another limb (forearms crossed in front of the body): the
                # hole was painted from the body around, never from a limb, so the shirt would
                # show on the raised forearm: the avatar's limb is better.
                ok &= (vals[:, 6] > AWAY_FACING) & (p.region <= HEAD)
            score = np.where(
                vals[:, 6] > AWAY_FACING,
                np.where(p.region <= HEAD, PAINTED_RANK_TRUNK, PAINTED_RANK_LIMB),
                PAINTED_RANK_AWAY,
            )
            candidates.append((Candidate.PAINTED_OUT, ok, own[:, :2], score.astype(np.float32), ratio_own))
        return candidates

    def _maps(
        self,
        vertices: np.ndarray,
        ras: Raster,
        roi: tuple[int, int, int, int],
        p: _Pixels,
        choice: _Choice,
        fill_vals: np.ndarray,
        skirt: Raster | None = None,
    ) -> Flow:
        """The chosen candidates as maps over the window, with the skirt, the carried clothes and the
        outline's ring added."""
        shape = ras.tri.shape
        body = ras.mask
        index = ras.covered[0]  # flat indices of the body's pixels (N,), the order of `p` and `choice`
        map_x = _on_window(shape, index, choice.uv[:, 0], np.nan, np.float32)
        map_y = _on_window(shape, index, choice.uv[:, 1], np.nan, np.float32)
        source = _on_window(shape, index, choice.source, -1, np.int16)
        part = _on_window(shape, index, p.part, -1, np.int16)
        weight = _on_window(shape, index, np.where(choice.source >= 0, choice.weight, 0.0), 0.0, np.float32)
        fill = _on_window(shape, index, fill_vals[:, 0:3], 0.0, np.float32)
        textured = _on_window(shape, index, ~p.head, False, bool)
        tex = index[~p.head]
        fill_x = _on_window(shape, tex, fill_vals[~p.head, 3], -1e4, np.float32)
        fill_y = _on_window(shape, tex, fill_vals[~p.head, 4], -1e4, np.float32)
        hole = _on_window(shape, index, choice.source < 0, False, bool)
        facing = _on_window(shape, index, choice.facing, 0.0, np.float32)
        kind = _on_window(shape, index, choice.kind, Candidate.NONE, np.int8)
        # (the warp shows the atlas only on the head, in the holes, on surfaces the photos saw
        # only from their other side and under a mirror image's blend: sampled there alone)
        atlas = self._atlas(
            ras,
            p.head
            | (choice.source < 0)
            | (choice.kind == Candidate.OTHER_SIDE)
            | (choice.kind == Candidate.MIRROR),
        )
        if skirt is not None and skirt.mask.any():
            body = body | skirt.mask
            maps = _SkirtMaps(map_x, map_y, source, part, weight, facing, kind, atlas)
            self._skirt_maps(skirt, maps)
        self._carry(vertices, map_x, map_y, source, part, body, roi[0], roi[1])
        edge = self._edge(map_x, map_y, source, body)
        return Flow(
            atlas=atlas,
            map_x=map_x,
            map_y=map_y,
            source=source,
            body=body,
            hole=hole,
            part=part,
            facing=facing,
            weight=weight,
            fill=fill,
            fill_x=fill_x,
            fill_y=fill_y,
            textured=textured,
            edge=edge,
            candidate=kind,
        )

    def _skirt_maps(self, skirt: Raster, m: _SkirtMaps) -> None:
        """The skirt's pixels in the maps (in place): the first photo's pixel of each shell point; on
        the back half, of the front point before it, shown as the garment without the front's
        details (as any surface the photo saw only from its other side), or a later photo's pixel
        where that photo saw the back half; where the first photo shows a limb over the cloth, that
        photo with the limb painted out."""
        index = skirt.covered[0]
        vals = skirt.interpolate(self.skirt_attr)  # (N, 3): photo u, v, back share
        first = self.sources[0]
        back = vals[:, 2] > 0.5
        kind = np.where(back, Candidate.OTHER_SIDE, Candidate.SEEN).astype(np.int8)
        if first.clean is not None:
            limb = lookup(first.clean_region, vals[:, :2], -1)
            kind[~back & (limb >= 0) & (limb != TRUNK)] = Candidate.PAINTED_OUT
        uv, source = vals[:, :2].copy(), np.zeros(len(index), dtype=np.int16)
        # Where a later photo saw the back half at all (a photo from behind), that photo: even
        # obliquely it is the back's own cloth, not the front's.
        best = np.zeros(len(index), dtype=np.float32)
        for si, attr in self.skirt_views:
            seen = skirt.interpolate(attr)  # (N, 3): that photo's u, v, facing (0: not seen)
            take = back & (seen[:, 2] > np.maximum(best, AWAY_FACING))
            uv[take], source[take], best[take] = seen[take, :2], si, seen[take, 2]
            kind[take] = Candidate.SEEN
        m.map_x.ravel()[index], m.map_y.ravel()[index] = uv[:, 0], uv[:, 1]
        m.source.ravel()[index] = source
        m.part.ravel()[index] = PELVIS
        m.weight.ravel()[index] = 1.0
        m.facing.ravel()[index] = 1.0  # (the outline takes the photo's matte of the cloth's outline)
        m.kind.ravel()[index] = kind
        back &= source == 0
        if m.atlas is not None and back.any():  # the warp shows the atlas's colour on the back
            put_pixels(m.atlas, index[back], sample(first.back, vals[back, :2]))

    def _atlas(self, ras: Raster, where: np.ndarray) -> np.ndarray | None:
        """The avatar's atlas colour at the body pixels `where` (a selection of the covered pixels),
        zero elsewhere in the window (None without an atlas)."""
        if self.texture is None:
            return None
        index, tri, bary = (a[where] for a in ras.covered)
        xy = np.einsum("nk,nkd->nd", bary, np.take(self.face_uv, tri, axis=0))
        out = np.zeros(ras.tri.shape + (3,), dtype=np.float32)
        put_pixels(out, index, sample(self.texture, xy))
        return out

    def _edge(self, map_x: np.ndarray, map_y: np.ndarray, source: np.ndarray, body: np.ndarray) -> np.ndarray:
        """A thin ring just outside the body where no clothes were carried: the photo's pixels just
        outside the same surface point (the nearest body pixel's source plus the offset), so that
        the person's soft, anti-aliased outline comes along; the photo's matte there decides how
        much of it shows."""
        h, w = body.shape
        filled = body & (source >= 0)
        if not filled.any():
            return np.zeros_like(body)
        # The ring: pixels with a filled pixel within this radius (the nearest one lends its source).
        radius = max(1.0, 1.0 * self.px)
        r = int(np.floor(radius))
        grown = cv2.dilate(
            filled.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        ).astype(bool)
        ys, xs = np.nonzero(grown & ~body & (source < 0))
        n = nearest_within(filled, ys, xs, radius)
        found = n >= 0
        ys, xs, n = ys[found], xs[found], n[found]
        ring = np.zeros_like(body)
        ring[ys, xs] = True
        ny, nx = np.divmod(n, w)
        map_x[ys, xs] = map_x.ravel()[n] + (xs - nx)
        map_y[ys, xs] = map_y.ravel()[n] + (ys - ny)
        source[ys, xs] = source.ravel()[n]
        return ring

    def _carry(
        self,
        vertices: np.ndarray,
        map_x: np.ndarray,
        map_y: np.ndarray,
        source: np.ndarray,
        part: np.ndarray,
        body: np.ndarray,
        x0: int,
        y0: int,
    ) -> None:
        """Splat the first photo's clothes and hair into the frame (where the body is not): each
        carried pixel goes where its anchor surface point goes plus its offset, turned and scaled
        as the anchor's body part turned (hair: rigidly with the head; cloth between two limbs:
        rigidly with the trunk). The maps hold, per covered output pixel, the source pixel it shows."""
        if not len(self.carried.xy):
            return
        pos, lin = self._carried_positions(vertices)
        self._splat(self.carried, pos, lin, map_x, map_y, source, part, body, x0, y0)

    def _carried_positions(self, vertices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Where the first photo's carried pixels land in the frame (N, 2), and the 2-D similarity
        (N, 2, 2) of the body part each hangs from."""
        c = self.carried
        uv_t, z_t = project(
            np.asarray(vertices, dtype=np.float64), self.camera.K, self.camera.R, self.camera.t
        )
        valid = c.src_front & (z_t > 0)
        lin, ms, md = part_similarities(c.src_uv, uv_t, self.vertex_part, self.num_parts, valid=valid)
        p = c.part
        # (per coordinate, not einsum over axes of two and three: several times faster, same sums)
        (u, v), (b0, b1, b2), (k0, k1, k2) = uv_t.T, c.anchor_bary.T, c.anchor_corners.T
        anchor = np.stack([b0 * u[k0] + b1 * u[k1] + b2 * u[k2], b0 * v[k0] + b1 * v[k1] + b2 * v[k2]], 1)
        lin_p = lin[p]

        def turn(d: np.ndarray) -> np.ndarray:  # each pixel's part's linear map applied to d (N, 2)
            return np.stack(
                [
                    lin_p[:, 0, 0] * d[:, 0] + lin_p[:, 0, 1] * d[:, 1],
                    lin_p[:, 1, 0] * d[:, 0] + lin_p[:, 1, 1] * d[:, 1],
                ],
                1,
            )

        surf = anchor + turn(c.xy - c.anchor_xy)
        rigid = turn(c.xy - ms[p]) + md[p]
        pos = np.where(c.on_head[:, None], rigid, surf)
        if c.trunk_rigid.any():
            # the trunk's similarity alone (its vertices' sums are the same in the same order)
            tv = c.trunk_vertices
            lin_r, ms_r, md_r = part_similarities(
                c.src_uv[tv], uv_t[tv], np.zeros(len(tv), np.int64), 1, valid=valid[tv]
            )
            sel = c.trunk_rigid
            pos[sel] = (c.xy[sel] - ms_r[0]) @ lin_r[0].T + md_r[0]
        return pos, lin_p

    @staticmethod
    def _splat(
        c: _Carried,
        pos: np.ndarray,
        main: np.ndarray,
        map_x: np.ndarray,
        map_y: np.ndarray,
        source: np.ndarray,
        part: np.ndarray,
        body: np.ndarray,
        x0: int,
        y0: int,
    ) -> None:
        """Splat the carried pixels at `pos` (frame coordinates) into the maps off the body: each
        covered output pixel shows the source pixel that lands there (through the inverse of the
        part's similarity `main` for the sub-pixel offset), pinholes closed."""
        h, w = body.shape
        # The similarity's inverse [[a, b], [-b, a]] (rotation and scale: two numbers per pixel).
        det = np.maximum(main[:, 0, 0] ** 2 + main[:, 1, 0] ** 2, 1e-9)
        inv_a, inv_b = main[:, 0, 0] / det, main[:, 1, 0] / det
        # Every carried pixel lands on the four pixels around its position, in the order (dx, dy) =
        # (0, 0), (0, 1), (1, 0), (1, 1), all at once; where several land on one pixel the last
        # written wins (far pixels come first, so the one nearer its body; then the later corner).
        n = len(pos)
        fx, fy = np.tile(pos[:, 0] - x0, 4), np.tile(pos[:, 1] - y0, 4)
        qx = np.tile(np.floor(pos[:, 0] - x0).astype(np.int64), 4) + np.repeat([0, 0, 1, 1], n)
        qy = np.tile(np.floor(pos[:, 1] - y0).astype(np.int64), 4) + np.repeat([0, 1, 0, 1], n)
        ok = np.flatnonzero((qx >= 0) & (qx < w) & (qy >= 0) & (qy < h))
        pix = ok % n  # the carried pixel of each landing
        ox, oy = qx[ok] - fx[ok], qy[ok] - fy[ok]
        a, b = inv_a[pix], inv_b[pix]
        sx, sy = c.xy[pix, 0] + (a * ox + b * oy), c.xy[pix, 1] + (-b * ox + a * oy)
        at = qy[ok] * w + qx[ok]
        got_x = np.full(h * w, np.nan, dtype=np.float32)
        got_y = np.full(h * w, np.nan, dtype=np.float32)
        got_p = np.full(h * w, -1, dtype=np.int16)
        got_x[at], got_y[at], got_p[at] = sx, sy, c.part[pix]
        got_x, got_y, got_p = got_x.reshape(h, w), got_y.reshape(h, w), got_p.reshape(h, w)
        covered = np.isfinite(got_x)
        if not covered.any():
            return
        # Close pinholes where the clothes were stretched: the nearest splatted pixel's source.
        closed = cv2.morphologyEx(
            covered.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8)
        ).astype(bool)
        gaps = closed & ~covered
        if gaps.any():
            gy, gx = np.nonzero(gaps)
            near = nearest_within(covered, gy, gx, np.sqrt(2.0))  # a 3x3 closing: a neighbour is set
            got_x[gy, gx] = got_x.ravel()[near]
            got_y[gy, gx] = got_y.ravel()[near]
            got_p[gy, gx] = got_p.ravel()[near]
        sel = closed & ~body
        map_x[sel], map_y[sel] = got_x[sel], got_y[sel]
        source[sel] = 0
        part[sel] = -2 - got_p[sel]

    def warp(self, vertices: np.ndarray, camera: Camera | None = None) -> Warped | None:
        """Warp the sources onto the posed body, seen by `camera` (default: the one it was made with);
        None when the body is entirely out of view. The warper itself is not changed, so several
        threads can warp different frames at once."""
        warper = self
        if camera is not None and camera is not self.camera:
            warper = copy.copy(self)  # shallow: the arrays and caches stay shared
            warper.camera = camera
        roi = warper.window(vertices)
        if roi is None:
            return None
        fl = warper.flow(vertices, roi)
        rgb, alpha = warp_flow(fl, self.sources, self.part_region, self.px, self.width, self.height)
        return Warped(rgb=rgb, alpha=alpha, x0=roi[0], y0=roi[1], flow=fl)
