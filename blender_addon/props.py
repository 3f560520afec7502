"""Add-on preferences (backend address, CURVE keys) and the properties the panel edits."""

from __future__ import annotations

import bpy
from bpy.props import (
    BoolProperty,
    CollectionProperty,
    EnumProperty,
    FloatProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

ADDON_ID = __package__


def preferences(context=None):
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_ID)
    if addon is None:  # should not happen once registered; keep the panel drawable anyway
        raise RuntimeError(f"add-on {ADDON_ID} is not enabled")
    return addon.preferences


def _tag_redraw(_self=None, context=None) -> None:
    for window in getattr(bpy.context.window_manager, "windows", []):
        for area in window.screen.areas:
            if area.type in {"VIEW_3D", "SEQUENCE_EDITOR"}:
                area.tag_redraw()


def _reset_connection(self, context) -> None:
    state = getattr(context.window_manager, "vmclip_state", None)
    if state is not None:
        state.connection = "UNKNOWN"
        state.connection_text = "not checked"


class VMCLIP_Preferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    address: StringProperty(
        name="Backend address",
        default="tcp://127.0.0.1:5555",
        update=_reset_connection,
        description="ZeroMQ address of `vmclip serve` (tcp://HOST:PORT); loopback needs no keys",
    )
    timeout_s: FloatProperty(
        name="Timeout",
        default=10.0,
        min=0.5,
        max=600.0,
        unit="TIME_ABSOLUTE",
        description="Longest silence from the backend before a request is retried (jobs send progress "
        "at least once a second)",
    )
    retries: IntProperty(
        name="Retries",
        default=2,
        min=0,
        max=10,
        description="How often a silent request is sent again before giving up",
    )
    server_public_key: StringProperty(
        name="Server public key",
        default="",
        update=_reset_connection,
        description="CURVE: the server's public key (40-character z85 text, or the path of its .key file). "
        "Needed when the backend is not on this machine",
    )
    client_secret_key_file: StringProperty(
        name="Client key pair",
        default="",
        subtype="FILE_PATH",
        update=_reset_connection,
        description="CURVE: this client's .key_secret file from `vmclip keys` (its public half must be on "
        "the server's allow-list). Empty: a throw-away key pair",
    )

    def draw(self, context):
        layout = self.layout
        layout.prop(self, "address")
        row = layout.row()
        row.prop(self, "timeout_s")
        row.prop(self, "retries")
        box = layout.box()
        box.label(text="Encryption (CURVE), for a backend on another machine", icon="LOCKED")
        box.prop(self, "server_public_key")
        box.prop(self, "client_secret_key_file")


class VMCLIP_Image(bpy.types.PropertyGroup):
    filepath: StringProperty(
        name="Image", subtype="FILE_PATH", description="Photo of the person (PNG or JPEG)"
    )


def _is_armature(_self, obj) -> bool:
    return obj.type == "ARMATURE"


def _is_curve(_self, obj) -> bool:
    return obj.type == "CURVE"


class VMCLIP_BoneMap(bpy.types.PropertyGroup):
    """One row of the rig's mapping table: an SMPL-24 role and the rig bone that plays it."""

    role: StringProperty(name="Role", description="SMPL-24 joint")
    bone: StringProperty(name="Bone", description="The rig's bone for this role (empty: none)")
    unsure: BoolProperty(name="Unsure", description="Found by a structural rule or not at all: check it")


class VMCLIP_Settings(bpy.types.PropertyGroup):
    """Per-scene inputs, saved with the .blend file."""

    images: CollectionProperty(type=VMCLIP_Image, name="Source images")
    image_index: IntProperty(name="Active image", default=0)
    prompt: StringProperty(name="Prompt", default="", description="What the person does, in plain English")
    seconds: FloatProperty(
        name="Seconds",
        default=4.0,
        min=0.5,
        max=30.0,
        step=50,
        precision=1,
        description="Length of the motion",
    )
    seed: IntProperty(name="Seed", default=0, min=0, description="Same prompt and seed, same motion")
    armature: PointerProperty(
        type=bpy.types.Object,
        name="Armature",
        poll=_is_armature,
        description="The rig to animate: any humanoid armature (its bones are mapped to SMPL-24 roles), "
        "or empty to create an SMPL-24 rig on the first Generate",
    )
    bone_map: CollectionProperty(type=VMCLIP_BoneMap, name="Bone map")
    bone_map_index: IntProperty(name="Active role", default=0)
    bone_map_rig: StringProperty(name="Mapped rig", description="The armature the mapping table was made for")
    reduce_keys: BoolProperty(
        name="Sparse keys",
        default=True,
        description="Thin the generated keys to a Bezier set within the tolerances below "
        "(off: one key per frame)",
    )
    plant_feet: BoolProperty(
        name="Plant feet",
        default=True,
        description="Pin each foot where the motion plants it (the backend's contact rules) and put it "
        "on the floor, by turning the rig's thigh and shin (off: the legs take the motion's rotations "
        "unchanged, so the rig's other proportions can make planted feet slide)",
    )
    key_tolerance_deg: FloatProperty(
        name="Rotation tolerance",
        default=0.5,
        min=0.01,
        max=10.0,
        precision=2,
        description="Largest rotation error a thinned key set may have on any bone, degrees",
    )
    key_tolerance_mm: FloatProperty(
        name="Root tolerance",
        default=5.0,
        min=0.1,
        max=100.0,
        precision=1,
        description="Largest error a thinned key set may have on the root's path, millimetres",
    )
    path_curve: PointerProperty(
        type=bpy.types.Object,
        name="Path",
        poll=_is_curve,
        description="Follow Path: a curve object whose shape is the root's path on the ground",
    )
    video_size: EnumProperty(
        name="Video size",
        default="512",
        items=[("256", "256 px", "fast preview"), ("512", "512 px", "default"), ("768", "768 px", "slow")],
        description="Width and height of the baked video",
    )
    video_camera: EnumProperty(
        name="Camera",
        default="follow",
        items=[
            ("follow", "Follow", "pan, zoom out and step back where the person would leave the frame"),
            ("fixed", "Fixed", "the first photo's camera throughout (a long walk is shortened)"),
        ],
        description="The baked video's camera",
    )
    last_video: StringProperty(name="Last video", subtype="FILE_PATH", default="")


class VMCLIP_State(bpy.types.PropertyGroup):
    """Runtime state shown in the panel (lives on the window manager: never saved)."""

    connection: EnumProperty(
        name="Connection",
        default="UNKNOWN",
        items=[
            ("UNKNOWN", "Not checked", ""),
            ("CHECKING", "Checking", ""),
            ("CONNECTED", "Connected", ""),
            ("UNREACHABLE", "Unreachable", ""),
        ],
    )
    connection_text: StringProperty(default="not checked")
    busy: BoolProperty(default=False)
    progress: FloatProperty(default=0.0, min=0.0, max=1.0, subtype="FACTOR")
    status: StringProperty(default="")
    status_is_error: BoolProperty(default=False)


CLASSES = (VMCLIP_Preferences, VMCLIP_Image, VMCLIP_BoneMap, VMCLIP_Settings, VMCLIP_State)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.vmclip = PointerProperty(type=VMCLIP_Settings)
    bpy.types.WindowManager.vmclip_state = PointerProperty(type=VMCLIP_State)


def unregister() -> None:
    del bpy.types.WindowManager.vmclip_state
    del bpy.types.Scene.vmclip
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
