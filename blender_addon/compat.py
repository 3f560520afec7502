"""The few places where Blender's API differs between 3.4 (legacy add-on) and 4.4+/5.0 (extension).

- Actions: 4.4 introduced layered actions with slots; 5.0 removed `Action.fcurves`. Curves now live
  in `action.layers[0].strips[0].channelbag(slot)`.
- Video Sequencer: `SequenceEditor.sequences` became `strips` (4.4) and the old name went away in 5.0.
- `UILayout.progress` exists from 4.0.
"""

from __future__ import annotations

import bpy


def _has_prop(struct, name: str) -> bool:
    return name in struct.bl_rna.properties


def is_layered(action: bpy.types.Action) -> bool:
    return not _has_prop(action, "fcurves")


def assign_action(obj: bpy.types.Object, action: bpy.types.Action) -> None:
    if obj.animation_data is None:
        obj.animation_data_create()
    obj.animation_data.action = action


def ensure_fcurve(
    action: bpy.types.Action, obj: bpy.types.Object, data_path: str, index: int, group: str
) -> bpy.types.FCurve:
    """The F-curve for `data_path[index]` of `obj` in `action` (created, with its group, if missing).
    `obj` must have `action` assigned, so that layered actions key the object's own slot."""
    if is_layered(action):
        return action.fcurve_ensure_for_datablock(obj, data_path, index=index, group_name=group)
    fc = action.fcurves.find(data_path, index=index)
    return fc if fc is not None else action.fcurves.new(data_path, index=index, action_group=group)


def action_fcurves(action: bpy.types.Action, obj: bpy.types.Object | None = None) -> list:
    """All F-curves of `action` that animate `obj` (its assigned slot; the first slot without obj)."""
    if action is None:
        return []
    if not is_layered(action):
        return list(action.fcurves)
    slot = None
    if obj is not None and obj.animation_data is not None and obj.animation_data.action == action:
        slot = obj.animation_data.action_slot
    if slot is None and len(action.slots):
        slot = action.slots[0]
    if slot is None:
        return []
    for layer in action.layers:
        for strip in layer.strips:
            bag = strip.channelbag(slot)
            if bag is not None:
                return list(bag.fcurves)
    return []


def find_fcurve(action: bpy.types.Action, obj: bpy.types.Object, data_path: str, index: int):
    for fc in action_fcurves(action, obj):
        if fc.data_path == data_path and fc.array_index == index:
            return fc
    return None


def strips(scene: bpy.types.Scene):
    """The top-level strips collection of the scene's Video Sequencer (created if missing)."""
    editor = scene.sequence_editor or scene.sequence_editor_create()
    return editor.strips if _has_prop(editor, "strips") else editor.sequences


def progress_bar(layout, factor: float, text: str) -> None:
    if hasattr(layout, "progress"):
        layout.progress(factor=factor, type="BAR", text=text)
    else:  # Blender 3.x: a label
        layout.label(text=text, icon="TIME")
