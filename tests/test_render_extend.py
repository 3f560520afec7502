"""The plate beyond the photo for the following camera: quilted from the photo at its resolution (no
blur band), as far as the views reach (no streaks), shaded into the photo's edge; the photo's own
frame (a twice-resampled letterbox) goes with it."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from vmclip.geometry import Camera
from vmclip.person.background import extend_plate, frame_border
from vmclip.render.camera import attach_plate, fixed_path

PHOTOS = (
    Path(os.environ.get("VMCLIP_SHARED", Path(__file__).resolve().parents[2] / "shared")) / "data" / "photos"
)


def bricks(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A brick wall (staggered courses, mortar lines, per-brick colour, grain) over a paved floor in
    the bottom quarter: texture at several scales, like a photo's background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    course = yy // 14
    brick = (xx + 18 * (course % 2)) // 36
    tint = rng.normal(0, 12, (course.max() + 1, brick.max() + 2))[course, brick]
    wall = 150 + tint - 70 * ((yy % 14 < 2) | ((xx + 18 * (course % 2)) % 36 < 2))
    floor = 90 + 25 * np.sin(xx / 5.0) * np.sin(yy / 4.0)
    grey = np.where(yy > 0.75 * h, floor, wall) + rng.normal(0, 6, (h, w))
    img = np.stack([grey * 1.1, grey, grey * 0.85], -1)
    return np.clip(img, 0, 255).astype(np.uint8)


def sharpness(img: np.ndarray, mask: np.ndarray) -> float:
    """Mean gradient magnitude (Sobel, grey levels per pixel) over `mask`."""
    grey = img.astype(np.float32).mean(-1)
    gx, gy = cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1)
    return float(np.hypot(gx, gy)[mask].mean())


def _border(shape: tuple[int, int], reach: tuple[int, int, int, int], inset: int = 4) -> np.ndarray:
    """Bool mask of the grown border of a plate of `shape` grown by `reach`, `inset` pixels clear of it."""
    h, w = shape
    left, top, right, bottom = reach
    mask = np.ones((h + top + bottom, w + left + right), bool)
    mask[top - inset : top + h + inset, left - inset : left + w + inset] = False
    mask[:inset], mask[-inset:], mask[:, :inset], mask[:, -inset:] = False, False, False, False
    return mask


def test_extension_is_as_sharp_as_the_photo():
    """Seen from five times farther back, the old border (in-painted at 384 px, up-scaled ~3x) was a
    smear: about a third of the photo's texture energy. Quilted blocks of the photo keep its grain."""
    plate = bricks(192, 256)
    reach = (200, 150, 200, 150)
    grown = extend_plate(plate, reach, seed=0)
    assert grown.shape == (492, 656, 3)
    assert np.array_equal(grown[150:342, 200:456], plate)
    photo = sharpness(plate, np.ones(plate.shape[:2], bool))
    assert sharpness(grown, _border(plate.shape[:2], reach)) > 0.75 * photo  # old: 0.65
    assert np.array_equal(extend_plate(plate, reach, seed=0), grown)  # seeded: the same border again


@pytest.mark.skipif(not (PHOTOS / "imp_internet_ins8.jpg").is_file(), reason="photos not present")
def test_extension_of_a_real_photo_is_as_sharp_as_the_photo():
    """The brick wall and paving of imp_internet_ins8 (at the video's 512 px), grown as the camera's
    step back of a walk towards it needs."""
    photo = cv2.imread(str(PHOTOS / "imp_internet_ins8.jpg"))[..., ::-1]
    plate = cv2.resize(photo, (512, 512), interpolation=cv2.INTER_LINEAR)
    left, top, right, bottom = frame_border(plate)
    reach = (300, 250, 300, 250)
    grown = extend_plate(plate, reach, seed=0)
    inner = plate[top : 512 - bottom, left : 512 - right]
    own = sharpness(inner, np.ones(inner.shape[:2], bool))
    assert sharpness(grown, _border((512, 512), reach, inset=60)) > 0.8 * own  # old: 0.61


def _zoomed_out(plate: np.ndarray, shrink: float, frames: int = 3):
    """A path whose frames show `plate` shrunk by `shrink` about its centre, panned a little."""
    h, w = plate.shape[:2]
    camera = Camera(
        K=np.array([[w, 0.0, w / 2], [0.0, w, h / 2], [0.0, 0.0, 1.0]]), R=np.eye(3), t=np.zeros(3)
    )
    path = fixed_path(camera, frames, plate)
    path.moved[:] = True
    for i in range(frames):
        k = shrink
        cx, cy = (w - 1) / 2 + 10 * i, (h - 1) / 2
        path.maps[i] = [[k, 0.0, (w - 1) / 2 - k * cx], [0.0, k, (h - 1) / 2 - k * cy]]
    return attach_plate(path, plate, seed=0)


