"""A skirt or dress as a surface of its own (`Skirt`, found by `find_skirt` in the first photo).

Cloth carried pixel by pixel hangs from the nearest limb, so a skirt splits into two wide trouser legs
as the legs part, and seen from behind it is the front's pixels with the offsets of a front view. Where
the photo shows cloth that bridges the legs below the crotch and stands out beyond them, the renderer
instead draws a closed shell around the hips and legs: one ring per few photo rows, as wide as the
photo shows the cloth there, and as deep as the body there plus the same flare (a skirt stands off the
legs about equally all round). Its front half takes the photo's pixels, its back half the garment's
colours from the front without the front's details (the back texture), like any surface the photo saw
only from its other side. It moves with the pelvis and, towards its hem, with the thighs, and the
legs swing inside it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vmclip.geometry import Camera, kabsch
from vmclip.motion.skeleton import JOINT_NAMES

# --- what counts as a skirt (shares of the thigh's length in the photo, hip to knee joint) ---
# Well below the crotch (from this far below the hip joints) ...
BRIDGE_FROM = 0.4
# ... the photo shows cloth on the line midway between the legs, unbroken for at least this far: a
# shorter bridge is the hem of a jacket or the hands in its pockets. (Trousers show the background
# there, or the legs themselves when they stand together, which the next rule leaves out.)
MIN_BRIDGE = 0.35
# The legs' axes are this far apart on average along the bridge: closer, bare or trousered legs
# touch each other there, and the bridge goes on to the feet; the skirt's hem is then where the
# cloth's colour ends (`_colour_hem`).
SPREAD = 0.4
# Rows without cloth between the legs tolerated inside the skirt (pixels at 512: a fold, a hand).
GAP_PX = 6.0
# Along the bridge a skirt is at least this much wider (the median row) than what the photo shows of
# the person just below its hem (over BELOW_HEM of the thigh): the legs. Trousers whose thighs touch
# are about as wide as the legs (a thigh is 1.2-1.4 times as wide as the shin).
FLARE = 1.8
BELOW_HEM = 0.15
# Cloth within this of the skirt's median colour (grey levels, any channel) is the skirt's: the shell
# goes up to the first row whose cloth (its median) differs more (the waistband, where a top of
# another colour begins), and an arm does not carry the skirt's cloth beside it (a hand holding the
# hem out).
SKIRT_COLOUR = 40.0
# ... and so is cloth of its hue (colour vectors within SHADE_COS of each other) from SHADE[0] to
# SHADE[1] times as bright, when it has a hue (saturation, (max - min) / max, at least SATURATED: not
# a black, grey or white, whose "hue" skin shares): its folds in shade. Skin beside a blue skirt is
# at a cosine of 0.7.
SHADE_COS = 0.97
SHADE = (0.3, 1.6)
SATURATED = 0.4
# --- the shell ---
RING_PX = 6.0  # a ring every this many photo rows
SEGMENTS = 48  # points around each ring
# The least the shell stands off the body (metres): the legs inside must not poke through it.
MIN_STANDOFF_M = 0.015
# The shell moves with the pelvis part's vertices and, more towards its hem, with the thighs': at the
# hem (and below the knees) a side follows its own thigh by this share (a skirt swings with the legs
# inside it but hangs from the hips).
LEG_FOLLOW = 0.5
PELVIS = JOINT_NAMES.index("pelvis")
# --- its own texture, unrolled (`Skirt.unwrap`, for the avatar the Blender body wears) ---
# Texel rows per ring (rings are RING_PX photo rows apart at 512: a little finer than the photo).
UNWRAP_ROWS = 8

_J = JOINT_NAMES.index
_LEGS = tuple(tuple(_J(f"{s}_{j}") for j in ("hip", "knee", "ankle")) for s in ("left", "right"))
# The body parts (SMPL-24 joints) the shell follows, in the order of `Skirt.weights`' columns.
FOLLOWS = (PELVIS, _J("left_hip"), _J("right_hip"))


@dataclass
class Skirt:
    """The shell around the hips and legs, in the first photo's pose: `vertices` (V, 3) world,
    `faces` (F, 3); per vertex the first photo's pixel that shows it (`src_uv` (V, 2); for the back
    half, the front point in front of it) and whether it lies on the back half (`back` (V,) 0 or 1);
    `footprint` (H, W) bool: the photo's pixels it replaces (the cloth no longer carried), and
    `under_arm` (H, W) bool: where an arm hangs in front of it in the photo (its texture painted in
    there); `colour`: the cloth's median colour, `rows`: the photo rows of its top and its hem. It
    follows three body parts (the pelvis, the left and the right thigh), each given by its vertices
    `anchors` and their positions in the photo's pose `anchor_rest`, by the weights `weights` (V, 3)."""

    vertices: np.ndarray
    faces: np.ndarray
    src_uv: np.ndarray
    back: np.ndarray
    footprint: np.ndarray
    under_arm: np.ndarray
    anchors: tuple[np.ndarray, ...]
    anchor_rest: tuple[np.ndarray, ...]
    weights: np.ndarray
    colour: np.ndarray
    rows: tuple[int, int]

    def posed(self, vertices: np.ndarray) -> np.ndarray:
        """The shell (V, 3) for the posed body `vertices`: each vertex moved as the pelvis and its
        thigh moved (blended by its weights; each part's motion is the rigid motion that best carries
        its vertices from the photo's pose to this one)."""
        vertices = np.asarray(vertices, dtype=np.float64)
        out = np.zeros_like(self.vertices)
        for k, (index, rest) in enumerate(zip(self.anchors, self.anchor_rest, strict=True)):
            dst = vertices[index]
            rot = kabsch(rest, dst)
            out += self.weights[:, k : k + 1] * ((self.vertices - rest.mean(0)) @ rot.T + dst.mean(0))
        return out

    def facing(self, posed: np.ndarray, camera: Camera) -> np.ndarray:
        """How squarely `camera` sees each vertex of the posed shell `posed` (V, 3): the cosine
        between its outward direction from its ring's middle and the direction to the camera."""
        rings = posed.reshape(-1, SEGMENTS, 3)
        out = rings - rings.mean(1, keepdims=True)
        view = camera.centre - rings
        cos = (out * view).sum(-1) / np.maximum(
            np.linalg.norm(out, axis=-1) * np.linalg.norm(view, axis=-1), 1e-12
        )
        return cos.ravel()

    def unwrap(self, front: np.ndarray, back: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
        """The shell's own texture, unrolled: an image (H, `width`, 3) whose columns go once round the
        shell and whose rows run from its top ring down to its hem, the front half sampled from
        `front` and the back half from `back` (images of the first photo's size: the photo, and the
        garment without the front's details, as the renderer shows them); and each face corner's
        coordinates in it (F, 3, 2: 0..1, v up; the seam's corners at u = 1, not 0)."""
        rings = self.src_uv.reshape(-1, SEGMENTS, 2).astype(np.float64)  # (N, S, 2)
        n = len(rings)
        ring_y = rings[:, 0, 1]  # (N,) each ring's photo row
        centre = 0.5 * (rings[:, :, 0].max(1) + rings[:, :, 0].min(1))  # (N,) the run's middle
        half = 0.5 * (rings[:, :, 0].max(1) - rings[:, :, 0].min(1))  # (N,) and half its width
        height = max(1, (n - 1) * UNWRAP_ROWS)
        s = (np.arange(height) + 0.5) / height * (n - 1)  # (H,) position down the rings
        theta = 2.0 * np.pi * (np.arange(width) + 0.5) / width  # (W,) round the shell
        ring = np.arange(n)
        col = np.interp(s, ring, centre)[:, None] + np.interp(s, ring, half)[:, None] * np.cos(theta)
        row = np.broadcast_to(np.interp(s, ring, ring_y)[:, None], col.shape)
        maps = col.astype(np.float32), np.ascontiguousarray(row, dtype=np.float32)
        texture = cv2.remap(front, *maps, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        behind = cv2.remap(back, *maps, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        texture[:, np.sin(theta) < 0] = behind[:, np.sin(theta) < 0]
        i, j = np.divmod(self.faces, SEGMENTS)  # (F, 3) each corner's ring and segment
        seam = (j == 0) & (j.max(1, keepdims=True) == SEGMENTS - 1)
        u = np.where(seam, 1.0, j / SEGMENTS)
        v = 1.0 - i / max(n - 1, 1)
        return texture, np.stack([u, v], -1).astype(np.float32)


@dataclass
class _Legs:
    """The legs in the photo: the hip joints' row, the thigh's length (rows) and each knee's column."""

    hip_y: float
    thigh: float
    left_x: float
    right_x: float


def _run(cloth: np.ndarray, blocked: np.ndarray, c: int) -> tuple[int, int]:
    """The first and last index of the run of `cloth` (a row, True at index `c`) that holds `c`,
    going on behind an arm (`blocked`) where the cloth goes on beyond it (a hand hanging in front of
    a skirt), not where the arm is the run's end (an arm beside the waist)."""
    n = len(cloth)

    def reach(step: int) -> int:
        x = c
        while True:
            nxt = x + step
            while 0 <= nxt < n and cloth[nxt]:
                x, nxt = nxt, nxt + step
            beyond = nxt
            while 0 <= beyond < n and blocked[beyond]:
                beyond += step
            if beyond == nxt or not (0 <= beyond < n and cloth[beyond]):
                return x
            x = beyond

    return reach(-1), reach(1)


def _flares(person: np.ndarray, bridge: list[tuple[int, int]], below: int, rows: int) -> bool:
    """Whether the cloth's runs along the bridge are FLARE times as wide (the median row) as the
    person in the `rows` rows from row `below` on, within the bridge's columns (the median row of
    those); False where those rows are not in the photo (a skirt cannot be told from trousers without the legs
    below it)."""
    rows = max(rows, 1)
    if below + rows > person.shape[0]:
        return False
    xl, xr = min(r[0] for r in bridge), max(r[1] for r in bridge)
    legs = float(np.median(person[below : below + rows, xl : xr + 1].sum(1)))
    cloth = float(np.median([r[1] - r[0] + 1 for r in bridge]))
    return cloth >= FLARE * max(legs, 1.0)


def _colour_hem(
    image: np.ndarray, runs: dict[int, tuple[int, int]], start: float, thigh: float, px: float
) -> int | None:
    """For legs standing together, the skirt's hem: the last row, from `start` down, whose cloth (its
    median) keeps the colour of the first MIN_BRIDGE of the thigh (gaps of GAP_PX allowed), when the
    skirt is that long; None when it is shorter (the legs below have another colour: bare, in tights;
    trousers keep theirs down to the shoes, where the skirt's flare test fails)."""
    rows = sorted(y for y in runs if y >= start)
    top = [y for y in rows if y <= start + MIN_BRIDGE * thigh]
    if not top:
        return None
    colour = np.median(np.concatenate([image[y, runs[y][0] : runs[y][1] + 1] for y in top]), 0)
    hem = None
    for y in rows:
        xl, xr = runs[y]
        if np.abs(np.median(image[y, xl : xr + 1], 0) - colour).max() <= SKIRT_COLOUR:
            hem = y
        elif hem is not None and y - hem > GAP_PX * px:
            break
    return hem if hem is not None and hem - start >= MIN_BRIDGE * thigh else None


def find_skirt(
    image: np.ndarray,
    mask: np.ndarray,
    blocked: np.ndarray,
    camera: Camera,
    vertices: np.ndarray,
    vertex_lower: np.ndarray,
    vertex_part: np.ndarray,
    joints: np.ndarray,
) -> Skirt | None:
    """The skirt shell of a photo, or None when the photo shows none. `image` (H, W, 3): the photo,
    `mask` (H, W): the person's matte; `blocked` (H, W) bool: pixels the cloth cannot reach across
    (the photo's arms and hands); `vertices` (V, 3) the posed body, `vertex_lower` (V,) bool: its
    trunk and leg vertices, `vertex_part` (V,) its parts; `joints` (24, 3) the fitted joints, all
    posed as in the photo."""
    h, w = mask.shape
    px = max(h, w) / 512.0
    uv, z = camera.project_depth(np.asarray(joints, dtype=np.float64))
    chains = [(uv[list(leg)], z[list(leg)]) for leg in _LEGS]
    for chain_uv, chain_z in chains:
        if not (np.all(np.diff(chain_uv[:, 1]) > 0) and np.all(chain_z > 0)):
            return None  # a leg not hanging down in the photo (sitting, kicking): no skirt to find
    hip_y = float(np.mean([c[0][0, 1] for c in chains]))
    knee_y = float(np.mean([c[0][1, 1] for c in chains]))
    thigh = knee_y - hip_y
    if thigh < 8 * px:
        return None
    person = mask >= 0.5
    cloth = person & ~blocked
    y0 = max(0, int(np.ceil(hip_y)))
    y1 = min(h - 1, int(np.floor(min(c[0][2, 1] for c in chains))))
    start = hip_y + BRIDGE_FROM * thigh
    runs: dict[int, tuple[int, int]] = {}
    hem, spread = None, []
    for y in range(y0, y1 + 1):
        xs = [float(np.interp(y, cu[:, 1], cu[:, 0])) for cu, _ in chains]
        c = int(round(np.mean(xs)))
        if not (0 <= c < w) or not cloth[y, c]:
            if y >= start and (hem is None or y - hem > GAP_PX * px):
                break  # the legs part: the skirt ended (or there was none)
            continue
        runs[y] = _run(cloth[y], blocked[y], c)
        if y >= start:
            hem = y
            spread.append(abs(xs[0] - xs[1]))
    if hem is None or hem - start < MIN_BRIDGE * thigh:
        return None
    if np.mean(spread) < SPREAD * thigh:
        # The legs together bridge themselves: the skirt ends where the cloth's colour does.
        hem = _colour_hem(image, runs, start, thigh, px)
        if hem is None:
            return None
    bridge = [runs[y] for y in runs if start <= y <= hem]
    if not _flares(person, bridge, hem + round(GAP_PX * px) + 1, round(BELOW_HEM * thigh)):
        return None
    # Up from the hips the shell goes on as long as the cloth keeps the skirt's colour (to its
    # waistband), at most to the middle of the back: the body above it and the shell then join
    # where the body is as wide as the cloth, without a step.
    colour = np.median(
        np.concatenate([image[y, xl : xr + 1] for y, (xl, xr) in runs.items() if start <= y <= hem]), 0
    )
    spine = uv[[_J("spine2"), _J("spine1"), PELVIS]]
    upright = bool(np.all(np.diff(spine[:, 1]) > 0))
    for y in range(y0 - 1, max(0, int(np.ceil(spine[0, 1]))) - 1, -1):
        c = int(round(np.interp(y, spine[:, 1], spine[:, 0]) if upright else uv[PELVIS, 0]))
        if not (0 <= c < w) or not cloth[y, c]:
            break
        xl, xr = _run(cloth[y], blocked[y], c)
        if np.abs(np.median(image[y, xl : xr + 1], 0) - colour).max() > SKIRT_COLOUR:
            break
        runs[y] = (xl, xr)
    rows = sorted(y for y in runs if y <= hem)
    step = max(1, round(RING_PX * px))
    ring_rows = sorted({*range(rows[0], hem, step), hem})
    ring_rows = [y for y in ring_rows if y in runs] or [hem]
    legs = _Legs(hip_y, thigh, left_x=float(chains[0][0][1, 0]), right_x=float(chains[1][0][1, 0]))
    return _shell(
        blocked, runs, ring_rows, hem, camera, vertices, vertex_lower, vertex_part, step, legs, colour
    )


def _shell(
    blocked: np.ndarray,
    runs: dict[int, tuple[int, int]],
    ring_rows: list[int],
    hem: int,
    camera: Camera,
    vertices: np.ndarray,
    vertex_lower: np.ndarray,
    vertex_part: np.ndarray,
    step: int,
    legs: _Legs,
    colour: np.ndarray,
) -> Skirt | None:
    """The shell's rings at the photo rows `ring_rows`, each as wide as the cloth's run in that row
    (`step`: the rows between rings; `colour`: the cloth's median colour)."""
    hip_y, thigh, left_x, right_x = legs.hip_y, legs.thigh, legs.left_x, legs.right_x
    K, R, t = (np.asarray(a, dtype=np.float64) for a in (camera.K, camera.R, camera.t))
    cam = np.asarray(vertices, dtype=np.float64) @ R.T + t  # (V, 3) camera coordinates
    v_px = cam[:, 1] * K[1, 1] / cam[:, 2] + K[1, 2]  # (V,) each vertex's photo row
    theta = 2.0 * np.pi * np.arange(SEGMENTS) / SEGMENTS
    cos, sin = np.cos(theta), np.sin(theta)  # (S,) sin > 0: the half facing the photo's camera
    rings, seen, ring_y = [], [], []
    for y in ring_rows:
        xl, xr = runs[y]
        slab = vertex_lower & (np.abs(v_px - y) <= step)
        if slab.sum() < 3:
            continue
        s = cam[slab]
        d = 0.5 * (s[:, 2].min() + s[:, 2].max())  # the body's middle depth in this row
        half_w, half_d = 0.5 * np.ptp(s[:, 0]), 0.5 * np.ptp(s[:, 2])
        # The cloth's run across the row at that depth (pixel centres +- half a pixel: its outline).
        a = 0.5 * (xr - xl + 1) * d / K[0, 0]
        b = half_d + max(a - half_w, MIN_STANDOFF_M)  # as deep as the body plus the same flare
        # Each point on the ray through its photo pixel: the run spread over the front half as a front
        # view shows it, the back half behind it (so the photo's own view sees exactly the photo).
        u = 0.5 * (xl + xr) + 0.5 * (xr - xl + 1) * cos  # (S,) photo columns
        depth = d - b * sin  # (S,)
        ring = np.stack([(u - K[0, 2]) * depth / K[0, 0], (y - K[1, 2]) * depth / K[1, 1], depth], 1)
        front = np.stack([u, np.full(SEGMENTS, float(y))], 1)  # (S, 2) the photo's pixel
        rings.append(ring)
        seen.append(front)
        ring_y.append(y)
    if len(rings) < 2:
        return None
    ring_cam, src_uv = np.concatenate(rings), np.concatenate(seen)  # (N*S, 3), (N*S, 2)
    world = (ring_cam - t) @ R  # R^T (x - t), row-wise
    n = len(rings)
    i, j = np.meshgrid(np.arange(n - 1), np.arange(SEGMENTS), indexing="ij")
    a0, a1 = i * SEGMENTS + j, i * SEGMENTS + (j + 1) % SEGMENTS
    b0, b1 = a0 + SEGMENTS, a1 + SEGMENTS
    faces = np.concatenate([np.stack([a0, b0, a1], -1), np.stack([a1, b0, b1], -1)], 0).reshape(-1, 3)
    spanned = np.zeros(blocked.shape, dtype=bool)
    for y, (xl, xr) in runs.items():
        if ring_rows[0] <= y <= hem:
            spanned[y, xl : xr + 1] = True
    # Down the shell each side follows its own thigh more (by how far below the hips, in thighs).
    down = np.clip((np.repeat(ring_y, SEGMENTS) - hip_y) / thigh, 0.0, 1.0)
    left_share = 0.5 + 0.5 * np.tile(cos, n) * (1.0 if left_x > right_x else -1.0)
    follow = LEG_FOLLOW * down
    weights = np.stack([1.0 - follow, follow * left_share, follow * (1.0 - left_share)], 1)
    part = np.asarray(vertex_part)
    anchors = tuple(np.flatnonzero(part == q) for q in FOLLOWS)
    return Skirt(
        vertices=world,
        faces=faces.astype(np.int64),
        src_uv=src_uv.astype(np.float32),
        back=np.tile((sin < 0).astype(np.float32), n),
        footprint=spanned & ~blocked,
        under_arm=spanned & blocked,
        anchors=anchors,
        anchor_rest=tuple(np.asarray(vertices, dtype=np.float64)[a] for a in anchors),
        weights=weights,
        colour=np.asarray(colour, dtype=np.float32),
        rows=(ring_rows[0], hem),
    )


def skirt_cloth(image: np.ndarray, mask: np.ndarray, skirt: Skirt) -> np.ndarray:
    """(H, W) bool: the photo's person pixels of the skirt's colour in its rows: never an arm's
    surface or an arm's clothes (a hand holding the hem takes the cloth's colour where the fitted
    hand lies over it, and carries the cloth beside it)."""
    top, hem = skirt.rows
    px = np.asarray(image, np.float32)[..., :3]
    colour = skirt.colour.astype(np.float32)
    cloth = np.abs(px - colour).max(-1) <= SKIRT_COLOUR
    size = float(np.linalg.norm(colour))
    if np.ptp(colour) >= SATURATED * max(float(colour.max()), 1.0):  # its folds in shade or light
        norm = np.linalg.norm(px, axis=-1)
        cos = (px @ colour) / np.maximum(norm * size, 1e-6)
        cloth |= (cos >= SHADE_COS) & (norm >= SHADE[0] * size) & (norm <= SHADE[1] * size)
    cloth &= np.asarray(mask) >= 0.5
    cloth[:top] = False
    cloth[hem + 1 :] = False
    return cloth
