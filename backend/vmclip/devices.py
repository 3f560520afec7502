"""The one place where a torch device is chosen at run time.

Every stage that runs torch (text encoder, text-to-motion, body fit, LWGAN refinement) asks here, so
`--device` means the same thing everywhere and a GPU box needs no code change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vmclip.errors import InputError

if TYPE_CHECKING:  # importing this module must not import torch
    import torch


def choose_device(requested: object = None) -> torch.device:
    """`None` or "auto": CUDA when torch sees a GPU, else the CPU; otherwise the named device.

    A device that torch does not know, or CUDA asked for where there is none, is an `InputError`
    (one line, exit 2), never a silent fall-back to the CPU.
    """
    import torch

    if isinstance(requested, torch.device):
        requested = str(requested)
    if requested is None or requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(requested, str):
        raise InputError(f"device must be a name such as cpu, cuda or cuda:1, not {requested!r}")
    try:
        device = torch.device(requested)
    except (RuntimeError, ValueError):
        raise InputError(f"unknown torch device {requested!r}; use cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"device {requested!r} asked for, but torch sees no CUDA GPU on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InputError(
                f"device {requested!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s)"
            )
    return device


def native_bf16(device: torch.device) -> bool:
    """Whether bfloat16 autocast is fast on `device`: a CUDA GPU that supports it, or a CPU with
    native bf16 kernels (oneDNN: AVX-512 BF16 / AMX). Elsewhere PyTorch emulates it: on an AVX2-only
    CPU a transformer layer's step took 6.5x as long as in float32."""
    import torch

    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type != "cpu":
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # (a build without oneDNN)
        return False
