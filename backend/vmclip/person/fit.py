"""Fitting the body model to MediaPipe's keypoints, world landmarks and person mask.

All views of one person share one shape; each view has its own pose and camera. The fit runs in each
camera's frame (OpenCV axes: x right, y down, z forward) with a fixed pinhole camera (focal length from
the image size: the true one is unknown and trades off against distance), then is expressed in the
motion format's world frame: Y up, floor at y=0, the pelvis above the origin, the camera looking
along -Z at it.

Steps per view: (1) the torso's orientation from MediaPipe's 3D world landmarks (Kabsch), limb
directions from the same landmarks (closed-form), the translation from the 2D keypoints (linear least
squares); (2) Adam on 2D keypoints (visibility-weighted), the 3D landmarks as a prior, pose and shape
priors; (3) the same plus the silhouette: projected surface points must fall inside the mask
(distance-transform penalty) and mask points must be near the projected surface (one-sided chamfer);
(4) clothing and hair: per-vertex offsets along the normals, shared by all views, against a soft
silhouette of a dense surface sample (see `_splat_occupancy`) plus the same two terms.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np
import torch

from vmclip.geometry import kabsch, project, silhouette
from vmclip.motion.rotations import axis_angle_to_matrix
from vmclip.motion.skeleton import JOINT_INDEX, NUM_JOINTS, PARENTS
from vmclip.person.body import OFFSETS_KEY, BodyModel, lbs, rotation_between
from vmclip.person.detect import MP, NUM_MP, Detection

J = JOINT_INDEX
FOCAL_SCALE = 1.2  # focal length = FOCAL_SCALE * longest image side (about 45 degrees across it)
CLOTH_MAX = 0.25  # metres: how far clothing/hair offsets may push the surface out (trunk and legs)
# Lower limits per SMPL segment: hands and feet stay nearly bare (gloves, shoes), sleeves stay thin, hair
# stays on the head. Without them a hand hanging beside a skirt, or holding a bag, swells into a ball
# that the renderer would then carry through every pose.
CLOTH_MAX_SEGMENT = {
    "hand": 0.02,
    "wrist": 0.03,
    "foot": 0.03,
    "ankle": 0.04,
    "elbow": 0.06,
    "shoulder": 0.08,
    "collar": 0.12,
    "neck": 0.10,
    "head": 0.12,
}
CLOTH_MAX_FACE = 0.015  # front of the head: hair may frame the face, nothing grows out of it
CLOTH_LR = 0.01  # metres per Adam step of the offsets
INTERP_SIGMA = 0.04  # metres: reach of each offset sample (they lie about 5 cm apart)
CLOTH_SMOOTH = 300.0  # weight of the offsets' smoothness (difference to the mean of their neighbours)
# Silhouette weights while fitting the body (surface outside the mask; mask far from the surface). The
# cover term is kept low: loose clothes are the offsets' job; a body fattened to fill a skirt stays fat
# below its hem and cannot be thinned by offsets, which only push outwards.
SIL_OUT, SIL_COVER = 40.0, 25.0
# Clothing offsets: the same two terms plus a soft silhouette IoU, all on a dense surface sample
# (one vertex per DENSE_CELL voxel) splatted on a grid of GRID_PX pixels over the person's height (full
# resolution for smaller people: a coarser grid blurs the outline), blurred by GRID_SIGMA pixels, with
# occupancy 1 - exp(-GRID_GAIN * density). The gain keeps the occupancy of the body's two layers of
# points (front and back) unsaturated; a saturated one would pull the outline inwards.
CLOTH_OUT, CLOTH_COVER, CLOTH_IOU = 10.0, 80.0, 1.0
DENSE_CELL = 0.02  # metres
GRID_PX, GRID_SIGMA, GRID_GAIN = 256.0, 1.0, 4.0
ITERATIONS = (40, 60, 30)  # Adam steps: pose; pose + shape + silhouette; clothing offsets
# Camera rotation world -> camera: the camera looks along world -Z, image y down = world -Y.
CAM_FROM_WORLD = np.diag([1.0, -1.0, -1.0])

# Anny's age axis is newborn..old over -1/3..1; photos to animate show people from teens up.
_SHAPE_BOUNDS = {"age": (0.45, 1.0)}


@dataclass
class FitResult:
    shape: dict
    pose: np.ndarray  # (24,3,3) local rotations, root in the world frame
    trans: np.ndarray  # (3,) pelvis world position
    K: np.ndarray
    R: np.ndarray
    t: np.ndarray
    fit_error_px: float
    fit_error_pct: float
    iou: float  # silhouette of the fitted surface (clothing offsets included) vs the mask
    iou_body: float  # the same without clothing offsets
    vertices_cam: np.ndarray  # (V,3) posed vertices in the camera frame (for overlays)
    mask: np.ndarray  # (H,W) float32: the person mask fitted, without objects held in a hand
    held_share: float  # share of MediaPipe's mask that was an object held in a hand (0: none)


def _landmark_regressors(body: BodyModel) -> tuple[np.ndarray, dict[int, np.ndarray], np.ndarray]:
    """Where MediaPipe's 33 landmarks sit on the body: joint combinations (33,24), vertex sets, weights.

    Found from the rest T-pose's geometry and skinning (so any body on the skeleton works):
    face points on the head's front, ears at its sides, heel/toe at the foot's back/front ends."""
    rest_v = body.rest_vertices()
    rest_j = body.rest_joints()
    w = body.skin_weights
    lj = np.zeros((NUM_MP, NUM_JOINTS))
    verts: dict[int, np.ndarray] = {}
    weight = np.ones(NUM_MP)
    for side in ("left", "right"):
        for mp_name, joint in (
            ("shoulder", "shoulder"),
            ("elbow", "elbow"),
            ("wrist", "wrist"),
            ("knee", "knee"),
            ("ankle", "ankle"),
        ):
            lj[MP[f"{side}_{mp_name}"], J[f"{side}_{joint}"]] = 1.0
        # MediaPipe's hips sit outside the hip joint centres (on the body's outline).
        lj[MP[f"{side}_hip"], J[f"{side}_hip"]] = 1.35
        lj[MP[f"{side}_hip"], J["pelvis"]] = -0.35
        # Hand points: knuckles around the hand joint; thumb between wrist and hand.
        lj[MP[f"{side}_index"], J[f"{side}_hand"]] = 1.0
        lj[MP[f"{side}_pinky"], J[f"{side}_hand"]] = 1.0
        lj[MP[f"{side}_thumb"], [J[f"{side}_wrist"], J[f"{side}_hand"]]] = 0.5
        for n in ("index", "pinky", "thumb"):
            weight[MP[f"{side}_{n}"]] = 0.2
        foot = np.nonzero(w[:, [J[f"{side}_ankle"], J[f"{side}_foot"]]].sum(1) > 0.5)[0]
        low = foot[rest_v[foot, 1] < rest_j[J[f"{side}_ankle"], 1] - 0.02]
        order = np.argsort(rest_v[low, 2])
        verts[MP[f"{side}_heel"]] = low[order[:12]]
        verts[MP[f"{side}_foot_index"]] = low[order[-12:]]
        weight[[MP[f"{side}_heel"], MP[f"{side}_foot_index"]]] = 0.6

    head = np.nonzero(w[:, J["head"]] > 0.5)[0]
    head = head[rest_v[head, 1] > rest_j[J["neck"], 1] + 0.03]
    hv = rest_v[head]
    width = np.ptp(hv[:, 0])
    front = np.abs(hv[:, 0]) < 0.08 * width
    nose_i = head[front][np.argmax(hv[front, 2])]
    nose = rest_v[nose_i]
    verts[MP["nose"]] = np.array([nose_i])
    weight[MP["nose"]] = 0.5
    for side, sign in (("left", 1.0), ("right", -1.0)):
        lateral = sign * hv[:, 0]
        band = (hv[:, 1] > nose[1] - 0.02) & (hv[:, 1] < nose[1] + 0.04)
        cand = np.nonzero(band)[0]
        verts[MP[f"{side}_ear"]] = head[cand[np.argsort(lateral[cand])[-10:]]]
        eye_band = (
            (hv[:, 1] > nose[1] + 0.015)
            & (hv[:, 1] < nose[1] + 0.05)
            & (lateral > 0.15 * width)
            & (lateral < 0.35 * width)
        )
        cand = np.nonzero(eye_band)[0]
        eye = head[cand[np.argsort(hv[cand, 2])[-8:]]]
        for n in ("eye_inner", "eye", "eye_outer"):
            verts[MP[f"{side}_{n}"]] = eye
        mouth_band = (
            (hv[:, 1] > nose[1] - 0.06)
            & (hv[:, 1] < nose[1] - 0.025)
            & (lateral > 0.08 * width)
            & (lateral < 0.25 * width)
        )
        cand = np.nonzero(mouth_band)[0]
        verts[MP[f"mouth_{side}"]] = head[cand[np.argsort(hv[cand, 2])[-6:]]]
        weight[[MP[f"{side}_eye_inner"], MP[f"{side}_eye"], MP[f"{side}_eye_outer"]]] = 0.2
        weight[[MP[f"mouth_{side}"], MP[f"{side}_ear"]]] = 0.3
    return lj, verts, weight


def _surface_sample(rest_v: np.ndarray, cell: float = 0.03) -> np.ndarray:
    """About one vertex per `cell`-sized voxel: an even spread over the body for silhouette terms."""
    keys = np.floor(rest_v / cell).astype(np.int64)
    _, first = np.unique(keys, axis=0, return_index=True)
    return np.sort(first)


class _Subset:
    """A vertex subset with the landmark regressor restricted to it."""

    def __init__(self, body: BodyModel, verts: dict[int, np.ndarray], extra: np.ndarray) -> None:
        lm_idx = np.unique(np.concatenate(list(verts.values())))
        subset = np.unique(np.concatenate([extra, lm_idx]))
        pos = {int(v): i for i, v in enumerate(subset)}
        lv = np.zeros((NUM_MP, len(subset)))
        for k, idx in verts.items():
            for v in idx:
                lv[k, pos[int(v)]] += 1.0 / len(idx)
        dev = body.device
        self.index = torch.as_tensor(subset, device=dev)
        self.surface = torch.as_tensor([pos[int(v)] for v in extra], dtype=torch.long, device=dev)
        self.lv = torch.as_tensor(lv, dtype=torch.float32, device=dev)
        self.weights = torch.as_tensor(body.skin_weights[subset], dtype=torch.float32, device=dev)


class _Prepared:
    """Per-body tensors the fit needs, computed once per body model."""

    def __init__(self, body: BodyModel) -> None:
        lj, verts, weight = _landmark_regressors(body)
        dev = body.device
        self.keypoints = _Subset(body, verts, np.zeros(0, np.int64))
        self.silhouette = _Subset(body, verts, _surface_sample(body.rest_vertices(), cell=0.05))
        self.lj = torch.as_tensor(lj, dtype=torch.float32, device=dev)
        self.lm_weight = torch.as_tensor(weight, dtype=torch.float32, device=dev)
        self._clothing(body)
        dense = _surface_sample(body.rest_vertices(), cell=DENSE_CELL)
        self.dense_index = torch.as_tensor(dense, device=dev)
        self.dense_interp_index = torch.as_tensor(self.interp_index[dense], device=dev)
        self.dense_interp_weight = torch.as_tensor(self.interp_weight[dense], device=dev)
        self.dense_max = torch.as_tensor(self.vertex_max[dense], device=dev)

    def _clothing(self, body: BodyModel) -> None:
        """Neighbour graph over the surface sample and its interpolation onto every vertex. Offsets are
        smooth across the trunk and the legs (a skirt hangs from the hips), never between the two legs
        (a skirt between them must not glue them together), nor between an arm and the rest (a sleeve
        stays on its arm)."""
        from scipy.spatial import cKDTree

        dev = body.device
        rest = body.rest_vertices()
        ids = self.silhouette.index[self.silhouette.surface].cpu().numpy()
        part = _PART[np.argmax(body.skin_weights, 1)]
        k_nb, k_in = 6, 6
        nb = np.zeros((len(ids), k_nb), np.int64)
        interp = np.zeros((len(rest), k_in), np.int64)
        interp_w = np.zeros((len(rest), k_in), np.float32)
        for p in np.unique(part):
            local = np.nonzero(part[ids] == p)[0]
            source = np.nonzero(np.isin(part[ids], _PART_LINKS[int(p)]))[0]
            tree = cKDTree(rest[ids[source]])
            k = min(k_nb + 1, len(source))
            _, idx = tree.query(rest[ids[local]], k=k)
            idx = source[idx.reshape(len(local), k)]
            for row, own in zip(idx, local, strict=True):  # drop the sample itself, keep k_nb others
                others = row[row != own][:k_nb]
                nb[own, : len(others)] = others
                nb[own, len(others) :] = own
            verts = np.nonzero(part == p)[0]
            kk = min(k_in, len(source))
            dist, idx = tree.query(rest[verts], k=kk)
            dist, idx = dist.reshape(len(verts), kk), idx.reshape(len(verts), kk)
            # Gaussian weights over the sample spacing: a smooth surface with no peak at each sample.
            w = np.exp(-0.5 * (dist / INTERP_SIGMA) ** 2) + 1e-6
            interp[verts, :kk] = source[idx]
            interp_w[verts, :kk] = w / w.sum(1, keepdims=True)
        self.sample_neighbours = torch.as_tensor(nb, device=dev)
        segment = np.argmax(body.skin_weights, 1)
        cap = _CLOTH_MAX_J[segment]
        face = (segment == J["head"]) & (body.rest_normals[:, 2] > 0.5)
        cap[face] = np.minimum(cap[face], CLOTH_MAX_FACE)
        self.sample_max = torch.as_tensor(cap[ids], dtype=torch.float32, device=dev)
        self.vertex_max = cap.astype(np.float32)  # also applied after interpolation onto the vertices
        self.interp_index = interp
        self.interp_weight = interp_w


# Body part of each SMPL-24 segment: 0 trunk and head, 1/2 left/right leg, 3/4 left/right arm.
_PART = np.zeros(NUM_JOINTS, np.int64)
for _name, _part in (
    ("hip", 1),
    ("knee", 1),
    ("ankle", 1),
    ("foot", 1),
    ("shoulder", 3),
    ("elbow", 3),
    ("wrist", 3),
    ("hand", 3),
):
    _PART[J["left_" + _name]] = _part
    _PART[J["right_" + _name]] = _part + 1
# Parts whose offsets are smoothed and interpolated together (see `_Prepared._clothing`).
_PART_LINKS = {0: [0, 1, 2], 1: [0, 1], 2: [0, 2], 3: [3], 4: [4]}

_CLOTH_MAX_J = np.full(NUM_JOINTS, CLOTH_MAX)
for _name, _cap in CLOTH_MAX_SEGMENT.items():
    for _joint in (_name, "left_" + _name, "right_" + _name):
        if _joint in J:
            _CLOTH_MAX_J[J[_joint]] = _cap

_PREPARED: dict[int, _Prepared] = {}


def _prepared(body: BodyModel) -> _Prepared:
    key = id(body)
    if key not in _PREPARED:
        _PREPARED[key] = _Prepared(body)
    return _PREPARED[key]


def _align(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    if np.linalg.norm(src) < 1e-9 or np.linalg.norm(dst) < 1e-9:
        return np.eye(3)
    return rotation_between(src, dst)


# Limb segments set from MediaPipe's world landmarks at start: SMPL joint -> (child joint, MP from, MP to).
_IK = [
    ("left_hip", "left_knee", "left_hip", "left_knee"),
    ("right_hip", "right_knee", "right_hip", "right_knee"),
    ("left_knee", "left_ankle", "left_knee", "left_ankle"),
    ("right_knee", "right_ankle", "right_knee", "right_ankle"),
    ("left_shoulder", "left_elbow", "left_shoulder", "left_elbow"),
    ("right_shoulder", "right_elbow", "right_shoulder", "right_elbow"),
    ("left_elbow", "left_wrist", "left_elbow", "left_wrist"),
    ("right_elbow", "right_wrist", "right_elbow", "right_wrist"),
]


def _initial_pose(rest_j: np.ndarray, world: np.ndarray) -> np.ndarray:
    """Local rotations (24,3,3), root = body->camera rotation, from MediaPipe's 3D landmarks."""
    w = world[:, :3]
    model = rest_j[[J["left_hip"], J["right_hip"], J["left_shoulder"], J["right_shoulder"]]]
    target = w[[MP["left_hip"], MP["right_hip"], MP["left_shoulder"], MP["right_shoulder"]]]
    root = kabsch(model, target)
    local = np.tile(np.eye(3), (NUM_JOINTS, 1, 1))
    local[0] = root
    glob = np.zeros((NUM_JOINTS, 3, 3))
    targets = {J[j]: (J[c], MP[a], MP[b]) for j, c, a, b in _IK}
    for j in range(NUM_JOINTS):
        parent_g = glob[PARENTS[j]] if j else np.eye(3)
        if j in targets:
            child, a, b = targets[j]
            current = parent_g @ (rest_j[child] - rest_j[j])
            delta = _align(current, w[b] - w[a])
            local[j] = parent_g.T @ delta @ parent_g
        glob[j] = parent_g @ local[j]
    return local


