"""Person analysis: from photos of one person to pose, mask, fitted body, camera, background plate and
the avatar's texture atlas.

Public API (imported lazily, so `import vmclip.person` stays light):
- `analyze(images, *, fit=True, progress=None, texture=True) -> PersonAnalysis`
- `PersonAnalysis` (shape shared by all views, `views: list[ViewFit]`, `texture` (the atlas),
  `avatar_texture()`, `save_json`, `load_json`)
- `build_texture(body, shape, views)`: the atlas over the body's UV layout (`vmclip.person.texture`)
- `ViewFit`, `Camera`
- `load_body_model(kind="anny", device=None) -> BodyModel` (Anny on the SMPL-24 skeleton; SMPL/SMPL-X)
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "analyze": "vmclip.person.analysis",
    "PersonAnalysis": "vmclip.person.analysis",
    "ViewFit": "vmclip.person.analysis",
    "Camera": "vmclip.person.analysis",
    "load_image": "vmclip.person.images",
    "load_body_model": "vmclip.person.body",
    "build_texture": "vmclip.person.texture",
    "BodyModel": "vmclip.person.body",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'vmclip.person' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
