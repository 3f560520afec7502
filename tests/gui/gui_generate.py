"""Runs inside a real Blender window (Debian's Blender 3.4 under Xvfb), driven by tests/test_addon_gui.py.

    blender --factory-startup EMPTY.blend --python gui_generate.py -- --address tcp://... --work DIR

Steps, each on a bpy.app.timers tick so Blender's own event loop keeps running in between:
1. enable the add-on (legacy add-on from the built zip), open the 3D viewport's sidebar, and write
   DIR/tabs.json with the screen position of the sidebar's tab strip;
2. the driver scrolls the mouse wheel over the tab strip until the VideoMotionCLIP panel draws (the
   panel's draw() leaves DIR/panel_drawn);
3. press Generate Motion (INVOKE_DEFAULT in the viewport: the modal operator and its timer), and
   meanwhile measure the longest gap between two timer ticks (a frozen UI would show a long one);
4. when the armature is keyed (and, with a photo in the list, the person's fitted body is on it,
   textured by the photo), show a mid-motion frame, write DIR/result.json and DIR/shoot; the driver
   takes the screenshot and answers with DIR/done; quit.
With --rigify, Rigify's human rig is built once the tab shows and Generate keys it instead.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import addon_utils
import bpy

parser = argparse.ArgumentParser()
parser.add_argument("--address", required=True)
parser.add_argument("--work", type=Path, required=True)
parser.add_argument("--prompt", default="a person walks forward and waves")
parser.add_argument("--seconds", type=float, default=2.0)
parser.add_argument("--image", action="append", default=[], help="source photo(s) for the list")
parser.add_argument(
    "--bake-address",
    default=None,
    help="also press Bake Video (against this backend) and take the screenshot mid-bake",
)
parser.add_argument(
    "--view",
    choices=("FRONT", "BACK"),
    default="FRONT",
    help="the side the screenshot shows; BACK: the person's textured body from behind at the first "
    "frame, flat-lit texture colours, and DIR/back_samples.json (where its back shows on the screen "
    "and the atlas colour there)",
)
parser.add_argument(
    "--rigify",
    action="store_true",
    help="once the panel shows, build Rigify's human rig (its mannequin on the deform bones) and "
    "generate onto it instead of the SMPL rig",
)
args = parser.parse_args(sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else [])
WORK: Path = args.work
ADDON = "videomotionclip"
TICK = 0.05
state = {"step": "start", "ticks": 0, "gaps": [], "last": None, "t0": None, "result": {}}


def log(msg: str) -> None:
    print(f"[gui] {msg}", flush=True)


def view3d():
    for window in bpy.context.window_manager.windows:
        for area in window.screen.areas:
            if area.type == "VIEW_3D":
                region = next(r for r in area.regions if r.type == "WINDOW")
                return window, area, region
    raise RuntimeError("no 3D viewport in the startup file")


def setup() -> None:
    mod = addon_utils.enable(ADDON, default_set=True, handle_error=None)
    if mod is None:
        raise RuntimeError("the add-on did not load")
    panel = bpy.types.VMCLIP_PT_main
    original_draw = panel.draw

    def draw(self, context):  # leaves a mark once Blender really draws the panel
        original_draw(self, context)
        flag = WORK / "panel_drawn"
        if not flag.exists():
            flag.write_text("1")

    panel.draw = draw
    prefs = bpy.context.preferences.addons[ADDON].preferences
    prefs.address = args.address
    prefs.timeout_s = 30.0
    scene = bpy.context.scene
    scene.render.fps = 30
    scene.vmclip.prompt = args.prompt
    scene.vmclip.seconds = args.seconds
    scene.vmclip.seed = 1
    for path in args.image:
        scene.vmclip.images.add().filepath = path
    window, area, _ = view3d()
    area.spaces.active.show_region_ui = True
    # Drop the default cube/light/camera clutter from the picture: the rig is what we look at.
    for obj in list(bpy.data.objects):
        if obj.type == "MESH" and obj.name == "Cube":
            bpy.data.objects.remove(obj)


def build_rigify() -> None:
    """Rigify's human metarig generated into its rig (Blender ships Rigify), the add-on's mannequin
    on its deform bones, and the rig in the panel's Rig field. Done after the panel's tab is chosen:
    the rig's own sidebar tabs would move the strip the driver scrolls."""
    import importlib

    addon_utils.enable("rigify", default_set=True, handle_error=None)
    window, area, region = view3d()
    with bpy.context.temp_override(window=window, area=area, region=region):
        bpy.ops.object.armature_human_metarig_add()
        meta = bpy.context.view_layer.objects.active
        bpy.ops.pose.rigify_generate()
    rig = bpy.context.view_layer.objects.active
    meta.hide_set(True)
    importlib.import_module(ADDON + ".rig").create_proxy_body(bpy.context, rig)
    for obj in bpy.context.view_layer.objects:
        obj.select_set(obj is rig)
    bpy.context.scene.vmclip.armature = rig
    with bpy.context.temp_override(window=window, area=area, region=region):
        # (an artist's own steps, as the UI would record them: Generate's undo comes back to here)
        bpy.ops.ed.undo_push(message="Rigify rig with its mannequin in the Rig field")
    log(f"Rigify rig '{rig.name}' built ({len(rig.data.bones)} bones)")


