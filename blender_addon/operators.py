"""Operators: Generate Motion, Bake Video, Export FBX/BVH, image list and connection check.

Backend requests run in a worker thread (backend.Job). From the panel (invoke) the operator is modal:
a window-manager timer polls the job every 0.1 s, so Blender stays responsive, Esc cancels, and the
finished operator is one undo step. From a script or the bpy module (execute) the same job is started
and waited for in place."""

from __future__ import annotations

import os
from pathlib import Path

import bpy
import numpy as np
from bpy.props import CollectionProperty, StringProperty
from bpy_extras.io_utils import ExportHelper, ImportHelper

from . import backend, body, compat, keying, regenerate, rig, rigmap, smpl, targets
from .props import _tag_redraw, preferences

POLL_SECONDS = 0.1
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def _state(context):
    return context.window_manager.vmclip_state


def _settings(context):
    return context.scene.vmclip


def set_status(context, text: str, *, error: bool = False, progress: float | None = None) -> None:
    state = _state(context)
    state.status = text
    state.status_is_error = error
    if progress is not None:
        state.progress = progress
    if context.workspace is not None and hasattr(context.workspace, "status_text_set"):
        try:  # the status line at the bottom of the window; only where a window exists
            context.workspace.status_text_set(text if state.busy else None)
        except (AttributeError, RuntimeError):
            pass
    _tag_redraw()


def image_paths(context) -> list[str]:
    return [bpy.path.abspath(item.filepath) for item in _settings(context).images if item.filepath.strip()]


def read_images(context) -> list[bytes]:
    paths = image_paths(context)
    if not paths:
        raise backend.InputProblem("No source images: add at least one photo of the person")
    out = []
    for path in paths:
        if not os.path.isfile(path):
            raise backend.InputProblem(f"Source image not found: {path}")
        with open(path, "rb") as fh:
            out.append(fh.read())
    return out


def prompt_of(context) -> str:
    prompt = " ".join(_settings(context).prompt.split())
    if not prompt:
        raise backend.InputProblem("Empty prompt: describe the motion first")
    return prompt


def animated_armature(context):
    """The panel's rig when it carries a generated motion (an SMPL-24 rig or a mapped one)."""
    arm = _settings(context).armature
    if arm is None or not (rig.is_smpl_armature(arm) or targets.is_mapped(arm)):
        return None
    ad = arm.animation_data
    if ad is None or (ad.action is None and keying.current_take(arm) is None):
        return None
    return arm


def target_map(context):
    """The rig map Generate will use: None for an SMPL-24 rig (or none yet), else the mapped rig's.
    Raises InputProblem (nothing changed) for a rig that cannot be mapped."""
    arm = _settings(context).armature
    if arm is None or rig.is_smpl_armature(arm):
        return None
    try:
        return targets.map_target(_settings(context), arm)
    except rigmap.RigProblem as exc:
        raise backend.InputProblem(str(exc)) from None


class _BackendOperator:
    """Shared modal/blocking machinery; subclasses define `start_job` (main thread, may raise
    InputProblem) and `finish` (main thread, with the job's result)."""

    bl_options = {"REGISTER", "UNDO"}
    label = "request"

    @classmethod
    def poll(cls, context):
        if backend.active_job() is not None:
            cls.poll_message_set("The backend is busy with another request")
            return False
        return True

    # --- subclass hooks ---------------------------------------------------------------------------
    def start_job(self, context) -> backend.Job:
        raise NotImplementedError

    def finish(self, context, result) -> None:
        raise NotImplementedError

    # --- machinery --------------------------------------------------------------------------------
    def _fail(self, context, exc: BaseException) -> set:
        address = ""
        try:
            address = preferences(context).address
        except RuntimeError:
            pass
        message = backend.describe_error(exc, address)
        proto = backend.protocol
        state = _state(context)
        if proto is not None and isinstance(exc, proto.ServerUnavailable):
            state.connection, state.connection_text = "UNREACHABLE", "unreachable"
        elif proto is not None and isinstance(exc, proto.RemoteError | proto.ProtocolError):
            state.connection = "CONNECTED"  # it answered, with an error
            if not state.connection_text.startswith("connected"):
                state.connection_text = "connected"
        self.report({"ERROR"}, message)
        set_status(context, message, error=True)
        return {"CANCELLED"}

    def _start(self, context) -> backend.Job:
        job = self.start_job(context)
        backend.ACTIVE["job"] = job
        state = _state(context)
        state.busy, state.progress = True, 0.0
        set_status(context, job.message)
        return job.start()

    def _complete(self, context, job: backend.Job) -> set:
        backend.ACTIVE["job"] = None
        state = _state(context)
        state.busy = False
        try:
            if job.error is not None:
                proto = backend.protocol
                remote = proto is not None and isinstance(job.error, proto.RemoteError)
                cancelled = isinstance(job.error, backend.Cancelled) or (
                    remote and job.error.code == "cancelled"
                )
                if cancelled:
                    self.report({"WARNING"}, f"{self.label} cancelled")
                    set_status(context, f"{self.label} cancelled", progress=0.0)
                    return {"CANCELLED"}
                return self._fail(context, job.error)
            state.connection = "CONNECTED"
            if not state.connection_text.startswith("connected"):
                state.connection_text = "connected"
            self.finish(context, job.result)
            return {"FINISHED"}
        except Exception as exc:  # anything at all: a one-line report, never a traceback
            return self._fail(context, exc)

    def invoke(self, context, event):
        try:
            job = self._start(context)
        except Exception as exc:  # bad input or settings: a one-line report, never a traceback
            return self._fail(context, exc)
        self._job = job
        wm = context.window_manager
        self._timer = wm.event_timer_add(POLL_SECONDS, window=context.window)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        job = self._job
        if event.type == "ESC" and event.value == "PRESS" and not job.cancel_requested.is_set():
            job.cancel()
            set_status(context, f"{self.label}: cancelling")
            return {"RUNNING_MODAL"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}  # the rest of Blender stays usable while the backend works
        if not self.tick(context):
            return {"PASS_THROUGH"}
        context.window_manager.event_timer_remove(self._timer)
        return self._complete(context, job)

    def tick(self, context) -> bool:
        """One poll of the running job (what every timer event does); True when it has finished."""
        job = self._job
        done = job.poll()
        state = _state(context)
        if not done and (state.progress != job.fraction or state.status != job.message):
            set_status(context, job.message, progress=job.fraction)
        return done

    def execute(self, context):
        try:
            job = self._job = self._start(context)
        except Exception as exc:  # bad input or settings: a one-line report, never a traceback
            return self._fail(context, exc)
        shown, next_print = "", 1.0
        while not job.wait(POLL_SECONDS):
            self.tick(context)
            if bpy.app.background and job.message != shown and job.elapsed > next_print:
                shown, next_print = job.message, job.elapsed + 2.0  # headless scripts see progress
                print(f"[vmclip] {shown} ({job.fraction * 100:.0f}%)", flush=True)
        self.tick(context)
        return self._complete(context, job)


