"""Text to motion: a MotionCLIP-style model trained by the project and shipped with it.

Public API:
- `load_generator(device=None, encoder="minilm", checkpoint=None, model=None) -> Generator` (cached
  per process; `model`: "masked", the masked-token model, or "motionclip", the MotionCLIP-style model;
  None: DEFAULT_MODEL)
- `Generator.generate(prompt, seconds=4.0, seed=0, constraints=None, fps=30) -> Motion` (cleaned up)
- `generate_motion(prompt, seconds=4.0, seed=0, constraints=None) -> Motion`
- constraints: `vmclip.motion.constraints.MotionConstraints`, met by the model-independent
  `vmclip.t2m.constrain.finish_motion` (any generator can use it)
- `load_motionclip_checkpoint(path)` for MotionCLIP's published weights (use with encoder="clip")
"""

from __future__ import annotations

import functools
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from vmclip.assets import PACKAGE_ASSETS
from vmclip.errors import MissingAssetError

if TYPE_CHECKING:
    from vmclip.motion import Motion
    from vmclip.motion.constraints import MotionConstraints
    from vmclip.t2m.generate import Generator

WEIGHTS_DIR = PACKAGE_ASSETS / "t2m"
# The MotionCLIP-style model's weights per text encoder.
DEFAULT_WEIGHTS = {"minilm": WEIGHTS_DIR / "model.pt", "clip": WEIGHTS_DIR / "model_clip.pt"}
MASKED_WEIGHTS = (
    WEIGHTS_DIR / "masked.pt"
)  # the masked-token model (MiniLM): not shipped, trained by the user
MODELS = ("masked", "motionclip")
DEFAULT_MODEL = "motionclip"


def weights_path(
    encoder: str = "minilm", checkpoint: str | os.PathLike | None = None, model: str | None = None
) -> Path:
    """Explicit path, else $VMCLIP_T2M_CHECKPOINT, else the shipped weights of `model` (None:
    DEFAULT_MODEL; the masked-token model exists for MiniLM only, CLIP falls back to MotionCLIP's)."""
    if model is not None and model not in MODELS:
        raise MissingAssetError(f"no text-to-motion model {model!r}; choose one of {', '.join(MODELS)}")
    if checkpoint:
        return Path(checkpoint)
    if os.environ.get("VMCLIP_T2M_CHECKPOINT"):
        return Path(os.environ["VMCLIP_T2M_CHECKPOINT"])
    if (model or DEFAULT_MODEL) == "masked":
        if encoder == "minilm":
            if not MASKED_WEIGHTS.is_file() and model == "masked":
                raise MissingAssetError(
                    "the masked-token model's weights are not shipped; train them with "
                    "`vmclip train --model masked --out runs/masked` and pass "
                    "--checkpoint runs/masked/model.pt"
                )
            return MASKED_WEIGHTS
        if model == "masked":
            raise MissingAssetError(f"the masked-token model is trained for MiniLM only, not {encoder!r}")
    if encoder not in DEFAULT_WEIGHTS:
        raise MissingAssetError(f"no text-to-motion weights for encoder {encoder!r}")
    path = DEFAULT_WEIGHTS[encoder]
    if not path.is_file() and encoder == "clip":
        raise MissingAssetError(
            f"{path}: no CLIP-space text-to-motion weights are shipped; train them with "
            "`vmclip train --encoder clip` or pass a MotionCLIP checkpoint (VMCLIP_T2M_CHECKPOINT)"
        )
    return path


def require_weights_file(path: str | os.PathLike) -> Path:
    """`path` if it is a file, else the one-line error a user sees for missing weights: checked
    before the photos are analysed, so that a missing model fails in a second, not after them."""
    path = Path(path)
    if not path.is_file():
        raise MissingAssetError(f"{path}: text-to-motion weights not found (train them with `vmclip train`)")
    return path


@functools.lru_cache(maxsize=4)
def _load(device: str, encoder: str, path: str) -> Generator:
    from vmclip.t2m.generate import Generator

    return Generator.from_file(path, device=device, encoder=encoder)


# Server workers may ask at once: one load, not one per thread (each would hold its own copy).
_LOAD_LOCK = threading.Lock()


def load_generator(
    device: str | None = None,
    encoder: str = "minilm",
    checkpoint: str | os.PathLike | None = None,
    model: str | None = None,
) -> Generator:
    """The text-to-motion generator (model + text encoder), loaded once per process, device and
    weights file (the file as resolved now: $VMCLIP_T2M_CHECKPOINT may change between calls).
    `model` picks the shipped weights ("masked" or "motionclip"); a checkpoint's own format decides
    which kind of model it holds."""
    from vmclip.devices import choose_device

    dev = str(choose_device(device))
    path = str(weights_path(encoder, checkpoint, model))
    with _LOAD_LOCK:
        return _load(dev, encoder, path)


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
    "DEFAULT_MODEL",
    "DEFAULT_WEIGHTS",
    "MODELS",
    "Generator",
    "generate_motion",
    "load_generator",
    "load_motionclip_checkpoint",
    "require_weights_file",
    "weights_path",
]
