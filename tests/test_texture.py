"""The avatar's texture atlas (issue #14): a synthetic front photo of the Anny body wearing a shirt
with a red tie and a yellow chest print, dark hair on the crown; the atlas's back must carry the
shirt without the tie or print, the back of the head the hair."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from vmclip.geometry import Camera
from vmclip.motion.skeleton import JOINT_NAMES
from vmclip.person.body import load_body_model
from vmclip.person.texture import JOINT_REGION, build_texture
from vmclip.person.uvmap import body_uv, texel_grid

SHIRT = np.array([70, 110, 190.0])
TROUSERS = np.array([60, 55, 50.0])
TIE = np.array([210, 20, 25.0])
PRINT = np.array([240, 220, 30.0])
HAIR = np.array([45, 30, 20.0])
SKIN = np.array([225, 180, 150.0])
SIZE = 512
# The V-neck's apex (rest height, metres: the trunk's front rises to 0.47 at the throat) and its
# half-width at the throat.
V_APEX = 0.36
V_HALF_WIDTH = 0.08
# A collar standing up the neck's sides and back to this height above the neck's lowest point
# (metres), open at the front within COLLAR_OPEN_DEG of the neck's front (about its axis).
COLLAR_M = 0.06
COLLAR_OPEN_DEG = 40.0


def _front_photo(
    body,
    shape,
    hair_from: float = 0.45,
    v_neck: bool = False,
    collar: bool = False,
    hem: float | None = None,
    sleeveless: bool = False,
):
    """The body in its rest pose, seen from the front, painted by rest position; hair above
    `hair_from` of the way from the head's centre to its top. With `v_neck`, a plain shirt (no tie,
    no print) whose front opens in a deep V of skin below the throat; with `collar`, the shirt's
    collar stands up the neck's sides (the neck's front stays skin); `sleeveless`, bare arms. The shirt
    ends in a level hem at rest height `hem` (metres; default: 45% of the body's height up, below the
    crotch)."""

    rest = np.asarray(body.rest_vertices(shape), dtype=np.float64)
    pose = np.repeat(np.eye(3)[None], 24, 0)
    trans = np.array([0.0, 1.0, 0.0])
    verts = np.asarray(body.pose_vertices(shape, pose[None], trans[None]))[0]
    cam, ras = _seen_from_the_front(body, verts)
    p = ras.interpolate(rest)
    part = np.asarray(body.skin_weights).argmax(1)[ras.vertex_of_max_weight()]
    region = JOINT_REGION[part]
    head = rest[part_index(body) == JOINT_NAMES.index("head")]
    hc, top = head.mean(0), head[:, 1].max()
    hem_y = rest[:, 1].min() + 0.45 * np.ptp(rest[:, 1]) if hem is None else hem
    colour = np.where((p[:, 1] > hem_y)[:, None], SHIRT, TROUSERS)
    if v_neck:
        trunk = rest[JOINT_REGION[part_index(body)] == 0]
        zc = np.median(trunk[:, 2])
        # (from V_APEX up, widening to V_HALF_WIDTH at the throat, on the trunk's front half)
        top = trunk[trunk[:, 2] > zc + 0.05, 1].max()
        half = V_HALF_WIDTH * (p[:, 1] - V_APEX) / (top - V_APEX)
        opening = (region == 0) & (p[:, 2] > zc) & (np.abs(p[:, 0]) < half)
        colour = np.where(opening[:, None], SKIN, colour)
    else:
        tie = (region == 0) & (np.abs(p[:, 0]) < 0.035) & (p[:, 1] > 0.0)
        colour = np.where(tie[:, None], TIE, colour)
        chest = (region == 0) & (p[:, 0] > 0.05) & (p[:, 0] < 0.13) & (np.abs(p[:, 1] - 0.3) < 0.05)
        colour = np.where(chest[:, None], PRINT, colour)
    on_head = region == 1
    colour = np.where(on_head[:, None], SKIN, colour)
    if sleeveless:
        colour = np.where(np.isin(region, (2, 3))[:, None], SKIN, colour)
    if collar:
        on_neck = part == JOINT_NAMES.index("neck")
        low, axis = _neck_axis(body, shape)
        around = np.degrees(np.abs(np.arctan2(p[:, 0] - axis[0], p[:, 2] - axis[2])))
        up = on_neck & (p[:, 1] < low + COLLAR_M) & (around > COLLAR_OPEN_DEG)
        colour = np.where(up[:, None], SHIRT, colour)
    hair = on_head & (p[:, 1] > hc[1] + hair_from * (top - hc[1]))
    colour = np.where(hair[:, None], HAIR, colour)
    image = np.zeros((SIZE, SIZE, 3), np.uint8)
    image[ras.mask] = colour.astype(np.uint8)
    mask = ras.mask.astype(np.float32)
    return SimpleNamespace(image=image, mask=mask, camera=cam, pose=pose, trans=trans)


def _seen_from_the_front(body, verts: np.ndarray):
    """The camera 3.2 m in front of the posed body `verts` (SIZE px, looking along -z), and its render."""
    from vmclip.render.raster import get_rasterizer

    centre = np.array([0.0, verts[:, 1].mean(), 3.2])
    R = np.diag([1.0, -1.0, -1.0])
    cam = Camera(
        K=np.array([[1.2 * SIZE, 0, SIZE / 2], [0, 1.2 * SIZE, SIZE / 2], [0, 0, 1.0]]), R=R, t=-R @ centre
    )
    return cam, get_rasterizer().render(verts, body.faces, cam.K, cam.R, cam.t, SIZE, SIZE)


def _neck_axis(body, shape) -> tuple[float, np.ndarray]:
    """The neck's lowest height and a point on its axis (its lowest 6 cm), rest pose."""
    rest = np.asarray(body.rest_vertices(shape), dtype=np.float64)
    neck = rest[part_index(body) == JOINT_NAMES.index("neck")]
    low = neck[:, 1].min()
    return low, np.median(neck[neck[:, 1] < low + 0.06], axis=0)