def test_a_far_zoom_out_has_no_streaks():
    """The camera stepped back ten times the photo's distance: the old extension stopped at 3x the
    plate on each side and repeated its edge rows and columns beyond (streaks across the frame's
    corners and sides); now every row and column of the view is textured."""
    plate = bricks(192, 256)
    path = _zoomed_out(plate, 0.1)
    frame = path.background(1, plate).astype(np.float32).mean(-1)
    h, w = frame.shape
    mx, my = int(0.12 * w), int(0.12 * h)
    # A streak is a row (or column) of one value along the frame's margin: spread along it ~0.
    spreads = [frame[:, :mx].std(1), frame[:, -mx:].std(1), frame[:my].std(0), frame[-my:].std(0)]
    assert min(float(s.min()) for s in spreads) > 0.7
    assert min(float(np.median(s)) for s in spreads) > 3.0
    assert len(path.levels) >= 3  # sampled from a coarse level, not a 10x plate at full resolution
    assert max(lv.image.size for lv in path.levels) < 30 * plate.size


def test_extension_carries_the_brightness_across_the_photos_edge():
    """A wall darkening towards the photo's right edge (by 60 grey levels over its last fifth): the
    border beside it starts from that darkness (no step at the edge) and the first blocks fade to the
    wall's own brightness further out."""
    plate = bricks(256, 320).astype(np.float32)
    ramp = np.clip((np.arange(320) - 256) / 64.0, 0.0, 1.0)
    plate = np.clip(plate - 60 * ramp[None, :, None], 0, 255).astype(np.uint8)
    wall = slice(20, 180)  # above the floor
    steps, lit = [], []
    for seed in range(5):  # which blocks are drawn varies with the seed: judge the typical border
        grown = extend_plate(plate, (0, 0, 200, 0), seed=seed).astype(np.float32).mean(-1)
        edge = np.median(grown[wall, 312:320])
        steps.append(abs(np.median(grown[wall, 320:328]) - edge))
        lit.append(np.median(grown[wall, 440:520]) - edge)
    assert np.median(steps) < 12  # unshaded: about 60
    assert np.median(lit) > 20  # further out, the lit wall again (old: +1)


def test_a_floor_line_near_the_edge_is_not_repeated_below_the_photo():
    """The blue-skirt woman: a plain wall, a dark skirting line at 87 % of the height, then a strip
    of floor. Blocks cut from the bottom 35 % carried that line into the floor below the photo as
    repeated dark bands (stop 26); now the pool starts past it and the floor goes on as floor. The
    line itself still continues beside the photo."""
    rng = np.random.default_rng(3)
    h, w = 300, 240
    floor = 205.0 + 15.0 * np.sin(np.arange(w) / 3.0)[None, :]  # grain: a floor, not a letterbox
    grey = np.where(np.arange(h)[:, None] < 262, 225.0, floor) + rng.normal(0, 3, (h, w))
    grey = cv2.GaussianBlur(grey, (0, 0), 1.5)
    grey[258:262] = 150.0  # the skirting line, across the whole width
    plate = np.clip(np.repeat(grey[..., None], 3, -1), 0, 255).astype(np.uint8)
    for seed in range(3):
        grown = extend_plate(plate, (40, 0, 40, 200), seed=seed).astype(np.float32).mean(-1)
        below = grown[h + 2 :, 40 : 40 + w]
        assert (below < 180).mean() < 0.002  # no dark band (before: 8-10 % of the floor below)
        assert np.median(grown[258:262, :40]) < 175  # beside the photo the line goes on


