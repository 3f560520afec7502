"""OpenAI CLIP's text tower, loaded from the user's checkpoint with torch alone.

The `clip` package imports torchvision, which does not import beside the CPU torch used here, so we
read the checkpoint (the TorchScript archive `clip.load` caches as ~/.cache/clip/ViT-B-32.pt, or a
plain state dict) and run the text transformer ourselves: token + position embeddings, pre-norm
residual blocks with causal self-attention and QuickGELU MLPs, final LayerNorm, the end-of-text
token's features times `text_projection`. Sizes are read from the tensors (heads = width / 64, as
in CLIP). Tokens come from `ClipBPE`. Nothing is downloaded.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

from vmclip.errors import MissingAssetError
from vmclip.text.bpe import ClipBPE

DEFAULT_NAME = "ViT-B-32.pt"


def default_clip_path() -> Path:
    """Where the `clip` package caches ViT-B/32 (`clip.load` downloads into ~/.cache/clip)."""
    return Path(os.path.expanduser("~")) / ".cache" / "clip" / DEFAULT_NAME


def find_clip_checkpoint(path: str | os.PathLike | None = None) -> Path:
    cand = Path(path) if path else Path(os.environ.get("VMCLIP_CLIP_CHECKPOINT") or default_clip_path())
    if not cand.is_file():
        raise MissingAssetError(
            f"CLIP ViT-B/32 weights not found at {cand}; CLIP is optional: put ViT-B-32.pt there (the file "
            "`clip.load('ViT-B/32')` caches), set VMCLIP_CLIP_CHECKPOINT, or use the default encoder "
            "'minilm'"
        )
    return cand


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        with warnings.catch_warnings():  # torch marks TorchScript deprecated; OpenAI ships it that way
            warnings.simplefilter("ignore", DeprecationWarning)
            scripted = torch.jit.load(str(path), map_location="cpu")
        return {k: v.detach() for k, v in scripted.state_dict().items()}
    except RuntimeError:
        pass  # not TorchScript: try a plain state dict below
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same one-line message
        raise MissingAssetError(
            f"{path}: not a CLIP checkpoint (TorchScript archive or state dict): {exc}"
        ) from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise MissingAssetError(f"{path}: not a CLIP checkpoint (no state dict inside)")
    return state


class ClipTextEncoder:
    """CLIP text features: `encode(texts) -> (N, embed_dim)` float32, rows L2-normalised."""

    name = "clip"

    def __init__(
        self,
        checkpoint: str | os.PathLike | None = None,
        bpe_path: str | os.PathLike | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        path = find_clip_checkpoint(checkpoint)
        self.tokenizer = ClipBPE(bpe_path)
        self.device = torch.device(device or "cpu")
        state = _read_state_dict(path)
        needed = ["token_embedding.weight", "positional_embedding", "ln_final.weight", "text_projection"]
        missing = [k for k in needed if k not in state]
        if missing:
            raise MissingAssetError(f"{path}: not a CLIP checkpoint (missing {missing})")
        # Only the text tower (keys outside "visual."), in float32 (the archive stores fp16).
        self.w = {
            k: v.float().to(self.device)
            for k, v in state.items()
            if not k.startswith("visual.") and v.is_floating_point()
        }
        self.width = int(self.w["ln_final.weight"].shape[0])
        self.heads = max(1, self.width // 64)
        blocks = {m.group(1) for k in self.w if (m := re.match(r"transformer\.resblocks\.(\d+)\.", k))}
        self.layers = len(blocks)
        self.context_length = int(self.w["positional_embedding"].shape[0])
        self.dim = int(self.w["text_projection"].shape[1])
        vocab = int(self.w["token_embedding.weight"].shape[0])
        if vocab < len(self.tokenizer.encoder):
            raise MissingAssetError(
                f"{path}: vocabulary of {vocab} tokens is smaller than the BPE file's "
                f"{len(self.tokenizer.encoder)}; checkpoint and vocabulary do not match"
            )
        self.causal = torch.full(
            (self.context_length, self.context_length), float("-inf"), device=self.device
        ).triu_(1)

    def _block(self, x: torch.Tensor, i: int) -> torch.Tensor:
        w, p = self.w, f"transformer.resblocks.{i}"
        n, length, d = x.shape
        hd = d // self.heads
        h = F.layer_norm(x, (d,), w[f"{p}.ln_1.weight"], w[f"{p}.ln_1.bias"])
        q, k, v = F.linear(h, w[f"{p}.attn.in_proj_weight"], w[f"{p}.attn.in_proj_bias"]).chunk(3, dim=-1)
        q, k, v = (t.view(n, length, self.heads, hd).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-1, -2)) / hd**0.5 + self.causal[:length, :length]
        ctx = (att.softmax(-1) @ v).transpose(1, 2).reshape(n, length, d)
        x = x + F.linear(ctx, w[f"{p}.attn.out_proj.weight"], w[f"{p}.attn.out_proj.bias"])
        h = F.layer_norm(x, (d,), w[f"{p}.ln_2.weight"], w[f"{p}.ln_2.bias"])
        h = F.linear(h, w[f"{p}.mlp.c_fc.weight"], w[f"{p}.mlp.c_fc.bias"])
        h = h * torch.sigmoid(1.702 * h)  # QuickGELU
        return x + F.linear(h, w[f"{p}.mlp.c_proj.weight"], w[f"{p}.mlp.c_proj.bias"])

    @torch.no_grad()
    def encode_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        """Unnormalised text features for token ids (N, context_length), as CLIP's encode_text."""
        ids = ids.to(self.device)
        x = self.w["token_embedding.weight"][ids] + self.w["positional_embedding"][: ids.shape[1]]
        for i in range(self.layers):
            x = self._block(x, i)
        x = F.layer_norm(x, (self.width,), self.w["ln_final.weight"], self.w["ln_final.bias"])
        # The end-of-text token has the largest id in every row.
        feats = x[torch.arange(len(ids), device=ids.device), ids.argmax(dim=-1)]
        return feats @ self.w["text_projection"]

    @torch.no_grad()
    def encode(self, texts: list[str] | str) -> torch.Tensor:
        if isinstance(texts, str):
            texts = [texts]
        if not texts:
            return torch.zeros(0, self.dim, device=self.device)
        ids = torch.tensor(self.tokenizer(list(texts), self.context_length), dtype=torch.long)
        return F.normalize(self.encode_tokens(ids).float(), dim=-1)