def part_index(body) -> np.ndarray:
    return np.asarray(body.skin_weights).argmax(1)


@pytest.fixture(scope="module")
def atlas_case():
    pytest.importorskip("moderngl")
    body = load_body_model("anny")
    shape = body.default_shape()
    view = _front_photo(body, shape)
    atlas = build_texture(body, shape, [view], size=512)
    uv_coords, uv_faces = body_uv(body)
    grid = texel_grid(uv_coords, uv_faces, 512)
    rest = np.asarray(body.rest_vertices(shape), dtype=np.float64)
    faces = np.asarray(body.faces)
    pos = np.einsum("nk,nkd->nd", grid.bary.astype(np.float64), rest[faces[grid.tri]])
    part = part_index(body)[faces[grid.tri, grid.bary.argmax(1)]]
    texels = atlas[grid.ys, grid.xs].astype(np.float64)
    return SimpleNamespace(atlas=atlas, pos=pos, part=part, texels=texels, view=view, ys=grid.ys, xs=grid.xs)


def _atlas_of(c, **photo) -> tuple:
    """The default body, its shape and the texels (at `c`'s texel grid) of the atlas made from a
    front photo drawn with `photo` (`_front_photo`'s options)."""
    body = load_body_model("anny")
    shape = body.default_shape()
    atlas = build_texture(body, shape, [_front_photo(body, shape, **photo)], size=512)
    return body, shape, atlas[c.ys, c.xs].astype(np.float64)


def _near(texels: np.ndarray, colour: np.ndarray, tol: float = 60.0) -> np.ndarray:
    return np.linalg.norm(texels - colour, axis=1) < tol