def _solve_translation(points: np.ndarray, uv: np.ndarray, conf: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Camera-frame translation t so that points + t project onto uv (weighted linear least squares)."""
    f, cx, cy = K[0, 0], K[0, 2], K[1, 2]
    rows, rhs = [], []
    for p, (u, v), c in zip(points, uv, conf, strict=True):
        if c <= 0.3:
            continue
        s = np.sqrt(c)
        # f (X + tx) = (u - cx)(Z + tz)  ->  f tx - (u - cx) tz = (u - cx) Z - f X
        rows.append(s * np.array([f, 0.0, -(u - cx)]))
        rhs.append(s * ((u - cx) * p[2] - f * p[0]))
        rows.append(s * np.array([0.0, f, -(v - cy)]))
        rhs.append(s * ((v - cy) * p[2] - f * p[1]))
    t, *_ = np.linalg.lstsq(np.array(rows), np.array(rhs), rcond=None)
    if t[2] < 0.5:  # behind or too close to the camera: fall back to a sensible distance
        t[2] = max(t[2], 2.0)
    return t


def rasterize(
    vertices_cam: np.ndarray, faces: np.ndarray, K: np.ndarray, size: tuple[int, int]
) -> np.ndarray:
    """Binary silhouette (H,W) uint8 of a mesh given in camera coordinates."""
    return silhouette(project(vertices_cam, K)[0], faces, size)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    a = a.astype(bool)
    b = b.astype(bool)
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def _grid_sample(field: torch.Tensor, uv: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear lookup of a (H,W) map at pixel coordinates uv (N,2)."""
    h, w = size
    grid = torch.stack([uv[:, 0] / (w - 1) * 2 - 1, uv[:, 1] / (h - 1) * 2 - 1], -1)
    out = torch.nn.functional.grid_sample(
        field[None, None], grid[None, None], align_corners=True, padding_mode="border"
    )
    return out[0, 0, 0]


def _splat_occupancy(
    uv: torch.Tensor, size: tuple[int, int], kernel: torch.Tensor, gain: float
) -> torch.Tensor:
    """Differentiable soft silhouette (H,W) of points uv (N,2) given in grid pixels: bilinear splats,
    blurred by the separable 1D `kernel`, mapped to 0..1 by 1 - exp(-gain * density). Points off the
    grid are dropped. Unlike a point-to-mask chamfer, it rewards covering every mask pixel, so surface
    points are pulled into wide uncovered areas (a skirt between the legs) and not only to the nearest."""
    h, w = size
    inside = (uv[:, 0] >= 0) & (uv[:, 0] <= w - 1.001) & (uv[:, 1] >= 0) & (uv[:, 1] <= h - 1.001)
    x = uv[:, 0].clamp(0, w - 1.001)
    y = uv[:, 1].clamp(0, h - 1.001)
    x0, y0 = x.detach().floor(), y.detach().floor()
    fx, fy = x - x0, y - y0
    x0, y0 = x0.long(), y0.long()
    idx = torch.cat([y0 * w + x0, y0 * w + x0 + 1, (y0 + 1) * w + x0, (y0 + 1) * w + x0 + 1])
    wts = torch.cat([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy]) * inside.float().repeat(4)
    dens = torch.zeros(h * w, device=uv.device, dtype=uv.dtype).index_add(0, idx, wts)
    return 1 - torch.exp(-gain * _blur(dens.view(h, w), kernel))


def _blur(image: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """`image` (H,W) convolved with the separable 1D `kernel` along both axes (zeros beyond the
    border). Shifted slices summed: on a single-channel image with its gradient, about five times
    faster than conv2d's oneDNN path on the CPU."""
    h, w = image.shape
    r = kernel.shape[-1] // 2
    padded = torch.nn.functional.pad(image, (r, r))
    rows = sum(kernel[i] * padded[:, i : i + w] for i in range(2 * r + 1))
    padded = torch.nn.functional.pad(rows, (0, 0, r, r))
    return sum(kernel[i] * padded[i : i + h] for i in range(2 * r + 1))


def _gauss_kernel(sigma: float, device: torch.device) -> torch.Tensor:
    r = max(1, int(np.ceil(2.5 * sigma)))
    g = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    return torch.as_tensor(g / g.sum(), dtype=torch.float32, device=device)


def fit_views(
    body: BodyModel,
    images: list[np.ndarray],
    detections: list[Detection],
    iterations: tuple[int, int, int] = ITERATIONS,
    shape: dict | None = None,
) -> list[FitResult]:
    """Fit one shape and per-view pose + camera to the detections (see the module docstring).

    `shape` fixes the body shape (no shape optimisation) when given."""
    threads = torch.get_num_threads()
    if body.device.type == "cpu":
        # Hundreds of tiny tensor ops per step: extra threads only add hand-over cost (several times
        # slower on a busy 2-core machine).
        torch.set_num_threads(1)
    try:
        with torch.enable_grad():
            return _fit_views(body, images, detections, iterations, shape)
    finally:
        torch.set_num_threads(threads)


@dataclass(frozen=True)
class LossWeights:
    """Weights of the fit's loss terms. Stages 1-2 (pose, shape, silhouette): keypoints (normalised
    by the person's height), MediaPipe's 3D landmarks (metres, hip-centred), the pose prior, the
    knee and elbow limits, the shape prior, and the silhouette (`SIL_OUT`, `SIL_COVER`). Stage 3
    (clothing offsets): the silhouette on a dense surface sample, its soft IoU, the offsets'
    smoothness and their size."""

    keypoints: float = 1.0
    landmarks_3d: float = 0.5
    pose_prior: float = 0.01
    joint_limits: float = 0.05
    shape_prior: float = 0.002
    silhouette_out: float = SIL_OUT
    silhouette_cover: float = SIL_COVER
    cloth_out: float = CLOTH_OUT
    cloth_cover: float = CLOTH_COVER
    cloth_iou: float = CLOTH_IOU
    cloth_smooth: float = CLOTH_SMOOTH
    cloth_size: float = 0.5


@dataclass(frozen=True)
class LearningRates:
    """Adam's step sizes: stage 1 (pose and camera translation from the keypoints), stage 2 (finer,
    with the shape), stage 3 (clothing offsets, metres per step)."""

    pose_1: float = 0.03
    trans_1: float = 0.02
    pose_2: float = 0.015
    trans_2: float = 0.01
    shape: float = 0.05
    cloth: float = CLOTH_LR


# Pose prior weights: the spine, neck and collars move little; limbs are free (POSE_PRIOR_FREE).
POSE_PRIOR_FREE = 0.02
POSE_PRIOR = {
    "spine1": 0.3,
    "spine2": 0.3,
    "spine3": 0.3,
    "neck": 0.2,
    "left_collar": 0.5,
    "right_collar": 0.5,
    "head": 0.1,
    "left_foot": 0.5,
    "right_foot": 0.5,
    "left_hand": 0.5,
    "right_hand": 0.5,
    "left_wrist": 0.1,
    "right_wrist": 0.1,
}
# MediaPipe landmarks that place the body in the closed-form start (the translation's least squares).
_START_LANDMARKS = [
    MP[n]
    for n in (
        "left_shoulder",
        "right_shoulder",
        "left_hip",
        "right_hip",
        "left_knee",
        "right_knee",
        "left_elbow",
        "right_elbow",
        "left_ankle",
        "right_ankle",
    )
]


def _intrinsics(size: tuple[int, int]) -> np.ndarray:
    """The fixed pinhole camera of a photo of `size` (h, w): see FOCAL_SCALE."""
    h, w = size
    f = FOCAL_SCALE * max(h, w)
    return np.array([[f, 0.0, w / 2.0], [0.0, f, h / 2.0], [0.0, 0.0, 1.0]])


@dataclass
class _Targets:
    """What the fit matches, per view (n views): the 2D keypoints `kp` (n, 33, 2) with their weights
    `conf` (n, 33), MediaPipe's hip-centred 3D landmarks `world` (n, 33, 3), the person's height in
    pixels, the cameras, and the person's mask as a distance field (`outside`: pixels from the mask)
    and a sample of its pixels (`cover`)."""

    sizes: list[tuple[int, int]]
    Ks: list[np.ndarray]
    inside: np.ndarray  # (n, 33) bool: the keypoint lies in the photo
    kp: torch.Tensor
    conf: torch.Tensor
    world: torch.Tensor
    heights: torch.Tensor
    focal: torch.Tensor  # (n, 2)
    centre: torch.Tensor  # (n, 2)
    outside: list[torch.Tensor]
    cover: list[torch.Tensor]

    @property
    def n(self) -> int:
        return len(self.sizes)

    def project(self, points: torch.Tensor) -> torch.Tensor:
        """Camera-frame points (n, ..., 3) -> pixels (n, ..., 2) in each view (depth kept >= 0.1 m so
        that a bad step cannot divide by zero)."""
        z = points[..., 2:3].clamp(min=0.1)
        return points[..., :2] / z * self.focal[:, None] + self.centre[:, None]


def _targets(
    images: list[np.ndarray], detections: list[Detection], lm_weight: torch.Tensor, dev: torch.device
) -> _Targets:
    sizes = [im.shape[:2] for im in images]
    Ks = [_intrinsics(size) for size in sizes]
    vis = np.stack([d.keypoints[:, 3] for d in detections])
    inside = np.stack(
        [
            (d.keypoints[:, 0] >= 0)
            & (d.keypoints[:, 0] < s[1])
            & (d.keypoints[:, 1] >= 0)
            & (d.keypoints[:, 1] < s[0])
            for d, s in zip(detections, sizes, strict=True)
        ]
    )
    conf = torch.as_tensor(np.clip(vis, 0, 1) ** 2 * inside, dtype=torch.float32, device=dev)
    outside, cover = [], []
    for det in detections:
        binary = (det.mask > 0.5).astype(np.uint8)
        dist = cv2.distanceTransform(1 - binary, cv2.DIST_L2, 3).astype(np.float32)
        outside.append(torch.as_tensor(dist, device=dev))
        ys, xs = np.nonzero(binary)
        step = max(1, len(xs) // 300)
        pts = (
            np.stack([xs[::step], ys[::step]], 1).astype(np.float32)
            if len(xs)
            else np.zeros((0, 2), np.float32)
        )
        cover.append(torch.as_tensor(pts, device=dev))
    return _Targets(
        sizes=sizes,
        Ks=Ks,
        inside=inside,
        kp=torch.as_tensor(
            np.stack([d.keypoints[:, :2] for d in detections]), dtype=torch.float32, device=dev
        ),
        conf=conf * lm_weight[None],
        world=torch.as_tensor(
            np.stack([d.world[:, :3] for d in detections]), dtype=torch.float32, device=dev
        ),
        heights=torch.as_tensor(
            [max(8.0, d.box[3] - d.box[1]) for d in detections], dtype=torch.float32, device=dev
        ),
        focal=torch.as_tensor([[K[0, 0], K[1, 1]] for K in Ks], dtype=torch.float32, device=dev),
        centre=torch.as_tensor([[K[0, 2], K[1, 2]] for K in Ks], dtype=torch.float32, device=dev),
        outside=outside,
        cover=cover,
    )


def _silhouette_terms(puv: torch.Tensor, t: _Targets) -> tuple[torch.Tensor, torch.Tensor]:
    """The silhouette loss of projected surface points `puv` (n, P, 2), summed over the views: points
    outside the mask (squared distance to it, as a share of the person's height), and the mask's
    points far from every surface point (one-sided chamfer)."""
    l_out = torch.zeros((), device=puv.device)
    l_cov = torch.zeros((), device=puv.device)
    for i in range(t.n):
        d = _grid_sample(t.outside[i], puv[i], t.sizes[i]) / t.heights[i]
        l_out = l_out + (d**2).mean()
        if len(t.cover[i]):
            # The nearest surface point of each mask point found without gradients, then its squared
            # distance with them: the same loss and gradient as cdist's minimum, without the backward
            # pass through the whole (mask points x surface points) distance matrix.
            with torch.no_grad():  # (|p|^2 - 2 c.p: the squared distance less the row's constant |c|^2)
                nearest = ((puv[i] ** 2).sum(1)[None] - 2.0 * t.cover[i] @ puv[i].T).argmin(1)
            dist2 = ((t.cover[i] - puv[i][nearest]) ** 2).sum(1) / t.heights[i] ** 2
            l_cov = l_cov + dist2.mean()
    return l_out, l_cov


class _Shape:
    """The shape being fitted, as unbounded parameters: Anny's phenotype values squashed into their
    bounds (`_SHAPE_BOUNDS`, else 0..1) by a sigmoid; SMPL's betas as they are. Fixed when a shape
    is given."""

    def __init__(self, body: BodyModel, shape: dict | None) -> None:
        dev = body.device
        self.fixed = shape is not None
        start = body.shape_vector(shape if shape is not None else body.default_shape())
        self.lo = self.hi = None
        if body.kind == "anny":
            keys = list(body.shape_keys)
            self.lo = np.array([_SHAPE_BOUNDS.get(k, (0.0, 1.0))[0] for k in keys])
            self.hi = np.array([_SHAPE_BOUNDS.get(k, (0.0, 1.0))[1] for k in keys])
        self.lo_t = torch.as_tensor(self.lo, dtype=torch.float32, device=dev) if self.lo is not None else None
        self.hi_t = torch.as_tensor(self.hi, dtype=torch.float32, device=dev) if self.hi is not None else None
        raw = torch.tensor(self._to_raw(start), dtype=torch.float32, device=dev)[None]
        self.raw = raw.requires_grad_(not self.fixed)
        self.prior = torch.as_tensor(body.shape_vector(body.default_shape()), dtype=torch.float32, device=dev)

    def _to_raw(self, vec: np.ndarray) -> np.ndarray:
        if self.lo is None:
            return vec
        frac = np.clip((vec - self.lo) / (self.hi - self.lo), 0.02, 0.98)
        return np.log(frac / (1 - frac))

    def vector(self) -> torch.Tensor:
        """The shape vector (1, S)."""
        if self.lo_t is None:
            return self.raw
        return self.lo_t + (self.hi_t - self.lo_t) * torch.sigmoid(self.raw)


class _Posed:
    """The fitted parameters of all views: one shape, per view the root orientation and the pose
    (axis-angle, camera frame) and the pelvis's camera-frame position."""

    def __init__(
        self,
        body: BodyModel,
        prep: _Prepared,
        shape: _Shape,
        root: torch.Tensor,
        pose: torch.Tensor,
        trans: torch.Tensor,
    ) -> None:
        self.body, self.prep, self.shape = body, prep, shape
        self.root = root.requires_grad_(True)
        self.pose = pose.requires_grad_(True)
        self.trans = trans.requires_grad_(True)

    def rotations(self) -> torch.Tensor:
        """Local rotations (n, 24, 3, 3)."""
        return axis_angle_to_matrix(torch.cat([self.root[:, None], self.pose], 1))

    def forward(self, sub: _Subset, rest: tuple[torch.Tensor, torch.Tensor] | None = None):
        """Shape vector, posed vertices of `sub`, joints and MediaPipe landmarks (n, 33, 3)."""
        vec = self.shape.vector()
        rest_v, rest_j = rest if rest is not None else self.body.rest_torch(vec, sub.index)
        verts, joints = lbs(rest_v, rest_j, sub.weights, self.rotations(), self.trans)
        lms = self.prep.lj @ joints + sub.lv @ verts  # (n,33,3)
        return vec, verts, joints, lms


def _initial_poses(
    body: BodyModel, prep: _Prepared, shape: _Shape, detections: list[Detection], Ks: list[np.ndarray]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The closed-form start of every view: root and pose (axis-angle) from MediaPipe's 3D landmarks,
    the camera-frame translation from the 2D keypoints."""
    from vmclip.motion.rotations import matrix_to_axis_angle

    dev = body.device
    with torch.no_grad():
        rest_j0 = body.rest_torch(shape.vector())[1][0].cpu().numpy()
    roots, poses, transl = [], [], []
    for det, K in zip(detections, Ks, strict=True):
        local = _initial_pose(rest_j0, det.world)
        with torch.no_grad():
            _, pj = body.pose_torch(
                shape.vector(),
                torch.as_tensor(local[None], dtype=torch.float32, device=dev),
                torch.zeros(1, 3, device=dev),
            )
        pj = pj[0].cpu().numpy()
        lm = prep.lj.cpu().numpy() @ pj
        pts = _START_LANDMARKS
        t = _solve_translation(lm[pts], det.keypoints[pts, :2], det.keypoints[pts, 3], K)
        aa = matrix_to_axis_angle(torch.as_tensor(local, dtype=torch.float32))
        roots.append(aa[0])
        poses.append(aa[1:])
        transl.append(torch.as_tensor(t, dtype=torch.float32))
    return torch.stack(roots).to(dev), torch.stack(poses).to(dev), torch.stack(transl).to(dev)


def _pose_prior_weights(dev: torch.device) -> torch.Tensor:
    prior_w = torch.full((NUM_JOINTS - 1,), POSE_PRIOR_FREE, device=dev)
    for name, value in POSE_PRIOR.items():
        prior_w[J[name] - 1] = value
    return prior_w


def _pose_loss(
    m: _Posed,
    t: _Targets,
    w: LossWeights,
    prior_w: torch.Tensor,
    with_silhouette: bool,
    rest: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Stages 1-2: keypoints, 3D landmarks, pose prior, joint limits, shape prior (and silhouette)."""
    n = t.n
    vec, verts, joints, lms = m.forward(m.prep.silhouette if with_silhouette else m.prep.keypoints, rest)
    uv = t.project(lms)
    r = (uv - t.kp).norm(dim=-1) / t.heights[:, None]
    l_kp = (
        t.conf * torch.nn.functional.smooth_l1_loss(r, torch.zeros_like(r), reduction="none", beta=0.02)
    ).sum() / t.conf.sum().clamp(min=1e-6)
    hips = lms[:, [MP["left_hip"], MP["right_hip"]]].mean(1, keepdim=True)
    rel = lms - hips
    l_3d = (t.conf * ((rel - t.world) ** 2).sum(-1)).sum() / t.conf.sum().clamp(min=1e-6)
    pose = m.pose
    l_pose = (prior_w * (pose**2).sum(-1)).sum() / n
    l_lim = _joint_limits(pose)
    l_shape = ((vec - m.shape.prior) ** 2).sum() if not m.shape.fixed else vec.sum() * 0
    total = (
        w.keypoints * l_kp
        + w.landmarks_3d * l_3d
        + w.pose_prior * l_pose
        + w.joint_limits * l_lim / n
        + w.shape_prior * l_shape
    )
    if with_silhouette:
        l_out, l_cov = _silhouette_terms(t.project(verts[:, m.prep.silhouette.surface]), t)
        total = total + (w.silhouette_out * l_out + w.silhouette_cover * l_cov) / n
    return total


def _joint_limits(pose: torch.Tensor) -> torch.Tensor:
    """Knees bend one way only and do not twist; elbows bend one way and do not twist."""
    knees = pose[:, [J["left_knee"] - 1, J["right_knee"] - 1]]
    l_lim = (torch.relu(-knees[..., 0]) ** 2 + knees[..., 1] ** 2 + knees[..., 2] ** 2).sum()
    el, er = pose[:, J["left_elbow"] - 1], pose[:, J["right_elbow"] - 1]
    return (
        l_lim + (torch.relu(el[:, 1]) ** 2 + torch.relu(-er[:, 1]) ** 2 + el[:, 2] ** 2 + er[:, 2] ** 2).sum()
    )


def _fit_pose(m: _Posed, t: _Targets, stages: tuple[int, int], w: LossWeights, lr: LearningRates) -> None:
    """Stage 1: pose and translation on the keypoints and landmarks (the shape waits: its rest pose is
    computed once); stage 2: the same with the shape and the silhouette, in smaller steps."""
    prior_w = _pose_prior_weights(m.body.device)
    stage1, stage2 = stages
    opt = torch.optim.Adam(
        [{"params": [m.root, m.pose], "lr": lr.pose_1}, {"params": [m.trans], "lr": lr.trans_1}]
    )
    with torch.no_grad():
        rest1 = m.body.rest_torch(m.shape.vector(), m.prep.keypoints.index)
    for _ in range(stage1):
        opt.zero_grad()
        _pose_loss(m, t, w, prior_w, False, rest1).backward()
        opt.step()
    groups = [{"params": [m.root, m.pose], "lr": lr.pose_2}, {"params": [m.trans], "lr": lr.trans_2}]
    if not m.shape.fixed:
        groups.append({"params": [m.shape.raw], "lr": lr.shape})
    opt = torch.optim.Adam(groups)
    for _ in range(stage2):
        opt.zero_grad()
        _pose_loss(m, t, w, prior_w, True).backward()
        opt.step()


@dataclass
class _Dense:
    """The fitted body's dense surface sample (see `_Prepared`), posed, with the rest normals carried
    by each vertex's blended rotation: where the clothing offsets push it."""

    posed: torch.Tensor  # (n, D, 3) camera frame
    normals: torch.Tensor  # (n, D, 3)


def _dense_sample(m: _Posed) -> _Dense:
    body, prep = m.body, m.prep
    dev = body.device
    with torch.no_grad():
        rots = m.rotations()
        # The loss sees a dense surface sample carrying the offsets interpolated exactly as the final
        # mesh gets them: on a sparse one, points can cover the mask while the triangles between them
        # do not.
        dense = prep.dense_index
        full_rest, full_j = body.rest_torch(m.shape.vector())
        weights = body.weights_tensor[dense]
        posed0 = lbs(full_rest[:, dense], full_j, weights, rots, m.trans)[0]
        zero = torch.zeros_like(m.trans)
        normals = torch.as_tensor(body.rest_normals, device=dev)[dense][None]
        moved = lbs(normals, full_j * 0, weights, rots, zero)[0]
        still = lbs(normals * 0, full_j * 0, weights, rots, zero)[0]
    return _Dense(posed=posed0, normals=moved - still)


def _occupancy_grids(t: _Targets, detections: list[Detection]) -> list[tuple]:
    """Per view, the soft-silhouette grid (origin, scale, size, target mask), cropped to the person's
    box plus the widest offset (nothing can be drawn beyond it)."""
    dev = t.kp.device
    grids = []
    for i in range(t.n):
        gs = min(1.0, GRID_PX / float(t.heights[i]))
        box, pad = detections[i].box, 0.2 * float(t.heights[i])
        x0, y0 = max(0, int(box[0] - pad)), max(0, int(box[1] - pad))
        x1, y1 = (
            min(t.sizes[i][1], int(np.ceil(box[2] + pad))),
            min(t.sizes[i][0], int(np.ceil(box[3] + pad))),
        )
        gw, gh = max(4, round((x1 - x0) * gs)), max(4, round((y1 - y0) * gs))
        crop = (detections[i].mask[y0:y1, x0:x1] > 0.5).astype(np.float32)
        target = cv2.resize(crop, (gw, gh), interpolation=cv2.INTER_AREA if gs < 1 else cv2.INTER_LINEAR)
        origin = torch.as_tensor([x0, y0], dtype=torch.float32, device=dev)
        scale = torch.as_tensor([gw / (x1 - x0), gh / (y1 - y0)], dtype=torch.float32, device=dev)
        grids.append((origin, scale, (gh, gw), torch.as_tensor(target, device=dev)))
    return grids


def _fit_clothing(
    m: _Posed, t: _Targets, detections: list[Detection], steps: int, w: LossWeights, lr: LearningRates
) -> torch.Tensor:
    """Stage 3: clothing and hair as offsets (metres) along the rest normals of the surface sample,
    shared by all views, against the silhouette and its soft IoU; kept within 0..the part's limit."""
    prep = m.prep
    dev = m.body.device
    dense = _dense_sample(m)
    # Plain metres, kept within 0..limit after each step: steps of the same size everywhere (a
    # sigmoid's would crawl near its ends and depend on each part's limit).
    hi_off = prep.sample_max
    raw_off = torch.zeros(len(hi_off), device=dev, requires_grad=steps > 0)
    if steps <= 0:
        return raw_off
    grids = _occupancy_grids(t, detections)
    kernel = _gauss_kernel(GRID_SIGMA, dev)
    opt = torch.optim.Adam([raw_off], lr=lr.cloth)
    for _ in range(steps):
        opt.zero_grad()
        off = raw_off
        off_dense = torch.minimum(
            (off[prep.dense_interp_index] * prep.dense_interp_weight).sum(1), prep.dense_max
        )
        puv = t.project(dense.posed + dense.normals * off_dense[None, :, None])
        l_out, l_cov = _silhouette_terms(puv, t)
        l_iou = torch.zeros((), device=dev)
        for i in range(t.n):
            origin, scale, grid_size, target = grids[i]
            occ = _splat_occupancy((puv[i] - origin) * scale, grid_size, kernel, GRID_GAIN)
            inter = (occ * target).sum()
            l_iou = l_iou + 1 - inter / (occ.sum() + target.sum() - inter).clamp(min=1e-6)
        smooth = ((off - off[prep.sample_neighbours].mean(1)) ** 2).mean()
        loss = (
            (w.cloth_out * l_out + w.cloth_cover * l_cov + w.cloth_iou * l_iou) / t.n
            + w.cloth_smooth * smooth
            + w.cloth_size * (off**2).mean()
        )
        loss.backward()
        opt.step()
        with torch.no_grad():
            raw_off.copy_(torch.minimum(raw_off.clamp(min=0.0), hi_off))
    return raw_off


def _fit_views(
    body: BodyModel,
    images: list[np.ndarray],
    detections: list[Detection],
    iterations: tuple[int, int, int],
    shape: dict | None,
    weights: LossWeights | None = None,
    rates: LearningRates | None = None,
) -> list[FitResult]:
    weights = weights or LossWeights()
    rates = rates or LearningRates()
    prep = _prepared(body)
    t = _targets(images, detections, prep.lm_weight, body.device)
    fitted_shape = _Shape(body, shape)
    m = _Posed(body, prep, fitted_shape, *_initial_poses(body, prep, fitted_shape, detections, t.Ks))
    _fit_pose(m, t, iterations[:2], weights, rates)
    found = _held_objects(m, t, images, detections)
    held = [
        float(h.sum()) / max(1.0, float((d.mask > 0.5).sum())) for h, d in zip(found, detections, strict=True)
    ]
    if any(held):  # the clothing offsets and the person's pixels without them
        detections = [replace(d, mask=d.mask * ~h) for d, h in zip(detections, found, strict=True)]
        t = _targets(images, detections, prep.lm_weight, body.device)
    raw_off = _fit_clothing(m, t, detections, iterations[2], weights, rates)
    return _results(m, t, detections, raw_off, iterations[2] > 0, shape, held)


# The joints whose vertices are arm or head: their pixels say nothing of the garment's colours.
_ARMS_AND_HEAD = [JOINT_INDEX["neck"], JOINT_INDEX["head"]] + [
    JOINT_INDEX[f"{side}_{j}"] for side in ("left", "right") for j in ("shoulder", "elbow", "wrist", "hand")
]


def _held_objects(
    m: _Posed, t: _Targets, images: list[np.ndarray], detections: list[Detection]
) -> list[np.ndarray]:
    """Per view, the mask's pixels that are an object held in a hand (`vmclip.person.held`), judged
    against the fitted bare body."""
    from vmclip.person.held import held_objects

    with torch.no_grad():
        rest, joints = m.body.rest_torch(m.shape.vector())
        bare = lbs(rest, joints, m.body.weights_tensor, m.rotations(), m.trans)[0].cpu().numpy()
        dominant = m.body.weights_tensor.argmax(1).cpu().numpy()  # (V,) the joint moving each vertex most
    faces = m.body.faces
    limb_faces = faces[np.isin(dominant[faces], _ARMS_AND_HEAD).all(1)]
    found = []
    for i, (image, det) in enumerate(zip(images, detections, strict=True)):
        verts = bare[i].astype(np.float64)
        body = rasterize(verts, faces, t.Ks[i], t.sizes[i])
        limbs = rasterize(verts, limb_faces, t.Ks[i], t.sizes[i])
        found.append(held_objects(image, det.mask, body, det.keypoints, det.box, limbs=limbs))
    return found


def _results(
    m: _Posed,
    t: _Targets,
    detections: list[Detection],
    raw_off: torch.Tensor,
    dressed: bool,
    shape: dict | None,
    held: list[float],
) -> list[FitResult]:
    """The fit in the world frame (Y up, feet on y = 0, the camera looking along -Z), with its scores."""
    body, prep = m.body, m.prep
    dev = body.device
    with torch.no_grad():
        vec = m.shape.vector()
        rots = m.rotations()
        full_rest, full_j = body.rest_torch(vec)
        off_sample = raw_off.detach().cpu().numpy() * dressed
        off_full = np.minimum((off_sample[prep.interp_index] * prep.interp_weight).sum(1), prep.vertex_max)
        naked_v = lbs(full_rest, full_j, body.weights_tensor, rots, m.trans)[0]
        clothed = full_rest + torch.as_tensor(body.rest_normals * off_full[:, None], device=dev)[None]
        full_v = lbs(clothed, full_j, body.weights_tensor, rots, m.trans)[0]
        _, _, _, lms = m.forward(prep.keypoints)
        uv = t.project(lms).cpu().numpy()
    shape_out = body.shape_dict(vec[0]) if not m.shape.fixed else dict(shape)
    if dressed:
        shape_out[OFFSETS_KEY] = [round(float(x), 4) for x in off_full]
    results = []
    for i, det in enumerate(detections):
        K = t.Ks[i]
        verts_cam = full_v[i].cpu().numpy().astype(np.float64)
        pelvis_cam = m.trans[i].detach().cpu().numpy().astype(np.float64)
        local = rots[i].cpu().numpy().astype(np.float64)
        R = CAM_FROM_WORLD
        local[0] = R.T @ local[0]
        offsets_w = (verts_cam - pelvis_cam) @ R  # R^T (v - p), as row vectors
        pelvis_w = np.array([0.0, -offsets_w[:, 1].min(), 0.0])
        good = (det.keypoints[:, 3] > 0.5) & t.inside[i]
        err = np.linalg.norm(uv[i] - det.keypoints[:, :2], axis=1)
        err_px = float(err[good].mean()) if good.any() else float("nan")
        height = max(1.0, det.box[3] - det.box[1])
        sil = rasterize(verts_cam, body.faces, K, t.sizes[i])
        naked = rasterize(naked_v[i].cpu().numpy().astype(np.float64), body.faces, K, t.sizes[i])
        results.append(
            FitResult(
                shape=shape_out,
                pose=local,
                trans=pelvis_w,
                K=K,
                R=R.copy(),
                t=pelvis_cam - R @ pelvis_w,
                fit_error_px=err_px,
                fit_error_pct=100.0 * err_px / height,
                iou=iou(sil, det.mask > 0.5),
                iou_body=iou(naked, det.mask > 0.5),
                vertices_cam=verts_cam,
                mask=det.mask,
                held_share=held[i],
            )
        )
    return results
