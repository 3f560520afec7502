"""Load MotionCLIP's published checkpoints (e.g. `paintings_model/checkpoint_0100.pth.tar`).

Their files are `torch.save(model.state_dict())` of the MOTIONCLIP module: keys `encoder.*` and
`decoder.*` as in our `MotionClipModel`, plus the frozen CLIP (`clip_model.*`) and the SMPL layer
(`rotation2xyz.*`), which we drop. Sizes come from the tensors; the head count (not visible in the
weights) and the normalisation flags come from the run's `opt.yaml` beside the checkpoint when present,
else MotionCLIP's defaults (4 heads). Their data ran at 30 fps in 60-frame windows. Their latent is
CLIP's 512-d text space, so generation with such a model needs the CLIP text encoder.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from vmclip.errors import InputError
from vmclip.t2m.model import NFEATS, NJOINTS, ModelConfig, MotionClipModel

DROP_PREFIXES = ("clip_model.", "rotation2xyz.")


def _read_opt(folder: Path) -> dict:
    """The few scalar options we need from MotionCLIP's `opt.yaml` (flat `key: value` lines)."""
    path = folder / "opt.yaml"
    if not path.is_file():
        return {}
    opts: dict = {}
    for line in path.read_text(errors="replace").splitlines():
        m = re.match(r"^([A-Za-z_]+):\s*(.*?)\s*$", line)
        if not m:
            continue
        key, val = m.groups()
        if val.lower() in ("true", "false"):
            opts[key] = val.lower() == "true"
        elif re.fullmatch(r"-?\d+", val):
            opts[key] = int(val)
        elif re.fullmatch(r"-?\d*\.\d+(e-?\d+)?", val):
            opts[key] = float(val)
        else:
            opts[key] = val.strip("'\"")
    return opts


def _count_layers(state: dict, prefix: str) -> int:
    return len({m.group(1) for k in state if (m := re.match(re.escape(prefix) + r"\.layers\.(\d+)\.", k))})


def load_motionclip_checkpoint(
    path: str | os.PathLike, num_heads: int | None = None, device: str | torch.device = "cpu"
) -> MotionClipModel:
    """Build a `MotionClipModel` from a MotionCLIP-format state dict (strict on encoder/decoder keys)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such MotionCLIP checkpoint")
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - one line for any unreadable file
        raise InputError(f"{path}: not a readable PyTorch checkpoint ({exc})") from None
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or "encoder.skelEmbedding.weight" not in state:
        raise InputError(f"{path}: not a MotionCLIP checkpoint (no encoder.skelEmbedding.weight)")
    state = {
        k: v
        for k, v in state.items()
        if not k.startswith(DROP_PREFIXES) and not k.endswith("sequence_pos_encoder.pe")
    }
    emb = state["encoder.skelEmbedding.weight"]
    if emb.shape[1] != NJOINTS * NFEATS:
        raise InputError(
            f"{path}: motion features are {emb.shape[1]} wide, expected {NJOINTS}x{NFEATS} "
            "(SMPL 6D rotations + translation)"
        )
    opt = _read_opt(path.parent)
    cfg = ModelConfig(
        latent_dim=int(emb.shape[0]),
        width=None,  # MotionCLIP: transformer width = latent size
        ff_size=int(state["encoder.seqTransEncoder.layers.0.linear1.weight"].shape[0]),
        num_heads=int(num_heads or opt.get("num_heads", 4)),
        enc_layers=_count_layers(state, "encoder.seqTransEncoder"),
        dec_layers=_count_layers(state, "decoder.seqTransDecoder"),
        dropout=float(opt.get("dropout", 0.1)),
        activation=str(opt.get("activation", "gelu")),
        num_classes=int(state["encoder.muQuery"].shape[0]),
        normalize_encoder_output=bool(opt.get("normalize_encoder_output", False)),
        normalize_decoder_input=bool(opt.get("normalize_decoder_input", False)),
        fps=30.0,
        max_frames=int(opt.get("num_frames", 60)),
        text_encoder="clip" if emb.shape[0] == 512 else "minilm",
        extra={"source": "motionclip", "checkpoint": path.name},
    )
    model = MotionClipModel(cfg)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        raise InputError(
            f"{path}: checkpoint does not match MotionCLIP's layout ({str(exc).splitlines()[-1].strip()})"
        ) from None
    if missing or unexpected:
        raise InputError(
            f"{path}: checkpoint does not match MotionCLIP's layout "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    return model.to(device).eval()
