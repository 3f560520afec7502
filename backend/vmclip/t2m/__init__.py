"""Text to motion: a MotionCLIP-style model trained by the project and shipped with it.

Public API:
- `load_generator(device=None, encoder="minilm", checkpoint=None) -> Generator` (cached per process)
- `Generator.generate(prompt, seconds=4.0, seed=0, constraints=None, fps=30) -> Motion` (cleaned up)
- `generate_motion(prompt, seconds=4.0, seed=0, constraints=None) -> Motion`
- constraints: `vmclip.motion.constraints.MotionConstraints`, met by the model-independent
  `vmclip.t2m.constrain.finish_motion` (any generator can use it)
- `load_motionclip_checkpoint(path)` for MotionCLIP's published weights (use with encoder="clip")
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING

from vmclip.assets import PACKAGE_ASSETS
from vmclip.errors import MissingAssetError

if TYPE_CHECKING:
    from vmclip.motion import Motion
    from vmclip.motion.constraints import MotionConstraints
    from vmclip.t2m.generate import Generator

WEIGHTS_DIR = PACKAGE_ASSETS / "t2m"
DEFAULT_WEIGHTS = {"minilm": WEIGHTS_DIR / "model.pt", "clip": WEIGHTS_DIR / "model_clip.pt"}


def weights_path(encoder: str = "minilm", checkpoint: str | os.PathLike | None = None) -> Path:
    """Explicit path, else $VMCLIP_T2M_CHECKPOINT, else the shipped weights for the encoder."""
    if checkpoint:
        return Path(checkpoint)
    if os.environ.get("VMCLIP_T2M_CHECKPOINT"):
        return Path(os.environ["VMCLIP_T2M_CHECKPOINT"])
    if encoder not in DEFAULT_WEIGHTS:
        raise MissingAssetError(f"no text-to-motion weights for encoder {encoder!r}")
    path = DEFAULT_WEIGHTS[encoder]
    if not path.is_file() and encoder == "clip":
        raise MissingAssetError(
            f"{path}: no CLIP-space text-to-motion weights are shipped; train them with "
            "`vmclip train --encoder clip` or pass a MotionCLIP checkpoint (VMCLIP_T2M_CHECKPOINT)"
        )
    return path


@functools.lru_cache(maxsize=4)
def _load(device: str | None, encoder: str, checkpoint: str | None) -> Generator:
    from vmclip.t2m.generate import Generator

    return Generator.from_file(weights_path(encoder, checkpoint), device=device, encoder=encoder)


def load_generator(
    device: str | None = None, encoder: str = "minilm", checkpoint: str | os.PathLike | None = None
) -> Generator:
    """The text-to-motion generator (model + text encoder), loaded once per process."""
    return _load(device, encoder, str(checkpoint) if checkpoint else None)


def generate_motion(
    prompt: str, seconds: float = 4.0, seed: int = 0, constraints: MotionConstraints | None = None
) -> Motion:
    """Text -> SMPL-24 motion at 30 fps with the shipped model; `constraints` (one row per output
    frame, round(seconds x 30)) hold poses, joints and/or the root path."""
    return load_generator().generate(prompt, seconds=seconds, seed=seed, constraints=constraints)


def __getattr__(name: str):  # lazy: importing vmclip.t2m must not import torch
    if name == "Generator":
        from vmclip.t2m.generate import Generator

        return Generator
    if name == "load_motionclip_checkpoint":
        from vmclip.t2m.motionclip_ckpt import load_motionclip_checkpoint

        return load_motionclip_checkpoint
    raise AttributeError(name)


__all__ = [
    "DEFAULT_WEIGHTS",
    "Generator",
    "generate_motion",
    "load_generator",
    "load_motionclip_checkpoint",
    "weights_path",
]
