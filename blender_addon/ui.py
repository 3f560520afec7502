"""The "VideoMotionCLIP" tab in the 3D viewport's sidebar."""

from __future__ import annotations

import os

import bpy

from . import backend, compat
from .props import preferences

_CONNECTION_ICONS = {
    "UNKNOWN": "QUESTION",
    "CHECKING": "SORTTIME",
    "CONNECTED": "CHECKMARK",
    "UNREACHABLE": "ERROR",
}


class VMCLIP_UL_images(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index=0):
        path = bpy.path.abspath(item.filepath)
        exists = os.path.isfile(path)
        layout.label(text=os.path.basename(path) or "(empty)", icon="IMAGE_DATA" if exists else "ERROR")


class VMCLIP_UL_bone_map(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index=0):
        arm = context.scene.vmclip.armature
        row = layout.row(align=True)
        row.label(text=item.role, icon="ERROR" if item.unsure else "BONE_DATA")
        if arm is not None and arm.type == "ARMATURE":
            row.prop_search(item, "bone", arm.data, "bones", text="")
        else:
            row.prop(item, "bone", text="")


def _draw_rig(layout, context, settings) -> None:
    """The rig's mapping table (for an armature that is not SMPL-24) and the key settings."""
    arm = settings.armature
    if (
        arm is not None
        and arm.type == "ARMATURE"
        and not all(n in arm.data.bones for n in ("pelvis", "left_hip"))
    ):
        box = layout.box()
        row = box.row(align=True)
        row.label(text="Bone map", icon="GROUP_BONE")
        row.operator("vmclip.map_rig", text="Map Bones")
        row.operator("vmclip.load_rig_map", text="", icon="PRESET")
        row.operator("vmclip.save_rig_map", text="", icon="ADD")
        if settings.bone_map_rig == arm.name and len(settings.bone_map):
            box.template_list(
                "VMCLIP_UL_bone_map", "", settings, "bone_map", settings, "bone_map_index", rows=4
            )
        else:
            box.label(text="Automatic (press Map Bones to check or fix)", icon="INFO")
    box = layout.box()
    row = box.row()
    row.prop(settings, "reduce_keys")
    row.prop(settings, "plant_feet")
    sub = box.row(align=True)
    sub.active = settings.reduce_keys
    sub.prop(settings, "key_tolerance_deg", text="Degrees")
    sub.prop(settings, "key_tolerance_mm", text="Root mm")


class VMCLIP_PT_main(bpy.types.Panel):
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "VideoMotionCLIP"
    bl_label = "VideoMotionCLIP"

    def draw(self, context):
        layout = self.layout
        settings = context.scene.vmclip
        state = context.window_manager.vmclip_state

        box = layout.box()
        box.label(text="Backend")
        try:
            box.prop(preferences(context), "address", text="")
        except RuntimeError:
            box.label(text="add-on preferences unavailable", icon="ERROR")
        row = box.row()
        row.label(text=state.connection_text, icon=_CONNECTION_ICONS.get(state.connection, "QUESTION"))
        row.operator("vmclip.check_connection", text="", icon="FILE_REFRESH")

        layout.label(text="Source images")
        row = layout.row()
        row.template_list("VMCLIP_UL_images", "", settings, "images", settings, "image_index", rows=2)
        col = row.column(align=True)
        col.operator("vmclip.add_images", text="", icon="ADD")
        col.operator("vmclip.remove_image", text="", icon="REMOVE")

        layout.label(text="Prompt")
        layout.prop(settings, "prompt", text="", icon="TEXT")
        col = layout.column(align=True)
        col.prop(settings, "seconds")
        col.prop(settings, "seed")
        layout.prop(settings, "armature", text="Rig")
        _draw_rig(layout, context, settings)

        col = layout.column()
        col.scale_y = 1.3
        col.operator("vmclip.generate_motion", icon="ARMATURE_DATA")
        box = layout.box()
        box.label(text="Regenerate around edits", icon="MOD_TIME")
        row = box.row(align=True)
        row.operator("vmclip.regenerate_range", text="Range")
        row.operator("vmclip.inbetween", text="In-between")
        row = box.row(align=True)
        row.prop(settings, "path_curve", text="")
        row.operator("vmclip.follow_path", text="Follow Path")
        row = layout.row(align=True)
        row.operator("vmclip.bake_video", icon="RENDER_ANIMATION")
        row.prop(settings, "video_size", text="")
        row.prop(settings, "video_camera", text="")
        row = layout.row(align=True)
        row.operator("vmclip.export_fbx", icon="EXPORT")
        row.operator("vmclip.export_gltf", text="glTF")
        row.operator("vmclip.export_bvh", text="BVH")

        if state.busy or state.status:
            box = layout.box()
            job = backend.active_job()
            if state.busy:
                compat.progress_bar(box, state.progress, f"{state.progress * 100:.0f}%")
                box.operator("vmclip.cancel", icon="CANCEL")
            # Labels do not wrap by themselves; about 8 px per character at the current UI scale.
            scale = context.preferences.system.ui_scale or 1.0
            width = max(16, int((context.region.width - 70) / (8 * scale)))
            for i, line in enumerate(_wrap(state.status, width)):
                first = "ERROR" if state.status_is_error else "INFO"
                box.label(text=line, icon=first if i == 0 else "BLANK1")
            if job is not None:
                box.label(text=f"{job.elapsed:.0f} s elapsed", icon="TIME")


def _wrap(text: str, width: int) -> list[str]:
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    if line:
        lines.append(line)
    return lines[:8]


CLASSES = (VMCLIP_UL_images, VMCLIP_UL_bone_map, VMCLIP_PT_main)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