def tab_strip() -> dict:
    window, area, _ = view3d()
    ui = next(r for r in area.regions if r.type == "UI")
    # Blender's region coordinates are from the window's bottom-left; X11's from the top-left.
    return {
        "window_height": window.height,
        "window_width": window.width,
        "ui_x": ui.x,
        "ui_y": ui.y,
        "ui_width": ui.width,
        "ui_height": ui.height,
    }


def press_check() -> None:
    window, area, region = view3d()
    with bpy.context.temp_override(window=window, area=area, region=region):
        outcome = bpy.ops.vmclip.check_connection("INVOKE_DEFAULT")
    state["result"]["check_outcome"] = sorted(outcome)


def press_generate() -> None:
    state["result"]["before_generate"] = rig_state()
    window, area, region = view3d()
    with bpy.context.temp_override(window=window, area=area, region=region):
        outcome = bpy.ops.vmclip.generate_motion("INVOKE_DEFAULT")
    log(f"Generate Motion pressed: {outcome}")
    state["result"]["invoke_outcome"] = sorted(outcome)


def take_action(arm):
    """The newest generated take (the NLA track the add-on puts it on), or None."""
    data = arm.animation_data if arm is not None else None
    tracks = [t for t in data.nla_tracks if t.name.startswith("VMCLIP Take")] if data is not None else []
    return tracks[-1].strips[0].action if tracks and len(tracks[-1].strips) else None


def keyed_summary() -> dict:
    scene = bpy.context.scene
    arm = scene.vmclip.armature
    wm_state = bpy.context.window_manager.vmclip_state
    out = {"status": wm_state.status, "connection": wm_state.connection, "busy": wm_state.busy}
    action = take_action(arm)
    if action is not None:
        fcs = list(action.fcurves)
        out.update(
            action=action.name,
            fcurves=len(fcs),
            keys=max((len(fc.keyframe_points) for fc in fcs), default=0),
            bones=len(arm.data.bones),
            frame_range=[scene.frame_start, scene.frame_end],
            body=any(c.type == "MESH" for c in arm.children),
        )
        fitted = bpy.data.objects.get(arm.name + "_body")
        if fitted is not None:  # the person's own body, wearing the avatar made from the photo
            images = [
                n.image.name
                for m in fitted.data.materials
                for n in m.node_tree.nodes
                if n.type == "TEX_IMAGE" and n.image is not None
            ]
            _, area, _ = view3d()
            out.update(
                fitted_body=fitted.name,
                groups=len(fitted.vertex_groups),
                body_images=images,
                color_type=area.spaces.active.shading.color_type,
            )
    return out


def rig_state() -> list:
    """[the rig is there, its newest take's action, how many actions, its NLA tracks]: the panel's rig
    (Rigify's), else the SMPL-24 rig Generate creates."""
    arm = bpy.context.scene.vmclip.armature or bpy.data.objects.get("VMCLIP_Armature")
    action = take_action(arm)
    data = arm.animation_data if arm is not None else None
    tracks = [t.name for t in data.nla_tracks] if data is not None else []
    return [arm is not None, action.name if action is not None else None, len(bpy.data.actions), tracks]


