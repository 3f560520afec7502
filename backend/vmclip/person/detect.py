"""2D/3D keypoints and a soft person mask from MediaPipe's legacy Pose solution (offline).

Only `model_complexity=1` is used: its model files ship inside the mediapipe 0.10.21 wheel, whereas
complexities 0 and 2 fetch theirs at run time, which must never happen here.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from vmclip.errors import InputError
from vmclip.motion.skeleton import JOINT_INDEX, NUM_JOINTS

# MediaPipe's 33 pose landmarks, in order.
MP_NAMES: tuple[str, ...] = (
    "nose",
    "left_eye_inner",
    "left_eye",
    "left_eye_outer",
    "right_eye_inner",
    "right_eye",
    "right_eye_outer",
    "left_ear",
    "right_ear",
    "mouth_left",
    "mouth_right",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_pinky",
    "right_pinky",
    "left_index",
    "right_index",
    "left_thumb",
    "right_thumb",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
    "left_heel",
    "right_heel",
    "left_foot_index",
    "right_foot_index",
)
MP = {n: i for i, n in enumerate(MP_NAMES)}
NUM_MP = len(MP_NAMES)


@dataclass
class Detection:
    """What MediaPipe saw in one image (pixel coordinates of that image)."""

    keypoints: np.ndarray  # (33, 4) x_px, y_px, z (MediaPipe's relative depth, px scale), visibility
    world: np.ndarray  # (33, 4) metres, origin between the hips, camera-aligned axes (x right, y down), vis.
    mask: np.ndarray  # (H, W) float32 0..1
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 of the person (mask and keypoints)
    joints2d: np.ndarray  # (24, 3) SMPL-24 x_px, y_px, confidence
    warnings: list[str] = field(default_factory=list)


def mp_to_smpl24(kp: np.ndarray) -> np.ndarray:
    """SMPL-24 joints (24, 3: x, y, confidence) derived from MediaPipe's 33 landmarks (33, >=2 + vis).

    Joints MediaPipe has no landmark for (spine, neck, collars, head, hands, feet) are interpolated
    from their neighbours; their confidence is the weakest of the landmarks used, scaled down."""
    xy = kp[:, :2]
    vis = kp[:, -1]

    def mid(a: str, b: str) -> tuple[np.ndarray, float]:
        return 0.5 * (xy[MP[a]] + xy[MP[b]]), float(min(vis[MP[a]], vis[MP[b]]))

    out = np.zeros((NUM_JOINTS, 3))

    def put(name: str, point: np.ndarray, conf: float) -> None:
        out[JOINT_INDEX[name]] = (point[0], point[1], conf)

    pelvis, c_pelvis = mid("left_hip", "right_hip")
    neck, c_neck = mid("left_shoulder", "right_shoulder")
    ears, c_ears = mid("left_ear", "right_ear")
    put("pelvis", pelvis, c_pelvis)
    for side in ("left", "right"):
        for smpl, mp in (
            ("hip", "hip"),
            ("knee", "knee"),
            ("ankle", "ankle"),
            ("shoulder", "shoulder"),
            ("elbow", "elbow"),
            ("wrist", "wrist"),
        ):
            i = MP[f"{side}_{mp}"]
            put(f"{side}_{smpl}", xy[i], float(vis[i]))
        foot, c_foot = mid(f"{side}_heel", f"{side}_foot_index")
        ankle = xy[MP[f"{side}_ankle"]]
        put(f"{side}_foot", 0.3 * ankle + 0.7 * foot, 0.8 * c_foot)  # ball of the foot
        hand, c_hand = mid(f"{side}_index", f"{side}_pinky")
        put(f"{side}_hand", hand, 0.8 * c_hand)
        shoulder = xy[MP[f"{side}_shoulder"]]
        put(f"{side}_collar", 0.75 * neck + 0.25 * shoulder, 0.6 * c_neck)
    torso = neck - pelvis
    for name, frac in (("spine1", 0.2), ("spine2", 0.4), ("spine3", 0.6)):
        put(name, pelvis + frac * torso, 0.5 * min(c_pelvis, c_neck))
    put("neck", neck + 0.1 * (ears - neck), 0.7 * min(c_neck, c_ears))
    put("head", ears, 0.7 * c_ears)
    return out


_POSE = None
_POSE_LOCK = threading.Lock()
_NATIVE_QUIET = True  # until the graph has run its landmark models once (see `_run`)
# Start-up chatter of MediaPipe's native code (absl/TFLite INFO and WARNING lines); anything else that is
# written to stderr meanwhile (errors, other threads' output) is passed on.
_CHATTER = re.compile(
    r"^(?:[IW]\d{4} [\d:.]+ +\d+ [\w.]+:\d+\]"
    r"|INFO: Created TensorFlow Lite XNNPACK delegate"
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR)"
)


@contextlib.contextmanager
def _native_stderr_filtered() -> Iterator[None]:
    """Send file descriptor 2 to a temporary file while MediaPipe's C++ code starts up, then replay
    what it caught without the known start-up chatter. The C++ side logs through absl, which no
    environment variable quiets before its own initialisation, and it writes to the descriptor, not to
    Python's sys.stderr."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable stderr: nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            try:
                sys.stderr.flush()
            finally:
                os.dup2(saved, 2)
                os.close(saved)
            tmp.seek(0)
            kept = [
                ln for ln in tmp.read().decode("utf-8", "replace").splitlines(True) if not _CHATTER.match(ln)
            ]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def _pose_solution():
    global _POSE
    if _POSE is None:
        with _native_stderr_filtered():
            import mediapipe as mp

            _POSE = mp.solutions.pose.Pose(
                static_image_mode=True,
                model_complexity=1,
                enable_segmentation=True,
                min_detection_confidence=0.5,
            )
    return _POSE


