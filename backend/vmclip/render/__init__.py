"""Renderer: re-pose the photographed person frame by frame (transformation flow) and bake the video.

Public API (imported lazily, so `import vmclip.render` stays light):
- `animate(person, motion, out_path, *, size=512, progress=None, cancel=None, lwg_checkpoint=None,
  gif=None, frames_dir=None) -> Path` (MP4, written atomically)
- `render_frames(person, motion, *, size=512, ...) -> Iterator[np.ndarray]` (RGB uint8 frames)
- `get_rasterizer()` (the per-process OpenGL rasteriser), `RenderWarning`, `RenderCancelled`
- `prepare_example()` / `example_paths()` (the project's own example person, rendered at set-up)

Modules: `pipeline` (scene, frames, video; the `Person`/`PhotoView` protocols it reads),
`retarget` (the motion placed in the photo's world), `camera` (fixed or following camera),
`source_view` (one prepared photo),
`fill` (colour where no photo saw the surface), `flow` (`FlowWarper`: the per-frame flow),
`warp` (`Flow`, `Candidate`, the warp), `regions` (body regions, mirror map), `raster` (OpenGL).
Camera and projection: `vmclip.geometry`.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "animate": "vmclip.render.pipeline",
    "render_frames": "vmclip.render.pipeline",
    "build_scene": "vmclip.render.pipeline",
    "RenderWarning": "vmclip.render.pipeline",
    "RenderCancelled": "vmclip.render.pipeline",
    "get_rasterizer": "vmclip.render.raster",
    "prepare_example": "vmclip.render.example",
    "example_paths": "vmclip.render.example",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'vmclip.render' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
