"""Limits shared by the CLI and the server, so that both accept the same motions."""

from __future__ import annotations

# Longest motion that is rendered: 5 minutes at 30 fps, already about 8 minutes of rendering at the
# renderer's ~19 frames per second (more on a CPU). A longer file is almost always a mistake (a mocap
# take at 120 fps, the wrong file), so `vmclip animate --motion`, `vmclip client render --motion` and
# the server's `render` all refuse it up front, naming this number.
MAX_MOTION_FRAMES = 9000

# Photos of one person per analysis or render: the wire protocol's limit (1..8 `image` frames), the
# CLI's too. Each photo adds a fit and a source to every frame's flow.
MAX_IMAGES = 8
# The video's camera (`vmclip animate --camera`, the render request's `options.camera`): one that
# follows the person (the default) or the first photo's, fixed.
CAMERA_MODES = ("follow", "fixed")
