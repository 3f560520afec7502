"""Transformation flow (after Liquid Warping GAN, with the fitted body instead of SMPL).

For every output frame the posed body is rasterised in the output camera. Each covered pixel lies on
one body-surface point (triangle + barycentric); the same point's pixel in every source photo is the
interpolation of the vertices' projections in that source, which gives a backward flow applied with
`cv2.remap`. A point is taken from a source only where that source's depth buffer shows it (visible);
points no source saw come from the mirror-image point of the body (the opposite limb), then from the
same body part seen from the other side, and what is left is in-painted. Person pixels outside the
bare body (hair, clothes) follow the nearest body pixel: the flow is extended outward from the body
silhouette, and a pixel is kept only where the source photo has person pixels next to the same body
part.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vmclip.motion.skeleton import JOINT_NAMES, PARENTS
from vmclip.render.raster import Raster, Rasterizer, project

# How far (pixels at 512) clothes and hair may extend beyond the bare body's silhouette.
EXTEND_PX = 48.0
# A source sees a surface point when its depth is within this of the source depth buffer (metres).
VISIBILITY_EPS = 0.03


def mirror_vertex_map(rest_vertices: np.ndarray) -> np.ndarray:
    """For every vertex, the vertex nearest to its mirror image across the body's x = 0 plane."""
    from scipy.spatial import cKDTree

    rest = np.asarray(rest_vertices, dtype=np.float64)
    centre = np.median(rest[:, 0])
    mirrored = rest.copy()
    mirrored[:, 0] = 2 * centre - mirrored[:, 0]
    return cKDTree(rest).query(mirrored)[1].astype(np.int64)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    v = np.asarray(vertices, dtype=np.float64)
    fn = np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])
    n = np.zeros_like(v)
    for k in range(3):
        np.add.at(n, faces[:, k], fn)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def bleed(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The photo with every pixel off the person (and in a thin band inside the outline, where the
    photo mixes person and background) replaced by the colour of the nearest person pixel, so that
    sampling near the outline, or just outside it with an imperfect fit, never picks up background."""
    radius = max(1, round(3 * max(mask.shape) / 512))
    person = cv2.erode((mask > 0.5).astype(np.uint8), np.ones((2 * radius + 1,) * 2, np.uint8)).astype(bool)
    if not person.any() or person.all():
        return image
    _, labels = cv2.distanceTransformWithLabels((~person).astype(np.uint8), cv2.DIST_L2, 5,
                                                labelType=cv2.DIST_LABEL_PIXEL)
    idx = np.flatnonzero(person.ravel())
    flat = image.reshape(-1, 3)
    return flat[idx[labels.ravel() - 1]].reshape(image.shape)


@dataclass
class Camera:
    K: np.ndarray
    R: np.ndarray
    t: np.ndarray

    @property
    def centre(self) -> np.ndarray:
        return -np.asarray(self.R).T @ np.asarray(self.t)


class SourceView:
    """One source photo with its posed body, prepared once: vertex projections, depth buffer, body
    part map and, for every person pixel outside the body, the body part it hangs from."""

    def __init__(self, rasterizer: Rasterizer, image: np.ndarray, mask: np.ndarray, camera: Camera,
                 vertices: np.ndarray, faces: np.ndarray, vertex_part: np.ndarray) -> None:
        h, w = image.shape[:2]
        self.image = np.ascontiguousarray(image[..., :3], dtype=np.uint8)
        mask = np.clip(np.asarray(mask, dtype=np.float32), 0.0, 1.0)
        # Person segmenters draw the outline a little outside the person: pull the matte in by about
        # 1.5 px (at 512) so that a moved outline does not bring a rim of the old background along.
        r = int(1.5 * max(h, w) / 512)
        self.mask = cv2.erode(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
        # For trimming a fitted body that is wider than the person: only where the photo clearly shows
        # background (the matte grown by a pixel), so that no seam opens along a correct outline.
        self.mask_trim = cv2.dilate(mask, np.ones((3, 3), np.uint8))
        self.bled = bleed(self.image, mask)
        self.camera = camera
        self.width, self.height = w, h
        uv, z = project(vertices, camera.K, camera.R, camera.t)
        self.uvz = np.concatenate([uv, z[:, None]], axis=1).astype(np.float32)
        normals = vertex_normals(vertices, faces)
        view = camera.centre[None, :] - vertices
        view /= np.maximum(np.linalg.norm(view, axis=1, keepdims=True), 1e-12)
        self.facing = np.clip((normals * view).sum(1), 0.0, 1.0).astype(np.float32)
        self.raster: Raster = rasterizer.render(vertices, faces, camera.K, camera.R, camera.t, w, h)
        self.depth = self.raster.depth
        # Visibility is tested against the farthest depth among the 3x3 neighbours: a point on a steep
        # surface (the side of the face) must not fail the test by a rounding of its pixel.
        far = np.where(np.isfinite(self.depth), self.depth, 1e6).astype(np.float32)
        self.depth_vis = cv2.dilate(far, np.ones((3, 3), np.uint8))
        part = np.full((h, w), -1, dtype=np.int16)
        part[self.raster.mask] = vertex_part[self.raster.vertex_of_max_weight()]
        self.part = part
        # Body part of the nearest body pixel, for every pixel (person pixels outside the body
        # inherit the part they hang from).
        body = self.raster.mask
        if body.any():
            _, labels = cv2.distanceTransformWithLabels((~body).astype(np.uint8), cv2.DIST_L2, 5,
                                                        labelType=cv2.DIST_LABEL_PIXEL)
            idx = np.flatnonzero(body.ravel())
            near_part = part.ravel()[idx][labels.ravel() - 1].reshape(h, w)
        else:
            near_part = part
        # What the extended flow may carry: person pixels off the body (clothes, hair) with the part
        # they hang from, and the body's own rim (a few pixels inside its outline, where a sample
        # from just outside the target body lands when the limb turned), so that no seam opens
        # between the body and its clothes. Deeper body pixels: -1.
        rim_px = max(2, round(3 * max(h, w) / 512))
        core = cv2.erode(body.astype(np.uint8), cv2.getStructuringElement(
            cv2.MORPH_ELLIPSE, (2 * rim_px + 1, 2 * rim_px + 1))).astype(bool)
        self.hang = np.where(core, -1, near_part).astype(np.int16)
        # Solid person pixels only: the soft fringe of the matte would otherwise be carried outward as
        # faint streaks.
        self.mask_off = np.where(core | (self.mask < 0.5), 0.0, self.mask).astype(np.float32)


@dataclass
class Warped:
    """A warped person: `rgb` (h, w, 3) float32 0..255 and `alpha` (h, w) over the window whose
    top-left pixel in the output frame is (x0, y0); `flow` holds the maps behind it (same window)."""

    rgb: np.ndarray
    alpha: np.ndarray
    x0: int
    y0: int
    flow: dict[str, np.ndarray]


class FlowWarper:
    """Builds the backward flow from an output frame's posed body to the source photos and warps."""

    def __init__(self, rasterizer: Rasterizer, sources: list[SourceView], faces: np.ndarray,
                 vertex_part: np.ndarray, mirror: np.ndarray, camera: Camera, width: int, height: int,
                 extend_px: float | None = None) -> None:
        self.rasterizer = rasterizer
        self.sources = sources
        self.faces = np.ascontiguousarray(faces, dtype=np.int64)
        self.vertex_part = np.asarray(vertex_part, dtype=np.int64)
        self.extend_px = (EXTEND_PX * max(width, height) / 512.0) if extend_px is None else extend_px
        self.num_parts = max(int(self.vertex_part.max()) + 1, len(PARENTS))
        # Body parts within two steps of each other on the skeleton: clothes near a joint (the side of
        # the chest under the arm) may hang from either neighbour in the photo.
        adj = np.eye(self.num_parts, dtype=bool)
        for j, p in enumerate(PARENTS):
            if p >= 0:
                adj[j, p] = adj[p, j] = True
        side = np.array([1 if n.startswith("left_") else -1 if n.startswith("right_") else 0
                         for n in JOINT_NAMES] + [0] * (self.num_parts - len(JOINT_NAMES)))
        opposite = (side[:, None] * side[None, :]) < 0  # never across the body (thigh to thigh)
        self.related = ((adj.astype(int) @ adj.astype(int)) > 0) & ~opposite
        # Hands and feet carry little beyond the bare body (a sleeve cuff, a shoe rim).
        self.reach = np.full(self.num_parts, self.extend_px, dtype=np.float32)
        for name in ("left_wrist", "right_wrist", "left_hand", "right_hand", "left_ankle", "right_ankle",
                     "left_foot", "right_foot"):
            self.reach[JOINT_NAMES.index(name)] = 0.1 * self.extend_px
        # Sleeves are narrower than skirts or hair: arms carry less (what lies beside a hanging arm in
        # the photo is mostly the torso's clothing, which must not fly up with a raised arm).
        for name in ("left_shoulder", "right_shoulder", "left_elbow", "right_elbow"):
            self.reach[JOINT_NAMES.index(name)] = 0.35 * self.extend_px
        self.mirror = mirror
        self.camera = camera
        self.width, self.height = width, height
        # Per-source vertex attributes: own projection (u, v, z), the mirror vertex's, facing weight.
        self.attr = [np.concatenate([s.uvz, s.uvz[mirror], s.facing[:, None], s.facing[mirror, None]],
                                    axis=1) for s in sources]

    def window(self, vertices: np.ndarray) -> tuple[int, int, int, int] | None:
        """The output-frame window (x0, y0, x1, y1) holding the body plus the clothes margin."""
        uv, z = project(vertices, self.camera.K, self.camera.R, self.camera.t)
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

    @staticmethod
    def _lookup(img: np.ndarray, uv: np.ndarray, fill) -> np.ndarray:
        u = np.rint(uv[:, 0]).astype(np.int64)
        v = np.rint(uv[:, 1]).astype(np.int64)
        h, w = img.shape[:2]
        inside = (u >= 0) & (u < w) & (v >= 0) & (v < h)
        out = np.full(len(uv), fill, dtype=img.dtype)
        out[inside] = img[v[inside], u[inside]]
        return out

    def flow(self, vertices: np.ndarray, roi: tuple[int, int, int, int]) -> dict[str, np.ndarray]:
        """Backward flow for one posed body over the window `roi`: `map_x`, `map_y` source
        coordinates, `source` index of the source photo used (-1: none), `body` mask, `hole` (body
        pixels no source could fill), `part` (body part under the pixel; -2 - p off the body next to
        part p; -1 elsewhere)."""
        x0, y0, x1, y1 = roi
        ras = self.rasterizer.render(vertices, self.faces, self.camera.K, self.camera.R, self.camera.t,
                                     self.width, self.height, roi=roi)
        h, w = ras.tri.shape
        body = ras.mask
        n = int(body.sum())
        part_px = self.vertex_part[ras.vertex_of_max_weight()]
        best = np.full(n, -1, dtype=np.int64)
        best_uv = np.full((n, 2), np.nan, dtype=np.float32)
        best_score = np.full(n, -np.inf, dtype=np.float32)
        best_facing = np.zeros(n, dtype=np.float32)  # of the chosen point when it is itself seen
        # Ranked candidates: a visible point (score 2 + facing), its visible mirror image (1 + facing),
        # the same body part seen from behind (0 + facing). The best score across sources wins.
        for si, (src, attr) in enumerate(zip(self.sources, self.attr, strict=True)):
            vals = ras.interpolate(attr)
            own, mir = vals[:, 0:3], vals[:, 3:6]
            candidates = (
                (own[:, 2] <= self._lookup(src.depth_vis, own, -np.inf) + VISIBILITY_EPS, own[:, :2],
                 2.0 + vals[:, 6]),
                (mir[:, 2] <= self._lookup(src.depth_vis, mir, -np.inf) + VISIBILITY_EPS, mir[:, :2],
                 1.0 + vals[:, 7]),
                (self._lookup(src.part, own, -1) == part_px, own[:, :2], vals[:, 6]),
            )
            # Later photos only win clearly (by 0.3 in facing): a patchwork of photos with different
            # light and fit errors looks worse than one photo slightly less head-on.
            bias = 0.3 if si > 0 else 0.0
            for k, (ok, uv, score) in enumerate(candidates):
                score = score - bias
                take = ok & (score > best_score)
                best[take] = si
                best_uv[take] = uv[take]
                best_score[take] = score[take]
                best_facing[take] = vals[take, 6] if k == 0 else 0.0
        map_x = np.full((h, w), np.nan, dtype=np.float32)
        map_y = np.full((h, w), np.nan, dtype=np.float32)
        source = np.full((h, w), -1, dtype=np.int16)
        map_x[body], map_y[body] = best_uv[:, 0], best_uv[:, 1]
        source[body] = best
        part = np.full((h, w), -1, dtype=np.int16)
        part[body] = part_px
        hole = body & (source < 0)
        self._extend(map_x, map_y, source, part, body & ~hole, x0, y0)
        # How squarely the chosen source saw each point (0: at a grazing angle, or not itself seen).
        facing = np.zeros((h, w), dtype=np.float32)
        facing[body] = best_facing
        return {"map_x": map_x, "map_y": map_y, "source": source, "body": body, "hole": hole, "part": part,
                "facing": facing}

    def _part_jacobians(self, map_x, map_y, source, part, filled, x0, y0) -> np.ndarray:
        """Per (source, part): the 2x2 linear part of the best affine map from output pixels to
        source pixels (how the limb turned and scaled between the photo and this frame)."""
        groups = len(self.sources) * self.num_parts
        ys, xs = np.nonzero(filled)
        g = source[ys, xs].astype(np.int64) * self.num_parts + part[ys, xs]
        x = (xs + x0).astype(np.float64)
        y = (ys + y0).astype(np.float64)
        u = map_x[ys, xs].astype(np.float64)
        v = map_y[ys, xs].astype(np.float64)
        cnt = np.bincount(g, minlength=groups)
        safe = np.maximum(cnt, 1)

        def mean(a):
            return np.bincount(g, weights=a, minlength=groups) / safe

        mx, my, mu, mv = mean(x), mean(y), mean(u), mean(v)
        cxx = mean(x * x) - mx * mx
        cxy = mean(x * y) - mx * my
        cyy = mean(y * y) - my * my
        cxu = mean(x * u) - mx * mu
        cyu = mean(y * u) - my * mu
        cxv = mean(x * v) - mx * mv
        cyv = mean(y * v) - my * mv
        cov = np.stack([np.stack([cxx, cxy], -1), np.stack([cxy, cyy], -1)], -2) + np.eye(2) * 1.0
        rhs = np.stack([np.stack([cxu, cxv], -1), np.stack([cyu, cyv], -1)], -2)  # (G, 2, 2)
        jac = np.swapaxes(np.linalg.solve(cov, rhs), -1, -2)  # rows: du/d(x,y), dv/d(x,y)
        det = np.linalg.det(jac)
        # Few pixels or a degenerate or extreme fit (a foot seen end-on): plain translation.
        norm = np.linalg.norm(jac, axis=(1, 2))
        bad = (cnt < 40) | ~np.isfinite(det) | (det < 0.25) | (det > 4) | (norm ** 2 > 6 * np.abs(det))
        jac[bad] = np.eye(2)
        # Keep only the turn and a moderate uniform scale (the nearest similarity): shears and strong
        # stretches of a small part's fit throw hair and cloth into spikes.
        p = 0.5 * (jac[:, 0, 0] + jac[:, 1, 1])
        q = 0.5 * (jac[:, 1, 0] - jac[:, 0, 1])
        scale = np.hypot(p, q)
        clamp = np.clip(scale, 0.75, 1.33) / np.maximum(scale, 1e-9)
        p, q = p * clamp, q * clamp
        return np.stack([np.stack([p, -q], -1), np.stack([q, p], -1)], -2)

    def _extend(self, map_x: np.ndarray, map_y: np.ndarray, source: np.ndarray, part: np.ndarray,
                filled: np.ndarray, x0: int, y0: int) -> None:
        """Carry the flow outward from the body: a pixel near the body takes the source position of
        its nearest body pixel plus the offset, turned and scaled as that body part was (clothes and
        hair move with the surface they hang from)."""
        if not filled.any():
            return
        dist, labels = cv2.distanceTransformWithLabels((~filled).astype(np.uint8), cv2.DIST_L2, 5,
                                                       labelType=cv2.DIST_LABEL_PIXEL)
        ring = (dist > 0) & (dist <= self.extend_px) & (part < 0)
        if not ring.any():
            return
        width = filled.shape[1]
        seeds = np.flatnonzero(filled.ravel())
        nearest = seeds[labels[ring] - 1]
        near_ok = dist[ring] <= self.reach[part.ravel()[nearest]]
        ring[ring] = near_ok
        nearest = nearest[near_ok]
        jac = self._part_jacobians(map_x, map_y, source, part, filled, x0, y0)
        ny, nx = np.divmod(nearest, width)
        ry, rx = np.nonzero(ring)
        src = source.ravel()[nearest]
        prt = part.ravel()[nearest]
        j = jac[src.astype(np.int64) * self.num_parts + prt]
        dx, dy = (rx - nx).astype(np.float32), (ry - ny).astype(np.float32)
        map_x[ring] = map_x.ravel()[nearest] + j[:, 0, 0] * dx + j[:, 0, 1] * dy
        map_y[ring] = map_y.ravel()[nearest] + j[:, 1, 0] * dx + j[:, 1, 1] * dy
        source[ring] = src
        part[ring] = -2 - prt

    def warp(self, vertices: np.ndarray) -> Warped | None:
        """Warp the sources onto the posed body; None when the body is entirely out of view."""
        roi = self.window(vertices)
        if roi is None:
            return None
        fl = self.flow(vertices, roi)
        h, w = fl["body"].shape
        rgb = np.zeros((h, w, 3), dtype=np.float32)
        alpha = np.zeros((h, w), dtype=np.float32)
        for si, src in enumerate(self.sources):
            sel = fl["source"] == si
            if not sel.any():
                continue
            mx = np.where(sel, fl["map_x"], -1e4).astype(np.float32)
            my = np.where(sel, fl["map_y"], -1e4).astype(np.float32)
            col = cv2.remap(src.bled, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            a = cv2.remap(src.mask_trim, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
            off_body = sel & (fl["part"] <= -2)
            if off_body.any():
                # Off-body pixels show only person pixels off the photo's body that hang from the same
                # body part there; isolated specks (a sample grazing the photo's outline) are dropped.
                a_off = cv2.remap(src.mask_off, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
                ys, xs = np.nonzero(off_body)
                uv = np.stack([fl["map_x"][ys, xs], fl["map_y"][ys, xs]], 1)
                hang = self._lookup(src.hang, uv, -1)
                wrong = (hang < 0) | ~self.related[np.maximum(hang, 0), -2 - fl["part"][ys, xs]]
                a_off[ys[wrong], xs[wrong]] = 0.0
                a_off[~off_body] = 0.0
                keep = cv2.morphologyEx((a_off > 0.5).astype(np.uint8), cv2.MORPH_OPEN,
                                        cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))
                a_off *= cv2.dilate(keep, np.ones((3, 3), np.uint8)).astype(np.float32)
                # Only pieces attached to the body: an island would be part of the photo's person that
                # the fit missed, carried to a wrong place.
                # (touching the body grown by a few pixels: a carried rim may start just off the body).
                grown = cv2.dilate(fl["body"].astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
                solid = (a_off > 0.3).astype(np.uint8)
                count, labels = cv2.connectedComponents(solid, connectivity=8)
                if count > 1:
                    keep = np.zeros(count, dtype=bool)
                    keep[np.unique(labels[grown & (solid > 0)])] = True
                    # and no specks: pieces of a few dozen pixels (at 512) are sampling noise
                    keep &= np.bincount(labels.ravel(), minlength=count) >= 1e-4 * self.width * self.height
                    keep[0] = False
                    a_off *= keep[labels]
                # Smooth the saw-teeth that nearest-pixel propagation leaves along a carried strip.
                a_off = cv2.medianBlur(a_off, 5)
                a[off_body] = a_off[off_body]
            rgb[sel] = col[sel]
            alpha[sel] = a[sel]
        # Inside the body the pixel is the person whatever the photo's matte says there (a turned limb
        # shows surface that sat at the photo's outline); only a thin band along the body's outline
        # takes the matte, which trims a fitted body that is wider than the person.
        body = fl["body"]
        band = max(2, int(round(4 * self.width / 512)))
        interior = cv2.erode(body.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE,
                                                                              (2 * band + 1, 2 * band + 1)))
        alpha[interior.astype(bool)] = 1.0
        # In the band, the photo's matte is only trusted where the photo saw the surface squarely; a
        # point it saw edge-on sat on its outline, where the matte is half background.
        band_px = body & ~interior.astype(bool)
        alpha[band_px] = np.maximum(alpha[band_px], np.clip(1.0 - fl["facing"][band_px] / 0.35, 0.0, 1.0))
        # Close thin gaps between the body and the clothes carried beside it (a slightly misplaced fit
        # leaves a seam of a pixel or two that would show the background through the person).
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
        alpha = np.maximum(alpha, cv2.morphologyEx(alpha, cv2.MORPH_CLOSE, kernel))
        hole = fl["hole"]
        unset = hole | ((fl["source"] < 0) & (alpha > 0))  # holes, and gap pixels the closing filled
        if unset.any():
            # What no source saw: in-paint from the surrounding warped person pixels.
            rgb = cv2.inpaint(np.clip(rgb, 0, 255).astype(np.uint8), unset.astype(np.uint8), 5,
                              cv2.INPAINT_TELEA).astype(np.float32)
            alpha[hole] = 1.0
        return Warped(rgb=rgb, alpha=alpha, x0=roi[0], y0=roi[1], flow=fl)