def undo_redo() -> dict:
    """Generate Motion is one undo step: one Ctrl+Z removes the take (and the SMPL-24 rig it created),
    one redo brings them back."""
    window, area, region = view3d()
    out = {"after_generate": rig_state()}
    with bpy.context.temp_override(window=window, area=area, region=region):
        bpy.ops.ed.undo()
        out["after_undo"] = rig_state()
        bpy.ops.ed.redo()
        out["after_redo"] = rig_state()
    return out


def show_back(summary: dict) -> None:
    """The fitted body from behind at the first frame, alone in the view, its texture colours unlit
    (flat light, Standard view transform: the screen shows the atlas's own colours)."""
    scene = bpy.context.scene
    scene.frame_set(scene.frame_start)
    scene.view_settings.view_transform = "Standard"
    body = bpy.data.objects.get(summary.get("fitted_body") or "")
    if body is None:
        raise RuntimeError("no fitted body to show from the back (no photo analysed)")
    window, area, region = view3d()
    space = area.spaces.active
    space.shading.type = "SOLID"
    space.shading.light = "FLAT"
    space.shading.color_type = "TEXTURE"
    space.overlay.show_overlays = False  # (no bones or grid over the back)
    for obj in bpy.context.view_layer.objects:
        obj.select_set(obj is body)
    bpy.context.view_layer.objects.active = body
    with bpy.context.temp_override(window=window, area=area, region=region):
        bpy.ops.view3d.view_axis(type="BACK")
        bpy.ops.view3d.view_selected()
    state["back_body"] = body.name


def back_samples(body_name: str, count: int = 400) -> dict:
    """Points of the body's back the view shows (ray cast from the view hits that very face), with
    their window position (x right, y down from the window's top) and the atlas's colour there."""
    import numpy as np
    from bpy_extras.view3d_utils import (
        location_3d_to_region_2d,
        region_2d_to_origin_3d,
        region_2d_to_vector_3d,
    )

    window, area, region = view3d()
    rv3d = area.spaces.active.region_3d
    body = bpy.data.objects[body_name]
    depsgraph = bpy.context.evaluated_depsgraph_get()
    mesh = body.evaluated_get(depsgraph).to_mesh()
    uv = mesh.uv_layers["VMCLIP_avatar"].data
    image = next(n.image for m in body.data.materials for n in m.node_tree.nodes if n.type == "TEX_IMAGE")
    w, h = image.size
    pixels = np.empty(w * h * 4, np.float32)
    image.pixels.foreach_get(pixels)
    pixels = pixels.reshape(h, w, 4)
    rng = np.random.default_rng(0)
    polys = list(mesh.polygons)
    out = []
    for i in rng.permutation(len(polys)):
        if len(out) >= count:
            break
        poly = polys[i]
        centre = body.matrix_world @ poly.center
        xy = location_3d_to_region_2d(region, rv3d, centre)
        if xy is None or not (0 <= xy.x < region.width and 0 <= xy.y < region.height):
            continue
        origin = region_2d_to_origin_3d(region, rv3d, xy)
        direction = region_2d_to_vector_3d(region, rv3d, xy)
        hit, _, _, index, obj, _ = bpy.context.scene.ray_cast(depsgraph, origin, direction)
        if not hit or obj.name != body.name or index != poly.index:
            continue
        u, v = np.mean([uv[k].uv[:] for k in poly.loop_indices], axis=0)
        colour = pixels[min(h - 1, int(v * h)), min(w - 1, int(u * w)), :3]
        out.append(
            [
                int(region.x + xy.x),
                int(window.height - (region.y + xy.y)),
                *[int(round(255 * c)) for c in colour],
            ]
        )
    body.evaluated_get(depsgraph).to_mesh_clear()
    return {"samples": out, "window_height": window.height, "window_width": window.width}