def _run(image: np.ndarray):
    global _NATIVE_QUIET
    with _POSE_LOCK:  # the solution graph is not re-entrant
        if not _NATIVE_QUIET:
            return _pose_solution().process(image)
        # The graph opens its models on first use and logs while doing so: filter until it has found
        # a person once (then the landmark models have run too).
        with _native_stderr_filtered():
            result = _pose_solution().process(image)
        _NATIVE_QUIET = result.pose_landmarks is None
        return result


def _landmarks(result, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    kp = np.array([(lm.x * w, lm.y * h, lm.z * w, lm.visibility) for lm in result.pose_landmarks.landmark])
    world = np.array([(lm.x, lm.y, lm.z, lm.visibility) for lm in result.pose_world_landmarks.landmark])
    return kp, world


def _box(mask: np.ndarray, kp: np.ndarray) -> tuple[float, float, float, float]:
    ys, xs = np.nonzero(mask > 0.5)
    h, w = mask.shape
    good = kp[kp[:, 3] > 0.5, :2]
    pts_x = np.concatenate([xs, np.clip(good[:, 0], 0, w - 1)]) if len(xs) else np.clip(good[:, 0], 0, w - 1)
    pts_y = np.concatenate([ys, np.clip(good[:, 1], 0, h - 1)]) if len(ys) else np.clip(good[:, 1], 0, h - 1)
    if not len(pts_x):
        return 0.0, 0.0, float(w), float(h)
    return float(pts_x.min()), float(pts_y.min()), float(pts_x.max() + 1), float(pts_y.max() + 1)


def _area(box: tuple[float, float, float, float]) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / max(1e-6, min(_area(a), _area(b)))


def detect(image: np.ndarray, name: str = "image") -> Detection:
    """Find the person in an RGB uint8 image. Raises InputError when there is none.

    MediaPipe tracks one person; to notice a second one the found person is greyed out and the image
    searched again. The larger of the two is kept, with a warning."""
    h, w = image.shape[:2]
    result = _run(image)
    if result.pose_landmarks is None:
        raise InputError(f"{name}: no person found")
    kp, world = _landmarks(result, w, h)
    mask = np.asarray(result.segmentation_mask, dtype=np.float32)
    box = _box(mask, kp)
    warnings: list[str] = []

    hidden = image.copy()
    grow = max(4, int(0.04 * max(box[2] - box[0], box[3] - box[1])))
    x0, y0 = max(0, int(box[0]) - grow), max(0, int(box[1]) - grow)
    x1, y1 = min(w, int(box[2]) + grow), min(h, int(box[3]) + grow)
    hidden[y0:y1, x0:x1] = 127
    other = _run(hidden)
    if other.pose_landmarks is not None:
        kp2, world2 = _landmarks(other, w, h)
        mask2 = np.asarray(other.segmentation_mask, dtype=np.float32)
        box2 = _box(mask2, kp2)
        seen = kp2[:, 3] > 0.5
        if seen.sum() >= 8 and _overlap(box, box2) < 0.3 and (mask2 > 0.5).sum() > 0.02 * h * w / 10:
            if _area(box2) > _area(box):
                kp, world, mask, box = kp2, world2, mask2, box2
            warnings.append(f"{name}: several people; using the largest")

    visible = kp[:, 3] > 0.5
    if visible.sum() < 6:
        raise InputError(f"{name}: no person found (too few body landmarks visible)")
    core = [MP[n] for n in ("left_shoulder", "right_shoulder", "left_hip", "right_hip")]
    if not (kp[core, 3] > 0.3).all():
        raise InputError(f"{name}: the person's torso is not visible enough to fit a body")
    inside = (kp[:, 0] >= 0) & (kp[:, 0] < w) & (kp[:, 1] >= 0) & (kp[:, 1] < h)
    feet = [MP[n] for n in ("left_ankle", "right_ankle", "left_heel", "right_heel")]
    if not inside.all() or (kp[feet, 3] < 0.3).any():
        warnings.append(f"{name}: the person is cut off by the frame edge; the hidden parts are guessed")
    return Detection(
        keypoints=kp, world=world, mask=mask, box=box, joints2d=mp_to_smpl24(kp), warnings=warnings
    )