@pytest.mark.shared_data
@pytest.mark.skipif(not (PHOTOS / "ipercore_akun_1.mp4").is_file(), reason="the akun clip is absent")
def test_the_floor_below_a_photo_is_floor_not_the_walls_triangles():
    """ipercore_akun, first frame: a lavender wall with teal triangles standing on a beige floor, the
    two joined softly and about one grey, and the frame's last row black in parts. The floor below
    the photo was quilted with teal triangles cut from the wall (6-9 % of it) and a thin black line;
    now it is floor."""
    av = pytest.importorskip("av")
    from PIL import Image
    from vmclip.person.background import background_plate
    from vmclip.person.detect import detect
    from vmclip.person.images import load_image

    with av.open(str(PHOTOS / "ipercore_akun_1.mp4")) as clip:
        frame = next(clip.decode(video=0)).to_image()
    # The portrait crop round him of test_render_photos, loaded as `analyze` loads it (to 1024 px).
    width = round(frame.height * 1152 / 1728)
    x0 = int(np.clip(920 - width // 2, 0, frame.width - width))
    photo = frame.crop((x0, 0, x0 + width, frame.height)).resize((1152, 1728), Image.LANCZOS)
    image = load_image(np.asarray(photo), name="akun")
    det = detect(image, "akun")
    plate = background_plate(image, det.mask, det.box, seed=0)
    assert frame_border(plate)[3] in (2, 3)  # the broken last row and its resampling
    for seed in range(3):
        grown = extend_plate(plate, (0, 0, 0, 512), seed=seed).astype(np.float32)
        floor = grown[1026:]
        assert ((floor[..., 2] - floor[..., 0]) > 40).mean() < 0.002  # teal
        assert (floor.max(-1) < 60).mean() < 0.0002  # black
        grey = grown[1000:1050].mean(-1)  # no line, however faint, where the photo ended
        dips = (grey[4:-4] < grey[:-8] - 12) & (grey[4:-4] < grey[8:] - 12)
        assert dips.mean(1).max() < 0.05


def test_a_broken_black_last_line_is_the_photos_frame_and_a_black_shoe_is_not():
    """A video frame's last row black in parts (the encoder's border, cropped): quilted over with the
    border, not copied as a thin black line across the floor. Black shoes standing on the bottom edge
    go on inward: photo, kept."""
    content = bricks(200, 240, seed=2)
    broken = content.copy()
    broken[-1, :90] = 0
    broken[-1, 170:] = 4
    assert frame_border(broken) == (0, 0, 0, 2)  # and the line a resize darkens
    # resized to the video's size, the row is grey, not black: still the frame
    assert frame_border(cv2.resize(broken, (120, 100), interpolation=cv2.INTER_AREA))[3] >= 1
    shoes = content.copy()
    shoes[-40:, 60:100] = 15
    shoes[-40:, 140:180] = 15
    assert frame_border(shoes) == (0, 0, 0, 0)
    assert frame_border(content) == (0, 0, 0, 0)


def test_frame_border_takes_every_line_of_a_twice_resized_letterbox():
    """imp_internet_ins8: a white letterbox, resized when published (one line blended) and again to
    the video's size (that line spread over two or three): the old test took one blended line, and
    the others stayed a bright line along the photo's edge, seen across the picture from farther back."""
    content = bricks(400, 301, seed=1)
    boxed = cv2.copyMakeBorder(content, 0, 0, 51, 51, cv2.BORDER_CONSTANT, value=(255, 255, 255))
    once = cv2.resize(boxed, (202, 200), interpolation=cv2.INTER_AREA)  # odd margins: a line blends
    twice = cv2.resize(once, (404, 400), interpolation=cv2.INTER_LINEAR)
    left, top, right, bottom = frame_border(twice)
    assert top == bottom == 0 and 50 <= left <= 56 and 50 <= right <= 56
    grey = np.median(twice.astype(np.float32).mean(-1), axis=0)
    inside = np.median(grey[100:300])
    assert grey[left : left + 3].max() < inside + 15  # the first columns kept are the photo's own
    assert grey[403 - right - 2 : 404 - right].max() < inside + 15


def _plinth_on_a_thin_floor(seed: int = 0) -> np.ndarray:
    """A brick wall; a dark plinth along its right three fifths standing on the last 12 rows of a pale
    paved floor, which shows 90 rows deep on the left (the man in econ_cloth_man_side: a street)."""
    rng = np.random.default_rng(seed)
    h, w = 300, 240
    img = bricks(h, w, seed=seed).astype(np.float32)
    yy, xx = np.mgrid[:h, :w]
    floor = (yy >= h - 90) & (xx < 96) | (yy >= h - 12)
    paving = 190 + 12 * np.sin(xx / 3.0) * np.sin(yy / 2.5) + rng.normal(0, 4, (h, w))
    plinth = (yy >= 150) & (xx >= 96) & ~floor
    img[floor] = paving[floor][:, None]
    img[plinth] = (55 + rng.normal(0, 5, (h, w)))[plinth][:, None]
    return np.clip(img, 0, 255).astype(np.uint8)


def test_the_floor_below_a_plinth_is_floor():
    """Blocks for the border below were as tall as a third of the photo, taller than the strip of
    floor the plinth stands on: the plinth was carried into the floor below (over half of it
    dark). Now the blocks come from the floor the bottom edge shows, smaller where it is shallow."""
    plate = _plinth_on_a_thin_floor()
    for seed in range(3):
        grown = extend_plate(plate, (0, 0, 0, 200), seed=seed).astype(np.float32).mean(-1)
        below = grown[300 + 8 :]
        assert (below < 120).mean() < 0.01


@pytest.mark.parametrize("side", ["bottom", "right", "right, wide"])
def test_the_border_is_not_cut_from_where_the_person_was_painted_out(side: str):
    """The in-painted hole where the person stood is a smear (here at the photo's bottom or right
    edge): the border beyond is cut from the photo's own floor or wall, not from it, so it keeps
    their grain. Where the hole is so wide that every block beside it in its rows takes some of it
    ("wide"), the blocks that take least are preferred."""
    plate = bricks(240, 240, seed=1)
    painted = np.zeros((240, 240), bool)
    if side == "bottom":
        painted[150:, 80:160] = True
        reach, border = (0, 0, 0, 160), np.s_[240 + 24 :, :]
    else:
        painted[60:200, 200 if side == "right" else 185 :] = True
        reach, border = (0, 0, 160, 0), np.s_[:, 240 + 24 :]
    plate[painted] = cv2.GaussianBlur(plate, (0, 0), 8)[painted]

    def smooth(mask: np.ndarray | None) -> float:
        """The share of the border (past where it is shaded into the photo) with no grain."""
        shares = []
        for seed in range(3):
            grown = extend_plate(plate, reach, seed=seed, painted=mask).astype(np.float32)
            grey = np.ascontiguousarray(grown[border].mean(-1))
            mean = cv2.blur(grey, (9, 9))
            spread = np.sqrt(np.maximum(cv2.blur(grey * grey, (9, 9)) - mean * mean, 0.0))
            shares.append(float((spread < 4.0).mean()))
        return float(np.median(shares))

    unmasked = smooth(None)  # the same plate without the mask: the smear is copied
    assert unmasked > 0.1
    assert smooth(painted) < (0.02 if side != "right, wide" else 0.5 * unmasked)  # (wide, before: 0.9)


def test_a_sloping_floor_line_goes_on_sloping_beside_the_photo():
    """A wall's base sloping down to the right (imp_internet_ins8: the wall seen at an angle). Blocks
    beside the photo came from their own rows give or take 6 % of the height, so after a block or two
    the line could slope no further and stepped back up, block after block (a staircase); now each
    column slides about where the last one was cut, and the line goes on down."""
    rng = np.random.default_rng(4)
    h, w, slope = 240, 240, 0.2
    yy, xx = np.mgrid[:h, : w + 0.0]
    wall = 200 + rng.normal(0, 5, (h, w))
    floor = 80 + 20 * np.sin(xx / 3.0) * np.sin(yy / 2.0) + rng.normal(0, 5, (h, w))
    grey = np.where(yy < 100 + slope * xx, wall, floor)
    plate = np.clip(np.repeat(grey[..., None], 3, -1), 0, 255).astype(np.uint8)
    for seed in range(3):
        grown = extend_plate(plate, (0, 0, 240, 0), seed=seed).astype(np.float32).mean(-1)
        # per column, the wall's base: the first row from the top that is floor-dark (blurred down the column)
        dark = cv2.blur(grown, (1, 7)) < 140
        line = np.argmax(dark, axis=0).astype(np.float64)
        beside = line[w:]
        # the line goes on down: 240 px beside the photo, about 48 px lower than at its edge
        assert np.median(beside[-40:]) - line[w - 1] > 25
        assert np.diff(beside).min() > -8  # and never steps back up (the staircase's steps: 15-25 px)


def test_a_skirting_board_beside_the_painted_hole_stays_level():
    """A white wall over a wooden floor, a dark skirting board between (iper_p009_set_b_random), and
    the person painted out in the middle, their hole reaching within a block's width of the edge. No
    block beside the photo has a clear place in its own rows, so the board's rows had to come from
    rows above it (the skirting board stepped up 20 px at the photo's edge); now the hole only
    weighs against a place, and the board goes on level."""
    rng = np.random.default_rng(2)
    h, w, board = 240, 240, 150
    yy, xx = np.mgrid[:h, :w]
    grey = np.where(yy < board, 235.0, 120 + 10 * np.sin(xx / 2.0 + yy / 9.0))
    grey = np.where((yy >= board) & (yy < board + 6), 60.0, grey) + rng.normal(0, 3, (h, w))
    plate = np.clip(np.stack([grey * 1.1, grey, grey * 0.85], -1), 0, 255).astype(np.uint8)
    painted = np.zeros((h, w), bool)
    painted[205:235, 100:230] = True  # (the feet's hole below the board: clear rows are above it)
    for seed in range(3):
        grown = extend_plate(plate, (0, 0, 160, 0), seed=seed, painted=painted).astype(np.float32)
        dark = grown[:, w:].mean(-1) < 100  # (the board is the only dark band)
        rows = np.flatnonzero(dark.mean(1) > 0.5)
        assert len(rows) and abs(int(rows[0]) - board) <= 2 and abs(int(rows[-1]) - (board + 5)) <= 2, rows