class VMCLIP_OT_generate_motion(_BackendOperator, bpy.types.Operator):
    """Generate a motion from the prompt and key it onto a new action of the SMPL-24 armature"""

    bl_idname = "vmclip.generate_motion"
    bl_label = "Generate Motion"
    label = "Generate Motion"

    @classmethod
    def poll(cls, context):
        if not super().poll(context):
            return False
        if not _settings(context).prompt.strip():
            cls.poll_message_set("Type a prompt first")
            return False
        if context.mode not in {"OBJECT", "POSE"}:
            cls.poll_message_set("Switch to Object or Pose mode")
            return False
        return True

    def start_job(self, context) -> backend.Job:
        settings = _settings(context)
        prompt = prompt_of(context)
        self._rigmap = target_map(context)  # a rig that cannot take the motion stops here
        seconds, seed = float(settings.seconds), int(settings.seed)
        scene = context.scene
        fps = scene.render.fps / scene.render.fps_base
        self._request = {"prompt": prompt, "seconds": seconds, "seed": seed, "fps": fps}
        # With photos in the list, the person is analysed too (the backend caches it per photo set), so
        # the viewport can show the person's own body on the rig. A photo that cannot be read only
        # costs the body, not the motion.
        # (A mapped rig of the artist's does not wear the fitted body: no analysis for it.)
        self._photos = image_paths(context) if self._rigmap is None else []
        self._photo_problem = None
        images = []
        try:
            images = read_images(context) if self._photos else []
        except (backend.InputProblem, OSError) as exc:
            self._photo_problem, self._photos = backend.describe_error(exc), []
        client = backend.make_client(preferences(context))
        proto = backend.protocol_module()
        share = 0.3 if images else 1.0

        def work(client, report, job_id):
            motion = client.generate_motion(
                prompt, seconds, seed, fps, job_id=job_id, on_progress=lambda f, m: report(share * f, m)
            )
            if not images:
                return motion, None
            try:
                analysis = client.analyze(images, on_progress=lambda f, m: report(share + (1 - share) * f, m))
            except (proto.RemoteError, proto.ProtocolError, proto.ServerUnavailable) as exc:
                analysis = exc  # the motion still gets keyed; finish() says why there is no body
            return motion, analysis

        return backend.Job(self.label, client, work)

    def finish(self, context, result) -> None:
        motion, analysis = result
        if self._rigmap is not None:
            text = finish_on_rig(self, context, motion, self._rigmap, self._request)
        else:
            text = self._finish_smpl(context, motion, analysis)
        self.report({"INFO"}, text)
        set_status(context, text, progress=1.0)

    def _finish_smpl(self, context, motion, analysis) -> str:
        settings = _settings(context)
        created = not rig.is_smpl_armature(settings.armature)
        arm = rig.ensure_armature(context, smpl.Skeleton(), settings.armature)  # (new rig: object mode)
        settings.armature = arm
        mesh, note = None, self._photo_problem
        if isinstance(analysis, BaseException):
            note = backend.describe_error(analysis)
        elif analysis is not None:
            mesh = analysis.get("body_mesh")
            if mesh is None:
                note = "the backend sent no fitted body"
        if mesh is not None:  # the rest pose must be the person's before keys and skin go on
            rig.fit_rest_to_person(context, arm, mesh.joints, mesh.floor_offset, mesh.trans_scale)
        prompt = self._request["prompt"]
        action, planted = smpl_take(context, arm, motion, f"VMCLIP {prompt[:48]}")
        keys = f"{planted}; " * bool(planted) + make_take(context, arm, action, motion, self._request)
        fitted = None
        if mesh is not None:
            try:
                fitted = body.build_body(context, arm, mesh, self._photos)
            except (ValueError, RuntimeError, OSError) as exc:
                note = f"the fitted body could not be built: {exc}"
                rig.refresh_proxy_body(context, arm)
        if created or context.mode == "OBJECT":  # an artist posing the rig stays in pose mode
            for obj in context.view_layer.objects:
                obj.select_set(False)
            arm.select_set(True)
            context.view_layer.objects.active = arm
        text = (
            f"Generated {motion.num_frames} frames ({motion.seconds:.1f} s) onto action '{action.name}', "
            f"frames {context.scene.frame_start}-{context.scene.frame_end}; {keys}"
        )
        if fitted is not None:
            text += f"; the person's body is on the rig as '{fitted.name}'"
        if note:
            self.report({"WARNING"}, f"No fitted body: {note}")
            text += f"; no fitted body ({note})"
        return text