def tick():
    now = time.monotonic()
    # Gaps between two ticks while the request is in flight: a UI blocked on the backend shows a long one.
    busy = state["step"] == "generating" and bpy.context.window_manager.vmclip_state.busy
    if busy and state.get("was_busy"):
        state["gaps"].append(now - state["last"])
    state["last"], state["was_busy"] = now, busy
    state["ticks"] += 1
    step = state["step"]
    try:
        if step == "start":
            setup()
            state["step"] = "tabs"
        elif step == "tabs" and state["ticks"] > 5:  # let the sidebar open and draw
            (WORK / "tabs.json").write_text(json.dumps(tab_strip()))
            state["step"] = "wait_panel"
            log("tab strip position written; waiting for the driver to select the tab")
        elif step == "wait_panel" and (WORK / "panel_drawn").exists():
            if args.rigify:
                build_rigify()
            press_check()
            state["step"] = "checking"
        elif step == "checking" and bpy.context.window_manager.vmclip_state.connection != "CHECKING":
            wm_state = bpy.context.window_manager.vmclip_state
            state["result"]["connection_after_check"] = wm_state.connection_text
            press_generate()
            state["t0"] = now
            state["step"] = "generating"
        elif step == "generating":
            summary = keyed_summary()
            if not summary["busy"] and "action" in summary:
                scene = bpy.context.scene
                if args.view == "BACK":
                    show_back(summary)
                else:
                    scene.frame_set((scene.frame_start + scene.frame_end) // 2)
                    window, area, region = view3d()
                    with bpy.context.temp_override(window=window, area=area, region=region):
                        # from the front (the photo's side of the body), framed on the rig
                        bpy.ops.view3d.view_axis(type="FRONT")
                        bpy.ops.view3d.view_selected()
                window, area, region = view3d()
                state["result"].update(summary)
                state["result"]["seconds_to_key"] = now - state["t0"]
                state["result"]["max_gap_s"] = max(state["gaps"]) if state["gaps"] else None
                state["result"]["ticks_while_busy"] = len(state["gaps"])
                state["step"] = "settle"
                state["settle_until"] = now + 1.0
                if args.bake_address:
                    bpy.context.preferences.addons[ADDON].preferences.address = args.bake_address
                    bpy.context.scene.vmclip.video_size = "256"
                    with bpy.context.temp_override(window=window, area=area, region=region):
                        state["result"]["bake_outcome"] = sorted(bpy.ops.vmclip.bake_video("INVOKE_DEFAULT"))
                    state["step"] = "baking"
            elif not summary["busy"] and now - state["t0"] > 2.0 and "action" not in summary:
                state["result"].update(summary, error="generate finished without keying the armature")
                state["step"] = "settle"
                state["settle_until"] = now
            elif now - state["t0"] > 300:  # (with a photo, the person is analysed too)
                state["result"].update(summary, error="generate did not finish within 300 s")
                state["step"] = "settle"
                state["settle_until"] = now
        elif step == "baking":
            wm_state = bpy.context.window_manager.vmclip_state
            if wm_state.progress > 0.3 or not wm_state.busy:  # mid-bake: the progress bar shows
                state["result"]["bake_status"] = wm_state.status
                (WORK / "shoot").write_text("1")
                state["step"] = "bake_wait"
        elif step == "bake_wait" and not bpy.context.window_manager.vmclip_state.busy:
            state["result"]["bake_final"] = bpy.context.window_manager.vmclip_state.status
            state["result"]["video"] = bpy.context.scene.vmclip.last_video
            (WORK / "result.json").write_text(json.dumps(state["result"]))
            (WORK / "baked").write_text("1")
            state["step"] = "wait_done"
            state["wait_until"] = now + 60
        elif step == "settle" and now >= state["settle_until"]:
            if state.get("back_body"):
                (WORK / "back_samples.json").write_text(json.dumps(back_samples(state["back_body"])))
            (WORK / "result.json").write_text(json.dumps(state["result"]))
            (WORK / "shoot").write_text("1")
            state["step"] = "wait_done"
            state["wait_until"] = now + 60
        elif step == "wait_done" and ((WORK / "done").exists() or now > state["wait_until"]):
            if "error" not in state["result"]:
                (WORK / "undo.json").write_text(json.dumps(undo_redo()))
            bpy.ops.wm.quit_blender()
            return None
    except Exception as exc:  # noqa: BLE001 - hand the failure to the driver, then quit
        (WORK / "result.json").write_text(json.dumps({"error": f"{type(exc).__name__}: {exc}", "step": step}))
        (WORK / "shoot").write_text("1")
        state["step"] = "wait_done"
        state["wait_until"] = time.monotonic() + 10
    return TICK


bpy.app.timers.register(tick, first_interval=0.5)
