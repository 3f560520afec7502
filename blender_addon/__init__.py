"""VideoMotionCLIP for Blender: a sidebar panel that turns a prompt into keyframes on an SMPL-24 armature,
bakes the photographed person's video through the backend, and exports FBX/BVH.

Loads as an extension in Blender 4.2+ (blender_manifest.toml) and, through `bl_info`, as a legacy
add-on in Blender 3.4 (Debian's package)."""

bl_info = {
    "name": "VideoMotionCLIP",
    "author": "VideoMotionCLIP contributors",
    "version": (0, 1, 0),
    "blender": (3, 4, 0),
    "location": "3D Viewport > Sidebar > VideoMotionCLIP",
    "description": "Animate a photographed person from a sentence, then bake the video",
    "category": "Animation",
}

from . import operators, props, ui  # noqa: E402 - bl_info first, as Blender's legacy loader expects

_MODULES = (props, operators, ui)


def register() -> None:
    for module in _MODULES:
        module.register()


def unregister() -> None:
    for module in reversed(_MODULES):
        module.unregister()