def test_front_features_stay_off_the_back(atlas_case):
    c = atlas_case
    trunk = JOINT_REGION[c.part] == 0
    centre = np.median(c.pos[trunk], axis=0)
    upper = trunk & (c.pos[:, 1] > 0.0)
    front = upper & (c.pos[:, 2] > centre[2] + 0.06) & (np.abs(c.pos[:, 0]) < 0.02)
    back = upper & (c.pos[:, 2] < centre[2] - 0.06)
    # The photo's tie and print are in the atlas's front ...
    assert _near(c.texels[front], TIE).mean() > 0.5
    # ... and never on its back, which is the shirt.
    assert _near(c.texels[back], TIE).mean() < 0.005
    assert _near(c.texels[back], PRINT).mean() < 0.005
    assert _near(c.texels[back], SHIRT, 40).mean() > 0.8


def test_back_of_head_is_hair(atlas_case):
    c = atlas_case
    head = c.part == JOINT_NAMES.index("head")
    hc = np.median(c.pos[head], axis=0)
    size = c.pos[head, 1].max() - hc[1]
    back = head & (c.pos[:, 2] < hc[2] - 0.4 * size) & (c.pos[:, 1] > hc[1] - 0.2 * size)
    assert back.sum() > 100
    assert _near(c.texels[back], HAIR, 40).mean() > 0.8
    assert _near(c.texels[back], SKIN, 60).mean() < 0.05


def _back_of_head(c) -> np.ndarray:
    head = c.part == JOINT_NAMES.index("head")
    hc = np.median(c.pos[head], axis=0)
    size = c.pos[head, 1].max() - hc[1]
    return head & (c.pos[:, 2] < hc[2] - 0.5 * size) & (c.pos[:, 1] > hc[1] - 0.2 * size)


def column_stripes(texels: np.ndarray, pos: np.ndarray, centre: np.ndarray) -> float:
    """How strongly the back of the head is striped down its rows (grey levels): its brightness
    profile around the head (mean per 2.5-mm step of the angle around the vertical; each step
    averages a column of the back's height), less its slow trend (8 steps). Quilted blocks repeated
    from a few pixels' worth of hair gave 4.5 on the iPER pair; strands and curls 0.8-1.8."""
    d = pos - centre
    radius = float(np.median(np.linalg.norm(d, axis=1)))
    arc = np.arctan2(d[:, 0], -d[:, 2]) * radius
    col = np.floor((arc - arc.min()) / 0.0025).astype(np.int64)
    n = np.bincount(col)
    lum = np.bincount(col, weights=texels.mean(1)) / np.maximum(n, 1)
    lum = lum[n >= 5]
    k = np.exp(-0.5 * (np.arange(-12, 13) / 4.0) ** 2)
    trend = np.convolve(np.pad(lum, 12, mode="edge"), k / k.sum(), mode="valid")
    return float((lum - trend).std())


def _with_hair(view, hair_of, seed: int = 0):
    """The front photo with its hair pixels recoloured by `hair_of(n, rng)` (n, 3)."""
    image = view.image.copy()
    on = (np.abs(image.astype(np.float64) - HAIR).max(2) < 2) & (view.mask > 0)
    image[on] = np.clip(hair_of(int(on.sum()), np.random.default_rng(seed)), 0, 255).astype(np.uint8)
    return SimpleNamespace(**{**vars(view), "image": image})