def smpl_take(context, arm, motion, name: str, hold=None):
    """Key `motion` on the SMPL-24 rig as a new action, planted feet pinned on the rig's own rest
    pose when the panel asks for it (`hold`: frames kept as given); returns (action, a few words on
    the planting or "")."""
    poses, trans, words = motion.poses, motion.trans, ""
    if _settings(context).plant_feet and tuple(motion.joint_names) == tuple(smpl.JOINT_NAMES):
        poses, trans, planting = targets.planted_on_smpl_rig(arm, motion, hold)
        words = f"feet planted on {planting.runs} contacts"
    action = rig.apply_motion(context, arm, poses, trans, motion.fps, motion.joint_names, name)
    if words:
        action["vmclip_planted"] = planting.planted
    return action, words


def make_take(context, arm, action, motion, request) -> str:
    """Thin the new action's keys (panel tolerances), label it and put it on the rig's NLA as the
    newest take under the tweak layer; returns a few words on the keys for the report."""
    settings = _settings(context)
    action["vmclip_prompt"] = request["prompt"]
    action["vmclip_seed"] = request["seed"]
    frames = keying.scene_frames(context.scene, len(motion.poses), motion.fps)
    words = f"{len(frames)} keys per channel"
    if settings.reduce_keys and len(frames) > 2:
        planted = keying.planted_frames(arm, action, len(frames))
        before, after = keying.reduce_keys(
            action, arm, frames, settings.key_tolerance_deg, settings.key_tolerance_mm / 1000.0, planted
        )
        words = f"{after} of {before} keys kept ({100.0 * after / max(before, 1):.0f} %)"
    tweak = keying.push_take(context.scene, arm, action)
    context.scene.frame_set(context.scene.frame_start)
    return f"{words}; tweak layer '{tweak.name}'"


def finish_on_rig(op, context, motion, rm, request) -> str:
    """Generate's ending for a mapped rig: key the motion on the rig's own bones as a new take."""
    arm = _settings(context).armature
    if context.mode != "OBJECT" and context.object is not arm:
        bpy.ops.object.mode_set(mode="OBJECT")
    action, note = targets.key_motion(
        context, arm, rm, motion, f"VMCLIP {request['prompt'][:48]}", plant=_settings(context).plant_feet
    )
    keys = make_take(context, arm, action, motion, request)
    return (
        f"Generated {motion.num_frames} frames ({motion.seconds:.1f} s) onto '{arm.name}' as take "
        f"'{action.name}', frames {context.scene.frame_start}-{context.scene.frame_end}; {note}; {keys}"
    )


