"""Hands a photo does not show: in a pocket, behind a held phone or bag, on a basket's handle.

The fitted hand lies where the photo's hand should be, so the depth test says the photo sees it, and
the hand took whatever covered it (the pocket's black, the phone's white, the handle's navy) in every
frame and in the avatar's atlas. A photo shows a hand when most of the fitted hand's pixels have
the person's skin tone, which the face gives (`skin_tone`); where it does not (`unseen_hands`), the
renderer and the atlas treat that hand as unseen: the other hand where a photo showed it, else the
atlas, whose hands no photo showed are the skin tone.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vmclip.motion.skeleton import JOINT_NAMES

# The fitted body's hand parts (SMPL-24 joints: the palm moves with the wrist, the fingers with the
# hand joint), per side.
HAND_PARTS = tuple(tuple(JOINT_NAMES.index(f"{s}_{j}") for j in ("wrist", "hand")) for s in ("left", "right"))
# MediaPipe Pose landmarks of the face: the nose, the eyes, the mouth's corners (left, right).
NOSE, EYES, MOUTH = 0, (2, 5), (9, 10)
# Face landmarks count when MediaPipe gives them at least this visibility.
FACE_VISIBLE = 0.5
# The skin tone is the median over discs of this radius (share of the distance between the eyes) on
# the nose and on each cheek (half way from the eye to the mouth's corner): skin, not the eyes, the
# brows, the lips, a beard or glasses.
CHEEK_RADIUS = 0.2
# ... and its brightness the median of the face's skin of that hue within this many eye distances of
# the nose (the forehead to the chin).
FACE_RADIUS = 1.0
# A pixel is skin of that tone when its colour points the same way (cosine of the RGB vectors: skin
# in shade or light keeps its hue; a blue skirt is at 0.74) and is from this much darker to this much
# brighter (the norm's ratio: a black pocket is at 0.18, with a skin-like hue).
SKIN_COS = 0.95
SKIN_SHADE = (0.3, 1.6)
# A photo shows a hand when at least this share of the fitted hand's pixels on the person is skin (a
# hand seen in the open is 70-90 %: its outline and cuff are not; a hand in a pocket 1 %).
HAND_SKIN = 0.5
# ... and at least this share of the fitted hand's pixels lies on the person (a hand fitted a little
# larger than the photo's: 60-80 %; one fitted half beside the photo's: 24 %; over a held object
# taken out of the person: none).
HAND_ON_PERSON = 0.1
# Hands smaller than this (pixels of the fitted hand) are too few to judge.
MIN_HAND_PX = 12


def skin_tone(views: Sequence[object]) -> np.ndarray | None:
    """The person's skin tone (3,) RGB float32 from the first photo whose face MediaPipe saw
    (`keypoints` (33, 4): x, y in pixels, z, visibility): the median of the face's skin of the hue
    on its nose and cheeks; None when no photo shows the face (or the views carry no keypoints)."""
    for view in views:
        kp = getattr(view, "keypoints", None)
        if kp is None or np.shape(kp) != (33, 4):
            continue
        kp = np.asarray(kp, dtype=np.float64)
        if np.any(kp[[NOSE, *EYES, *MOUTH], 3] < FACE_VISIBLE):
            continue
        r = CHEEK_RADIUS * float(np.linalg.norm(kp[EYES[0], :2] - kp[EYES[1], :2]))
        if r < 1.0:
            continue  # a face of a few pixels
        # (in a window around the face: a large photo's whole pixel grid is hundreds of MB)
        reach = FACE_RADIUS * r / CHEEK_RADIUS
        nose = kp[NOSE, :2]
        h, w = np.shape(view.mask)[:2]
        x0, y0 = (max(0, int(np.floor(c - reach))) for c in nose)
        x1, y1 = min(w, int(np.ceil(nose[0] + reach)) + 1), min(h, int(np.ceil(nose[1] + reach)) + 1)
        if x0 >= x1 or y0 >= y1:
            continue
        image = np.asarray(view.image)[y0:y1, x0:x1, :3]
        person = np.asarray(view.mask)[y0:y1, x0:x1] >= 0.5
        yy, xx = np.mgrid[y0:y1, x0:x1]
        centres = [nose, *(0.5 * (kp[e, :2] + kp[m, :2]) for e, m in zip(EYES, MOUTH, strict=True))]
        disc = np.zeros(person.shape, dtype=bool)
        for cx, cy in centres:
            disc |= (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
        disc &= person
        if disc.sum() < 3:
            continue
        # The lit nose and cheeks give the hue; the whole face (its skin of that hue, in light and
        # shade) gives the brightness a hand has on average, not a highlight's.
        tone = np.median(image[disc].astype(np.float32), 0)
        face = person & ((xx - nose[0]) ** 2 + (yy - nose[1]) ** 2 <= reach**2) & skin(image, tone)
        return np.median(image[face].astype(np.float32), 0) if face.sum() >= disc.sum() else tone
    return None


def skin(image: np.ndarray, tone: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels of `image` (H, W, 3) that are skin of `tone` in shade or light."""
    px = np.asarray(image, dtype=np.float32)[..., :3]
    tone = np.asarray(tone, dtype=np.float32)
    size = max(float(np.linalg.norm(tone)), 1e-6)
    norm = np.linalg.norm(px, axis=-1)
    cos = (px @ tone) / np.maximum(norm * size, 1e-6)
    return (cos >= SKIN_COS) & (norm >= SKIN_SHADE[0] * size) & (norm <= SKIN_SHADE[1] * size)


def unseen_hands(
    image: np.ndarray, mask: np.ndarray, part: np.ndarray, tone: np.ndarray | None
) -> np.ndarray:
    """The body parts (SMPL-24 joints) of the fitted hands the photo does not show as hands: less
    than HAND_ON_PERSON of the hand's pixels (`part`: the body's part map, -1 off the body) are on
    the person (a held object taken out of the person with them), or fewer than HAND_SKIN of those on
    the person are skin of `tone`. None without a tone."""
    out: list[int] = []
    if tone is None:
        return np.zeros(0, dtype=np.int64)
    person = np.asarray(mask) >= 0.5
    is_skin = None
    for parts in HAND_PARTS:
        hand = np.isin(part, parts)
        if hand.sum() < MIN_HAND_PX:
            continue
        on = hand & person
        if on.sum() < HAND_ON_PERSON * hand.sum():
            out += parts
            continue
        if is_skin is None:
            is_skin = skin(image, tone)
        if is_skin[on].mean() < HAND_SKIN:
            out += parts
    return np.asarray(out, dtype=np.int64)