def test_back_of_head_continues_the_hairs_texture(atlas_case):
    """Strands in the seen hair (light and dark streaks) continue on the back of the head: its texels
    vary as the seen hair does, not one flat colour, and stay hair-coloured (no skin)."""
    body = load_body_model("anny")
    shape = body.default_shape()
    view = atlas_case.view
    cols = np.nonzero((np.abs(view.image.astype(np.float64) - HAIR).max(2) < 2) & (view.mask > 0))[1]
    streak = np.where((cols // 2) % 3 == 0, 45.0, -15.0)  # 2-px strands, every 6 px
    strands = _with_hair(view, lambda n, rng: HAIR + streak[:, None] + rng.normal(0, 6, (n, 1)))
    atlas = build_texture(body, shape, [strands], size=512)
    c = atlas_case
    texels = atlas[c.ys, c.xs].astype(np.float64)
    back = _back_of_head(c)
    assert back.sum() > 100
    flat = c.texels[back].mean(1).std()
    textured = texels[back].mean(1).std()
    assert flat < 2.0 and textured > 6.0, (flat, textured)
    assert _near(texels[back], HAIR + 5, 60).mean() > 0.9
    assert _near(texels[back], SKIN, 60).mean() < 0.02


def test_a_bald_crown_stays_one_colour(atlas_case):
    """A crown the colour of the face (a bald head) has no strands to continue: the back of the head
    is the scalp's one colour, whatever small variation the skin has."""
    body = load_body_model("anny")
    shape = body.default_shape()
    bald = _with_hair(atlas_case.view, lambda n, rng: SKIN + rng.normal(0, 6, (n, 1)))
    atlas = build_texture(body, shape, [bald], size=512)
    c = atlas_case
    texels = atlas[c.ys, c.xs].astype(np.float64)
    back = _back_of_head(c)
    assert _near(texels[back], SKIN, 40).mean() > 0.9
    assert texels[back].mean(1).std() < 2.0


def test_texture_saved_beside_the_analysis_and_reloaded(tmp_path, atlas_case):
    from vmclip.person.analysis import PersonAnalysis, ViewFit

    v = atlas_case.view
    view = ViewFit(
        image=v.image,
        mask=v.mask,
        box=(0.0, 0.0, SIZE, SIZE),
        keypoints=np.zeros((33, 4)),
        joints2d=np.zeros((24, 3)),
        camera=v.camera,
        pose=v.pose,
        trans=v.trans,
        background=np.zeros_like(v.image),
        fit_error_px=0.0,
        iou=1.0,
    )
    person = PersonAnalysis(shape={}, body_kind="anny", views=[view], texture=atlas_case.atlas)
    path = person.save_json(tmp_path / "me.json")
    assert (tmp_path / "me.texture.png").exists()
    again = PersonAnalysis.load_json(path)
    assert again.texture is not None and np.array_equal(again.texture, atlas_case.atlas)
    # Made once: a loaded analysis keeps its atlas rather than painting it again.
    assert again.avatar_texture() is again.texture


BLACK = np.array([28, 28, 34.0])
HAIR_FROM = 0.6
SMALL = 0.6
WALL = np.array([240, 242, 245.0])
JACKET = np.array([60, 40, 30.0])
LIGHT_SHIRT = np.array([225, 220, 205.0])


def _small_photo(view, scale: float):
    """The photo shrunk (area-averaged, as a camera of fewer pixels sees it) in front of a white wall:
    the hair's pixels blend with the wall at the outline and with the skin at the hairline."""
    import cv2

    image = np.where(view.mask[..., None] > 0, view.image, WALL).astype(np.float32)
    size = int(round(SIZE * scale))
    # (a lens's and a JPEG's softness spread each pixel over its neighbours)
    small = cv2.GaussianBlur(cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA), (0, 0), 0.8)
    # (a person mask takes in the outline's blended pixels)
    mask = cv2.resize(view.mask.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
    mask = (mask >= 0.25).astype(np.float32)
    K = view.camera.K.copy()
    K[:2] *= size / SIZE
    camera = Camera(K=K, R=view.camera.R, t=view.camera.t)
    small = np.clip(np.rint(small), 0, 255).astype(np.uint8)
    return SimpleNamespace(**{**vars(view), "image": small, "mask": mask, "camera": camera})


def test_black_hair_on_a_small_photo_is_black_and_unstriped(atlas_case):
    """A 300-px-like photo (the head about 14 px wide) of black hair against a white wall: the back of
    the head is the hair's colour, not a blend with the wall or the skin, and no regular stripes."""
    body = load_body_model("anny")
    shape = body.default_shape()
    # (short hair: a thin band of it above the forehead)
    short = _front_photo(body, shape, hair_from=HAIR_FROM)
    black = _with_hair(short, lambda n, rng: BLACK + rng.normal(0, 5, (n, 1)))
    atlas = build_texture(body, shape, [_small_photo(black, SMALL)], size=512)
    c = atlas_case
    texels = atlas[c.ys, c.xs].astype(np.float64)
    back = _back_of_head(c)
    head = c.part == JOINT_NAMES.index("head")
    median = np.median(texels[back], axis=0)
    assert np.abs(median - BLACK).max() < 10, median
    assert _near(texels[back], SKIN, 60).mean() < 0.02
    stripes = column_stripes(texels[back], c.pos[back], np.median(c.pos[head], axis=0))
    assert stripes < 2.5, stripes


def test_an_open_jackets_back_is_the_jacket(atlas_case):
    """An open jacket over a light shirt that is most of the chest's width at the front: the back is
    the jacket (the colour at the flanks), not bands of the shirt."""
    body = load_body_model("anny")
    shape = body.default_shape()
    view = atlas_case.view
    image = view.image.copy()
    shirt = (np.abs(image.astype(np.float64) - SHIRT).max(2) < 2) & (view.mask > 0)
    cols = np.nonzero(shirt.any(0))[0]
    rows = np.nonzero(shirt.any(1))[0]
    trunk = (np.abs(image.astype(np.float64) - TIE).max(2) < 2) | (
        np.abs(image.astype(np.float64) - PRINT).max(2) < 2
    )
    trunk |= shirt
    image[trunk] = JACKET.astype(np.uint8)
    # The shirt between the lapels: the middle 74% of the trunk's width, down to its waist.
    tc = np.nonzero(trunk[(rows.min() + rows.max()) // 2])[0]
    lo, hi = np.percentile(tc, [13, 87]) if len(tc) else (cols.min(), cols.max())
    opening = trunk.copy()
    opening[:, : int(lo)] = False
    opening[:, int(hi) + 1 :] = False
    image[opening] = LIGHT_SHIRT.astype(np.uint8)
    jacket = SimpleNamespace(**{**vars(view), "image": image})
    atlas = build_texture(body, shape, [jacket], size=512)
    c = atlas_case
    texels = atlas[c.ys, c.xs].astype(np.float64)
    torso = JOINT_REGION[c.part] == 0
    centre = np.median(c.pos[torso], axis=0)
    back = torso & (c.pos[:, 2] < centre[2] - 0.06) & (c.pos[:, 1] > 0.0)
    assert back.sum() > 500
    assert _near(texels[back], LIGHT_SHIRT, 60).mean() < 0.02
    assert _near(texels[back], JACKET, 40).mean() > 0.9


def test_the_iper_pairs_back_of_head_is_dark_unstriped_hair(photos_dir):
    """The 300-px iPER pair (a head about 15 px wide, short black hair against a white wall): the back
    of the head was a mid-grey cap with regular vertical stripes (4.5 levels); it is dark hair now."""
    from vmclip.person.analysis import analyze

    pair = [photos_dir / "iper_p009_set_a_apose.jpg", photos_dir / "iper_p009_set_b_random.jpg"]
    if not all(p.exists() for p in pair):
        pytest.skip("the iPER pair is absent")
    person = analyze(pair, background=False, seed=0)
    body = load_body_model("anny")
    uv_coords, uv_faces = body_uv(body)
    grid = texel_grid(uv_coords, uv_faces, person.texture.shape[0])
    rest = np.asarray(body.rest_vertices(person.shape), dtype=np.float64)
    faces = np.asarray(body.faces)
    pos = np.einsum("nk,nkd->nd", grid.bary.astype(np.float64), rest[faces[grid.tri]])
    part = part_index(body)[faces[grid.tri, grid.bary.argmax(1)]]
    texels = person.texture[grid.ys, grid.xs].astype(np.float64)
    c = SimpleNamespace(pos=pos, part=part)
    back = _back_of_head(c)
    head = part == JOINT_NAMES.index("head")
    assert np.median(texels[back].mean(1)) < 65  # (before: 74; the wall is 240, his skin 180)
    assert column_stripes(texels[back], pos[back], np.median(pos[head], axis=0)) < 2.5


def test_a_v_necks_back_is_the_shirt_up_to_the_collar(atlas_case):
    """A shirt open at the front in a deep V of skin: its back, up to the top of the trunk behind the
    neck (where the collar sits), is the shirt, never the front's open neckline."""
    _, _, texels = _atlas_of(atlas_case, v_neck=True)
    c = atlas_case
    trunk = JOINT_REGION[c.part] == 0
    zc = np.median(c.pos[trunk, 2])
    # The back of the trunk at the V's heights and above, to the collar.
    back = trunk & (c.pos[:, 2] < zc - 0.03) & (c.pos[:, 1] > V_APEX)
    assert back.sum() > 300
    assert _near(texels[back], SKIN, 60).mean() < 0.02
    assert _near(texels[back], SHIRT, 40).mean() > 0.95
    # The front keeps the V the photo showed.
    front = trunk & (c.pos[:, 2] > zc + 0.05) & (np.abs(c.pos[:, 0]) < 0.02) & (c.pos[:, 1] > V_APEX + 0.03)
    assert _near(texels[front], SKIN, 40).mean() > 0.8


def _shirt_edge_behind_the_neck(c, texels: np.ndarray) -> np.ndarray:
    """Per 1-cm column across the back of the neck (rest pose), the height of the highest shirt
    texel (metres)."""
    neck_or_trunk = JOINT_REGION[c.part] == 0
    neck_or_trunk |= c.part == JOINT_NAMES.index("neck")
    neck = c.pos[c.part == JOINT_NAMES.index("neck")]
    zc = np.median(neck[:, 2])
    behind = neck_or_trunk & (c.pos[:, 2] < zc - 0.02) & (np.abs(c.pos[:, 0]) < 0.04)
    shirt = behind & _near(texels, SHIRT, 40)
    cols = np.floor(c.pos[:, 0] / 0.01).astype(int)
    return np.array([c.pos[shirt & (cols == k), 1].max() for k in range(-4, 4)])


def test_the_shirt_behind_the_neck_ends_in_a_level_line(atlas_case):
    """Behind the neck the shirt (the neck itself skin in the photo) ends in one level line, not in
    the body model's jagged trunk/neck boundary."""
    edge = _shirt_edge_behind_the_neck(atlas_case, atlas_case.texels)
    print("shirt edge behind the neck (m):", np.round(edge, 4))
    assert np.ptp(edge) < 0.004, edge


def test_a_collar_goes_round_the_back_of_the_neck(atlas_case):
    """A collar standing up the sides of the neck, open at the front (skin there): the back of the
    neck takes the collar up to the height the sides show it, not the front's skin (before: the
    back of the neck was skin above the trunk's level line); above the collar it stays skin."""
    body, shape, texels = _atlas_of(atlas_case, collar=True)
    c = atlas_case
    low, axis = _neck_axis(body, shape)
    neck = c.part == JOINT_NAMES.index("neck")
    back = neck & (c.pos[:, 2] < axis[2] - 0.02) & (np.abs(c.pos[:, 0] - axis[0]) < 0.04)
    height = c.pos[:, 1] - low
    collar = back & (height > 0.04) & (height < COLLAR_M - 0.005)
    above = back & (height > COLLAR_M + 0.015) & (height < COLLAR_M + 0.035)
    assert collar.sum() > 60 and above.sum() > 60, (collar.sum(), above.sum())
    print("collar behind the neck: shirt", _near(texels[collar], SHIRT, 40).mean())
    assert _near(texels[collar], SHIRT, 40).mean() > 0.9
    # (above it the back of the neck is skin, blending into the hair further up)
    assert _near(texels[above], SHIRT, 40).mean() < 0.02
    assert _near(texels[above], SKIN, 60).mean() > 0.75
    # The front of the neck, which the photo saw, keeps its skin.
    front = neck & (c.pos[:, 2] > axis[2]) & (np.abs(c.pos[:, 0] - axis[0]) < 0.015) & (height > 0.04)
    front &= height < COLLAR_M
    assert _near(texels[front], SKIN, 40).mean() > 0.8


# A jacket's level hem across the hips (rest height, metres): between the trunk's lowest point on the
# front at the hips' sides (about 0.0) and on the back (-0.04 to -0.13): the trunk/leg boundary of the
# body model's parts, jagged vertex by vertex, crosses it on the back.
HIP_HEM = -0.05


def hem_heights(c, texels: np.ndarray, hem: float) -> tuple[np.ndarray, np.ndarray]:
    """Per 1-cm column across the back of the hips (rest pose; those reaching 3 cm either side of
    the hem), the height (metres) of the lowest
    shirt texel and of the highest trousers texel within 12 cm of the hem: a level hem has both at
    the hem in every column, a saw-toothed one spreads them by its teeth's height."""
    trunk = JOINT_REGION[c.part] == 0
    zc = np.median(c.pos[trunk, 2])
    legs = (JOINT_REGION[c.part] == 4) | (JOINT_REGION[c.part] == 5)
    near = (trunk | legs) & (c.pos[:, 2] < zc - 0.03) & (np.abs(c.pos[:, 1] - hem) < 0.12)
    shirt = near & _near(texels, SHIRT, 40)
    trousers = near & _near(texels, TROUSERS, 40)
    cols = np.floor(c.pos[:, 0] / 0.01).astype(int)
    # (a column all shirt has its lowest shirt texel 12 cm below the hem; all trousers, the reverse)
    y = c.pos[:, 1]
    above, below = near & (y > hem + 0.03), near & (y < hem - 0.03)
    ks = [k for k in range(-30, 30) if min((above & (cols == k)).sum(), (below & (cols == k)).sum()) >= 10]
    low = np.array([c.pos[shirt & (cols == k), 1].min(initial=hem + 0.12) for k in ks])
    high = np.array([c.pos[trousers & (cols == k), 1].max(initial=hem - 0.12) for k in ks])
    return low, high


def test_the_back_of_a_level_hem_is_level(atlas_case):
    """A shirt over trousers whose front ends in a level hem across the hips: on the back the hem is
    level too, not the saw-toothed boundary between the body model's trunk and leg parts (before,
    the trunk's back took the trunk's front only, and below the front's trunk, on the front of the
    thighs, its nearest trunk cell: the shirt hung 9 cm below the hem in teeth)."""
    _, _, texels = _atlas_of(atlas_case, hem=HIP_HEM)
    c = atlas_case
    low, high = hem_heights(c, texels, HIP_HEM)
    print("lowest shirt (m):", np.round(low, 3), "highest trousers (m):", np.round(high, 3))
    # (a texel at 512 px is about 4 mm on the back of the hips)
    assert np.abs(low - HIP_HEM).max() < 0.012, low
    assert np.abs(high - HIP_HEM).max() < 0.012, high
    assert np.ptp(low) < 0.02 and np.ptp(high) < 0.02, (np.ptp(low), np.ptp(high))


def test_a_real_arm_wider_than_the_fitted_one_leaves_no_skin_on_the_trunk():
    """Arms hanging beside the trunk, the photo's arms (bare skin) 6 px wider than the fitted ones
    (econ_cloth_woman_blue_skirt: the fitted arm a little behind the real one): the trunk's sides
    beside them took the arm's skin, a strip the fill then spread round her back when she turned.
    The photo's own joints say where its arms are; pixels of the arm's colour joined to its axis are
    the arm, whatever the fitted depth says."""
    import cv2
    from scipy.spatial.transform import Rotation
    from vmclip.geometry import project

    pytest.importorskip("moderngl")
    body = load_body_model("anny")
    shape = body.default_shape()
    aa = np.zeros((24, 3))
    aa[JOINT_NAMES.index("left_shoulder"), 2], aa[JOINT_NAMES.index("right_shoulder"), 2] = -1.2, 1.2
    pose = Rotation.from_rotvec(aa).as_matrix()
    trans = np.array([0.0, 1.0, 0.0])
    verts = np.asarray(body.pose_vertices(shape, pose[None], trans[None]))[0]
    joints = np.asarray(body.pose_joints(shape, pose[None], trans[None]))[0]
    cam, ras = _seen_from_the_front(body, verts)
    region = np.full((SIZE, SIZE), -1)
    region[ras.mask] = JOINT_REGION[part_index(body)[ras.vertex_of_max_weight()]]
    palette = {0: SHIRT, 1: HAIR, 2: SKIN, 3: SKIN, 4: TROUSERS, 5: TROUSERS}
    image = np.zeros((SIZE, SIZE, 3), np.uint8)
    for r, colour in palette.items():
        image[region == r] = colour.astype(np.uint8)
    arms = np.isin(region, (2, 3)).astype(np.uint8)
    wider = cv2.dilate(arms, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (13, 13))).astype(bool)
    image[wider & (region == 0)] = SKIN.astype(np.uint8)
    uv, _ = project(joints, cam.K, cam.R, cam.t)
    view = SimpleNamespace(
        image=image, mask=ras.mask.astype(np.float32), camera=cam, pose=pose, trans=trans,
        joints2d=np.concatenate([uv, np.ones((24, 1))], 1),
    )  # fmt: skip
    assert (wider & (region == 0)).sum() > 300  # (the skin painted over the trunk's sides)
    atlas = build_texture(body, shape, [view], size=512)
    uv_coords, uv_faces = body_uv(body)
    grid = texel_grid(uv_coords, uv_faces, 512)
    faces = np.asarray(body.faces)
    rest = np.asarray(body.rest_vertices(shape), dtype=np.float64)
    height = np.einsum("nk,nkd->nd", grid.bary.astype(np.float64), rest[faces[grid.tri]])[:, 1]
    # (the trunk below its shoulders: above, the bare shoulder caps are the arms' skin in this photo)
    shoulder = np.asarray(body.pose_joints(shape, np.eye(3)[None].repeat(24, 0)[None], np.zeros((1, 3))))[0]
    below = height < shoulder[JOINT_NAMES.index("left_shoulder"), 1] - 0.12
    trunk = (JOINT_REGION[part_index(body)[faces[grid.tri, grid.bary.argmax(1)]]] == 0) & below
    texels = atlas[grid.ys, grid.xs].astype(np.float64)
    assert _near(texels[trunk & (height > 0.0)], SKIN, 40).mean() < 0.002  # (before: 0.05 in 0.3-0.35 m)
    assert _near(texels[trunk & (height > 0.0)], SHIRT, 40).mean() > 0.95


def test_a_sleeveless_tops_back_keeps_bare_arms_and_the_shirt(atlas_case):
    """A sleeveless shirt: the back of the upper arms, from 3 cm beyond the shoulder joint (the
    armhole's seam) out, is skin, never the shirt, and the back of the trunk beside the armholes is
    the shirt, never skin. (At the seam itself the shirt may reach the arm's first texels.)"""
    body, shape, texels = _atlas_of(atlas_case, sleeveless=True)
    c = atlas_case
    shoulder_x = abs(float(np.asarray(body.rest_joints(shape))[JOINT_NAMES.index("left_shoulder"), 0]))
    upper = np.isin(c.part, [JOINT_NAMES.index(f"{s}_shoulder") for s in ("left", "right")])
    behind = upper & (c.pos[:, 2] < np.median(c.pos[upper, 2]) - 0.01)
    arm = behind & (np.abs(c.pos[:, 0]) > shoulder_x + 0.03)
    assert arm.sum() > 200
    assert _near(texels[arm], SKIN, 50).mean() > 0.95
    assert _near(texels[arm], SHIRT, 60).mean() == 0.0
    trunk = JOINT_REGION[c.part] == 0
    zc = np.median(c.pos[trunk, 2])
    high = np.percentile(c.pos[trunk, 1], 85)  # the armholes' height, below the shoulders' top
    beside = trunk & (c.pos[:, 2] < zc - 0.03) & (np.abs(c.pos[:, 0]) > 0.1)
    beside &= np.abs(c.pos[:, 1] - high) < 0.05
    assert beside.sum() > 100
    assert _near(texels[beside], SHIRT, 40).mean() > 0.9
    assert _near(texels[beside], SKIN, 60).mean() < 0.02