class VMCLIP_OT_bake_video(_BackendOperator, bpy.types.Operator):
    """Render the photographed person moving as the armature does (its evaluated pose at every frame) and
    load the video into the Video Sequencer"""

    bl_idname = "vmclip.bake_video"
    bl_label = "Bake Video"
    label = "Bake Video"

    @classmethod
    def poll(cls, context):
        if not super().poll(context):
            return False
        if not bpy.data.filepath:
            cls.poll_message_set("Save the .blend file first: the video is written beside it")
            return False
        if not image_paths(context):
            cls.poll_message_set("Add at least one source image")
            return False
        if animated_armature(context) is None:
            cls.poll_message_set("Generate a motion first (the panel's rig has no generated motion)")
            return False
        return True

    def video_path(self, context) -> Path:
        blend = Path(bpy.data.filepath)
        return blend.with_name(f"{blend.stem}.mp4")

    def start_job(self, context) -> backend.Job:
        if not bpy.data.filepath:
            raise backend.InputProblem("Save the .blend file first: the video is written beside it")
        images = read_images(context)
        arm = animated_armature(context)
        if arm is None:
            raise backend.InputProblem("Generate a motion first: the panel's rig has no generated motion")
        scene = context.scene
        poses, trans, names = targets.sample_rig(context, arm, scene.frame_start, scene.frame_end, world=True)
        if names != list(smpl.JOINT_NAMES):
            raise backend.InputProblem("The armature lacks SMPL-24 bones; generate onto a fresh armature")
        proto = backend.protocol_module()
        fps = scene.render.fps / scene.render.fps_base
        motion = proto.MotionPayload(poses, trans, fps, tuple(names), _settings(context).prompt)
        options = {"size": int(_settings(context).video_size), "camera": _settings(context).video_camera}
        self._out = self.video_path(context)
        self._start_frame = scene.frame_start
        client = backend.make_client(preferences(context))

        def work(client, report, job_id):
            return client.render(images, motion, options, on_progress=report, job_id=job_id)

        return backend.Job(self.label, client, work)

    def finish(self, context, video: bytes) -> None:
        out = self._out
        tmp = out.with_name(f".{out.name}.part")
        tmp.write_bytes(video)
        os.replace(tmp, out)  # atomic: never a half-written video beside the .blend
        strip = load_video_strip(context.scene, out, self._start_frame)
        _settings(context).last_video = str(out)
        text = f"Baked {out.name} ({len(video) / 1e6:.1f} MB) into the Video Sequencer as '{strip.name}'"
        self.report({"INFO"}, text)
        set_status(context, text, progress=1.0)


def load_video_strip(scene, path: Path, frame_start: int):
    """Put the video on channel 1 of the scene's sequencer, replacing an earlier bake of the same file."""
    strips = compat.strips(scene)
    for old in list(strips):
        if getattr(old, "filepath", None) and Path(bpy.path.abspath(old.filepath)) == path:
            strips.remove(old)
    # Relative to the .blend ("//name.mp4"), so the project folder can be moved or shared.
    filepath = bpy.path.relpath(str(path)) if bpy.data.filepath else str(path)
    strip = strips.new_movie(name=path.stem, filepath=filepath, channel=1, frame_start=frame_start)
    return strip


class VMCLIP_OT_check_connection(_BackendOperator, bpy.types.Operator):
    """Ask the backend who it is (protocol version, device, available stages)"""

    bl_idname = "vmclip.check_connection"
    bl_label = "Check Connection"
    bl_options = {"REGISTER"}
    label = "Check connection"

    def start_job(self, context) -> backend.Job:
        state = _state(context)
        state.connection, state.connection_text = "CHECKING", "checking..."
        client = backend.make_client(preferences(context))

        def work(client, report, job_id):
            return client.hello()

        return backend.Job(self.label, client, work)

    def finish(self, context, hello: dict) -> None:
        state = _state(context)
        device = hello.get("device", "?")
        version = hello.get("protocol", hello.get("versions", "?"))
        state.connection = "CONNECTED"
        state.connection_text = f"connected ({device})"
        text = f"Backend {hello.get('server', 'vmclip')} on {device}, protocol {version}"
        missing = [k for k, v in hello.get("capabilities", {}).items() if not v.get("available", True)]
        if missing:
            text += f"; not available there: {', '.join(missing)}"
        self.report({"INFO"}, text)
        set_status(context, text)


class VMCLIP_OT_cancel(bpy.types.Operator):
    """Stop the running backend request"""

    bl_idname = "vmclip.cancel"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context):
        return backend.active_job() is not None

    def execute(self, context):
        job = backend.active_job()
        if job is not None:
            job.cancel()
            set_status(context, f"{job.label}: cancelling")
        return {"FINISHED"}


class VMCLIP_OT_add_images(bpy.types.Operator, ImportHelper):
    """Add photos of the person (one or more views)"""

    bl_idname = "vmclip.add_images"
    bl_label = "Add Source Images"
    bl_options = {"REGISTER", "UNDO"}

    filter_glob: StringProperty(default="*.png;*.jpg;*.jpeg", options={"HIDDEN"})
    files: CollectionProperty(type=bpy.types.OperatorFileListElement, options={"HIDDEN", "SKIP_SAVE"})
    directory: StringProperty(subtype="DIR_PATH", options={"HIDDEN", "SKIP_SAVE"})

    def execute(self, context):
        names = [f.name for f in self.files if f.name] if self.directory else []
        paths = [os.path.join(self.directory, n) for n in names] or [self.filepath]
        settings = _settings(context)
        added = 0
        for path in paths:
            if not path.lower().endswith(IMAGE_SUFFIXES):
                self.report({"WARNING"}, f"Skipped {os.path.basename(path)}: not a PNG or JPEG image")
                continue
            if not os.path.isfile(path):
                self.report({"ERROR"}, f"Source image not found: {path}")
                return {"CANCELLED"}
            item = settings.images.add()
            item.filepath = bpy.path.relpath(path) if bpy.data.filepath else path
            added += 1
        settings.image_index = len(settings.images) - 1
        set_status(context, f"{added} image(s) added")
        return {"FINISHED"} if added else {"CANCELLED"}


class VMCLIP_OT_remove_image(bpy.types.Operator):
    """Remove the selected source image from the list"""

    bl_idname = "vmclip.remove_image"
    bl_label = "Remove Source Image"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        settings = _settings(context)
        return 0 <= settings.image_index < len(settings.images)

    def execute(self, context):
        settings = _settings(context)
        settings.images.remove(settings.image_index)
        settings.image_index = min(settings.image_index, len(settings.images) - 1)
        return {"FINISHED"}


def _export_poll(cls, context) -> bool:
    if backend.active_job() is not None:
        cls.poll_message_set("Wait for the running request to finish")
        return False
    if animated_armature(context) is None:
        cls.poll_message_set("Generate a motion first (the panel's rig has no generated motion)")
        return False
    return True


class _ExportBase:
    def _armature(self, context):
        """The animated SMPL-24 armature to export, or None after reporting why there is none."""
        arm = animated_armature(context)
        if arm is None:
            self.report({"ERROR"}, "Generate a motion first: the panel's rig has no generated motion")
        return arm

    def _select_only(self, context, objs) -> tuple:
        saved = ([o for o in context.view_layer.objects if o.select_get()], context.view_layer.objects.active)
        if context.mode != "OBJECT":
            bpy.ops.object.mode_set(mode="OBJECT")
        for o in context.view_layer.objects:
            o.select_set(False)
        for o in objs:
            o.select_set(True)
        context.view_layer.objects.active = objs[0]
        return saved

    def _restore(self, context, saved) -> None:
        selected, active = saved
        for o in context.view_layer.objects:
            o.select_set(o in selected)
        context.view_layer.objects.active = active


class VMCLIP_OT_export_fbx(_ExportBase, bpy.types.Operator, ExportHelper):
    """Export the armature (with its body mesh, which gives FBX a bind pose) and the baked animation"""

    bl_idname = "vmclip.export_fbx"
    bl_label = "Export FBX"
    filename_ext = ".fbx"
    filter_glob: StringProperty(default="*.fbx", options={"HIDDEN"})

    poll = classmethod(_export_poll)

    def execute(self, context):
        arm = self._armature(context)
        if arm is None:
            return {"CANCELLED"}
        try:
            export_fbx(context, arm, self.filepath, self)
        except (RuntimeError, OSError) as exc:
            self.report({"ERROR"}, f"FBX export failed: {exc}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Exported {os.path.basename(self.filepath)}")
        return {"FINISHED"}


def skinned_meshes(arm) -> list:
    """The meshes the rig deforms (the character's own, the fitted body or the mannequin)."""
    return [
        o
        for o in bpy.data.objects
        if o.type == "MESH" and any(m.type == "ARMATURE" and m.object == arm for m in o.modifiers)
    ]


def _export_scene(context, arm, helper, write) -> None:
    """Select the rig and the meshes it deforms (a temporary mannequin when there are none: FBX and
    glTF take the rest pose from a skin's bind pose) and run `write`; the scene is left as it was."""
    helper = helper or _ExportBase()
    meshes = skinned_meshes(arm)
    temp_body = None
    if not meshes:
        meshes = [temp_body := rig.create_proxy_body(context, arm)]
    saved = helper._select_only(context, [arm, *meshes])
    frame = context.scene.frame_current
    try:
        write()
    finally:
        context.scene.frame_set(frame)
        helper._restore(context, saved)
        if temp_body is not None:
            mesh = temp_body.data
            bpy.data.objects.remove(temp_body)
            bpy.data.meshes.remove(mesh)


def bake_shown(context, arm):
    """A new action holding the rig's pose as Blender shows it (takes on the NLA, the tweak layer,
    constraints, IK) at every frame of the scene's range, keyed on every bone."""
    from bpy_extras import anim_utils

    scene = context.scene
    options = dict(
        only_selected=False,
        do_pose=True,
        do_object=False,
        do_visual_keying=True,
        do_constraint_clear=False,
        do_parents_clear=False,
        do_clean=False,
        do_location=True,
        do_rotation=True,
        do_scale=True,
        do_bbone=False,
        do_custom_props=False,
    )
    ad = arm.animation_data
    before = ad.action
    frames = range(scene.frame_start, scene.frame_end + 1)
    if hasattr(anim_utils, "BakeOptions"):  # Blender 3.6+
        baked = anim_utils.bake_action(
            arm, action=None, frames=frames, bake_options=anim_utils.BakeOptions(**options)
        )
    else:  # Blender 3.4: the options as keywords (location, rotation and scale always baked)
        for key in ("do_location", "do_rotation", "do_scale", "do_bbone", "do_custom_props"):
            options.pop(key)
        baked = anim_utils.bake_action(arm, action=None, frames=frames, **options)
    ad.action = before
    return baked


def export_fbx(context, arm, filepath: str, helper: _ExportBase | None = None) -> None:
    """FBX through Blender's exporter: the rig, the meshes it deforms and its animation as Blender
    shows it (takes, tweak layer, constraints, IK; baked at every frame of the scene's range) as one
    take that starts at time 0, so importers put it back on the same frames.

    The baked action goes out through a temporary NLA strip, the exporter's only mode that writes
    just this action with its first frame at time 0."""
    ad = arm.animation_data

    def write():
        baked = bake_shown(context, arm)
        action = ad.action
        muted = {track.name: track.mute for track in ad.nla_tracks}
        track = ad.nla_tracks.new()
        try:
            for other in ad.nla_tracks:
                other.mute = other != track
            track.name = "VMCLIP export"
            track.strips.new(baked.name, context.scene.frame_start, baked)
            ad.action = None
            bpy.ops.export_scene.fbx(
                filepath=filepath,
                use_selection=True,
                object_types={"ARMATURE", "MESH"},
                add_leaf_bones=False,
                bake_anim=True,
                bake_anim_use_all_actions=False,
                bake_anim_use_nla_strips=True,
                bake_anim_force_startend_keying=True,
                bake_anim_step=1.0,
                bake_anim_simplify_factor=0.0,
                use_armature_deform_only=False,
                # the body's avatar atlas (a packed image) inside the file
                path_mode="COPY",
                embed_textures=True,
            )
        finally:
            ad.nla_tracks.remove(track)
            for other in ad.nla_tracks:
                other.mute = muted.get(other.name, other.mute)
            ad.action = action
            bpy.data.actions.remove(baked)

    _export_scene(context, arm, helper, write)


def export_gltf(context, arm, filepath: str, helper: _ExportBase | None = None) -> None:
    """glTF binary (.glb): the rig, its meshes and the animation as Blender shows it, sampled at every
    frame of the scene's range (one animation)."""

    def write():
        bpy.ops.export_scene.gltf(
            filepath=filepath,
            export_format="GLB",
            use_selection=True,
            export_animations=True,
            export_animation_mode="SCENE",
            export_force_sampling=True,
            export_frame_range=True,
            export_bake_animation=True,
        )

    _export_scene(context, arm, helper, write)


class VMCLIP_OT_export_gltf(_ExportBase, bpy.types.Operator, ExportHelper):
    """Export the rig with its meshes and the animation as glTF binary (.glb)"""

    bl_idname = "vmclip.export_gltf"
    bl_label = "Export glTF"
    filename_ext = ".glb"
    filter_glob: StringProperty(default="*.glb", options={"HIDDEN"})

    poll = classmethod(_export_poll)

    def execute(self, context):
        arm = self._armature(context)
        if arm is None:
            return {"CANCELLED"}
        try:
            export_gltf(context, arm, self.filepath, self)
        except (RuntimeError, OSError, TypeError) as exc:
            self.report({"ERROR"}, f"glTF export failed: {exc}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Exported {os.path.basename(self.filepath)}")
        return {"FINISHED"}


class VMCLIP_OT_export_bvh(_ExportBase, bpy.types.Operator, ExportHelper):
    """Export the armature's animation as BVH (scene frame range)"""

    bl_idname = "vmclip.export_bvh"
    bl_label = "Export BVH"
    filename_ext = ".bvh"
    filter_glob: StringProperty(default="*.bvh", options={"HIDDEN"})

    poll = classmethod(_export_poll)

    def execute(self, context):
        arm = self._armature(context)
        if arm is None:
            return {"CANCELLED"}
        saved = self._select_only(context, [arm])
        scene = context.scene
        try:
            bpy.ops.export_anim.bvh(
                filepath=self.filepath,
                frame_start=scene.frame_start,
                frame_end=scene.frame_end,
                rotate_mode="NATIVE",
                root_transform_only=True,
            )
        except (RuntimeError, OSError) as exc:
            self.report({"ERROR"}, f"BVH export failed: {exc}")
            return {"CANCELLED"}
        finally:
            self._restore(context, saved)
        self.report({"INFO"}, f"Exported {os.path.basename(self.filepath)}")
        return {"FINISHED"}


class _EditOperator(_BackendOperator):
    """Regenerate around the artist's edits: the rig's motion (as it shows, tweaks included) becomes
    constraints on a new `generate_motion` request; the reply is keyed as a new take."""

    keeps_outside = False

    @classmethod
    def poll(cls, context):
        if not super().poll(context):
            return False
        if animated_armature(context) is None:
            cls.poll_message_set("Generate a motion first")
            return False
        return True

    def constraints(self, context, arm) -> dict:
        raise NotImplementedError

    def start_job(self, context) -> backend.Job:
        arm = animated_armature(context)
        if arm is None:
            raise backend.InputProblem("Generate a motion first: the panel's rig has no generated motion")
        settings, scene = _settings(context), context.scene
        prompt = prompt_of(context)
        target_map(context)  # a rig that cannot take the motion stops here
        try:
            cons = self.constraints(context, arm)
        except regenerate.EditProblem as exc:
            raise backend.InputProblem(str(exc)) from None
        fps = scene.render.fps / scene.render.fps_base
        n = len(cons["mask"])
        seed = int(settings.seed)
        self._request = {"prompt": prompt, "seed": seed, "fps": fps, "constraints": cons}
        client = backend.make_client(preferences(context))

        def work(client, report, job_id):
            return client.generate_motion(
                prompt, n / fps, seed, fps, constraints=cons, job_id=job_id, on_progress=report
            )

        return backend.Job(self.label, client, work)

    def finish(self, context, motion) -> None:
        arm = animated_armature(context)
        cons = self._request["constraints"]
        if len(motion.poses) != len(cons["mask"]):
            raise backend.InputProblem(
                f"the backend sent {len(motion.poses)} frames for a {len(cons['mask'])}-frame motion"
            )
        if self.keeps_outside:  # the frames outside the range are the old take's, exactly
            keep = cons["mask"].all(-1) & ~self._pinned
            poses, trans = regenerate.splice(motion.poses, motion.trans, self._base[0], self._base[1], keep)
            motion = backend.protocol_module().MotionPayload(poses, trans, motion.fps, text=motion.text)
        held = cons["mask"].all(-1)  # (whole poses the artist fixed: planting leaves them as they are)
        text = key_take_on(context, arm, motion, self._request, self.label, held if held.any() else None)
        removed = _drop_tweaks(arm, self._tweak_frames_taken(context))
        if removed:
            text += f"; {removed} tweak key(s) now held by the take"
        self.report({"INFO"}, text)
        set_status(context, text, progress=1.0)

    def _tweak_frames_taken(self, context) -> set:
        """Frames whose tweak keys the new take now holds (removed from the tweak layer)."""
        return set()


def key_take_on(context, arm, motion, request, label: str, hold=None) -> str:
    """Key a motion on the panel's rig (SMPL-24 or mapped) as a new take (`hold`: frames spliced from
    the current take, kept exactly); a report line."""
    name = f"VMCLIP {label}: {request['prompt'][:40]}"
    if rig.is_smpl_armature(arm):
        action, planted = smpl_take(context, arm, motion, name, hold)
        note = "keyed on the SMPL-24 rig" + f"; {planted}" * bool(planted)
    else:
        rm = target_map(context)
        plant = _settings(context).plant_feet
        action, note = targets.key_motion(context, arm, rm, motion, name, plant=plant, hold=hold)
    keys = make_take(context, arm, action, motion, request)
    return f"{label}: new take '{action.name}' ({len(motion.poses)} frames); {note}; {keys}"


def _drop_tweaks(arm, frames: set) -> int:
    """Remove the tweak layer's keys on `frames` (the new take holds those poses already)."""
    ad = arm.animation_data
    if not frames or ad is None or ad.action is None or not ad.action.get("vmclip_tweak"):
        return 0
    removed = 0
    for fc in compat.action_fcurves(ad.action, arm):
        for k in reversed(list(fc.keyframe_points)):
            if int(round(k.co[0])) in frames:
                fc.keyframe_points.remove(k)
                removed += 1
    return removed


class VMCLIP_OT_regenerate_range(_EditOperator, bpy.types.Operator):
    """Generate the preview range (or the selected keys' range) anew from the prompt, keeping every
    frame outside it and the poses keyed on the tweak layer inside it"""

    bl_idname = "vmclip.regenerate_range"
    bl_label = "Regenerate Range"
    label = "Regenerate Range"
    keeps_outside = True

    def constraints(self, context, arm) -> dict:
        first, last = regenerate.edit_range(context, arm)
        start = context.scene.frame_start
        poses, trans = regenerate.sample(context, arm)
        self._base = regenerate.sample(context, arm, with_tweaks=False)
        pinned = [f - start for f in regenerate.tweak_frames(arm) if first <= f <= last]
        self._pinned = np.zeros(len(poses), bool)
        self._pinned[pinned] = True
        self._range = (first, last)
        return regenerate.range_constraints(poses, trans, first - start, last - start, pinned)

    def _tweak_frames_taken(self, context) -> set:
        start = context.scene.frame_start
        return {start + int(t) for t in np.flatnonzero(self._pinned)}


class VMCLIP_OT_inbetween(_EditOperator, bpy.types.Operator):
    """Generate the motion between the key poses on the tweak layer (they are held, the rest is new)"""

    bl_idname = "vmclip.inbetween"
    bl_label = "In-between"
    label = "In-between"

    def constraints(self, context, arm) -> dict:
        start = context.scene.frame_start
        poses, trans = regenerate.sample(context, arm)
        self._keys = [f - start for f in regenerate.tweak_frames(arm)]
        return regenerate.key_constraints(poses, trans, self._keys)

    def _tweak_frames_taken(self, context) -> set:
        return {context.scene.frame_start + t for t in self._keys}


class VMCLIP_OT_follow_path(_EditOperator, bpy.types.Operator):
    """Generate the motion again with the root walking along the path curve (its ground path)"""

    bl_idname = "vmclip.follow_path"
    bl_label = "Follow Path"
    label = "Follow Path"

    def constraints(self, context, arm) -> dict:
        scene = context.scene
        ground = regenerate.curve_ground_path(context, _settings(context).path_curve, arm)
        return regenerate.path_constraints(scene.frame_end - scene.frame_start + 1, ground)


def _rig_in_panel(context):
    arm = _settings(context).armature
    return arm if arm is not None and not rig.is_smpl_armature(arm) else None


class VMCLIP_OT_map_rig(bpy.types.Operator):
    """Map the rig's bones to the 24 SMPL roles by name and structure (fills the mapping table)"""

    bl_idname = "vmclip.map_rig"
    bl_label = "Map Bones"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        if _rig_in_panel(context) is None:
            cls.poll_message_set("Pick a humanoid armature as the Rig first")
            return False
        return True

    def execute(self, context):
        settings, arm = _settings(context), _rig_in_panel(context)
        try:
            rm = targets.auto_table(settings, arm)
        except rigmap.RigProblem as exc:  # not a humanoid: the table stays as it was
            self.report({"ERROR"}, str(exc))
            set_status(context, str(exc), error=True)
            return {"CANCELLED"}
        missing = [r for r in rigmap.REQUIRED if r not in rm.bones]
        if missing:
            text = f"'{arm.name}': no bone found for {', '.join(missing)}: pick them in the table"
            self.report({"WARNING"}, text)
        else:
            unsure = [r for r in rm.unsure if r in rm.bones]
            text = f"Mapped {len(rm.bones)} of 24 roles on '{arm.name}'"
            text += f"; check {', '.join(unsure)}" if unsure else ""
            self.report({"INFO"}, text)
        set_status(context, text, error=bool(missing))
        return {"FINISHED"}


class VMCLIP_OT_save_rig_map(bpy.types.Operator):
    """Save the mapping table as a preset, to map rigs with the same bone names"""

    bl_idname = "vmclip.save_rig_map"
    bl_label = "Save Bone Map Preset"

    name: StringProperty(name="Name", default="My rig")

    def invoke(self, context, event):
        return context.window_manager.invoke_props_dialog(self)

    def execute(self, context):
        try:
            path = targets.save_preset(_settings(context), self.name)
        except (ValueError, OSError) as exc:
            self.report({"ERROR"}, f"Preset not saved: {exc}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Saved bone map preset {path}")
        return {"FINISHED"}


def _preset_items(_self, _context):
    return [(name, name, "") for name in targets.presets()] or [("", "(no presets)", "")]


class VMCLIP_OT_load_rig_map(bpy.types.Operator):
    """Fill the mapping table from a saved preset"""

    bl_idname = "vmclip.load_rig_map"
    bl_label = "Load Bone Map Preset"
    bl_options = {"REGISTER", "UNDO"}
    bl_property = "preset"

    preset: bpy.props.EnumProperty(name="Preset", items=_preset_items)

    @classmethod
    def poll(cls, context):
        return _rig_in_panel(context) is not None

    def invoke(self, context, event):
        context.window_manager.invoke_search_popup(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        if not self.preset:
            self.report({"ERROR"}, "No bone map presets saved yet")
            return {"CANCELLED"}
        path = os.path.join(targets.preset_dir(), f"{self.preset}.json")
        try:
            n = targets.load_preset(_settings(context), _rig_in_panel(context), path)
        except (ValueError, rigmap.RigProblem) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Loaded {n} roles from '{self.preset}'")
        return {"FINISHED"}


CLASSES = (
    VMCLIP_OT_generate_motion,
    VMCLIP_OT_bake_video,
    VMCLIP_OT_check_connection,
    VMCLIP_OT_cancel,
    VMCLIP_OT_add_images,
    VMCLIP_OT_remove_image,
    VMCLIP_OT_export_fbx,
    VMCLIP_OT_export_gltf,
    VMCLIP_OT_export_bvh,
    VMCLIP_OT_regenerate_range,
    VMCLIP_OT_inbetween,
    VMCLIP_OT_follow_path,
    VMCLIP_OT_map_rig,
    VMCLIP_OT_save_rig_map,
    VMCLIP_OT_load_rig_map,
)


def _drop_active_job() -> None:
    job = backend.active_job()
    if job is not None:  # do not leave a worker talking to the backend for a scene that is gone
        job.cancel()
        backend.ACTIVE["job"] = None


@bpy.app.handlers.persistent
def _on_load_pre(*_args) -> None:
    # Loading a file removes running modal operators; without this the panel would stay "busy".
    _drop_active_job()


@bpy.app.handlers.persistent
def _on_load_post(*_args) -> None:
    state = getattr(bpy.context.window_manager, "vmclip_state", None)
    if state is not None:
        state.busy, state.progress = False, 0.0


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.app.handlers.load_pre.append(_on_load_pre)
    bpy.app.handlers.load_post.append(_on_load_post)


def unregister() -> None:
    _drop_active_job()
    hooks = bpy.app.handlers
    for handlers, fn in ((hooks.load_pre, _on_load_pre), (hooks.load_post, _on_load_post)):
        if fn in handlers:
            handlers.remove(fn)
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
