"""CLIP text tower loader and BPE tokeniser, on a tiny random model saved like OpenAI's archive."""

import gzip
from collections import OrderedDict

import pytest
import torch
import torch.nn as nn
from vmclip.errors import MissingAssetError
from vmclip.text import load_text_encoder
from vmclip.text.bpe import ClipBPE, byte_symbols
from vmclip.text.clip_text import ClipTextEncoder

MERGES = ["w a", "l k</w>", "wa lk</w>", "r u", "ru n</w>", "h a", "n d</w>", "ha nd</w>", "t h", "th e</w>"]


def write_vocab(path):
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write("#version: test\n" + "\n".join(MERGES) + "\n")
    return path


class _Block(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads)
        self.ln_1 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            OrderedDict(
                [
                    ("c_fc", nn.Linear(width, width * 4)),
                    ("gelu", _QuickGELU()),
                    ("c_proj", nn.Linear(width * 4, width)),
                ]
            )
        )
        self.ln_2 = nn.LayerNorm(width)

    def forward(self, x, mask):
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=mask)[0]
        return x + self.mlp(self.ln_2(x))


class _QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class _Transformer(nn.Module):
    def __init__(self, width, layers, heads):
        super().__init__()
        self.resblocks = nn.ModuleList([_Block(width, heads) for _ in range(layers)])

    def forward(self, x, mask):
        for block in self.resblocks:
            x = block(x, mask)
        return x


class TinyClip(nn.Module):
    """Same parameter names as OpenAI's CLIP (text side plus a token visual part), tiny widths."""

    def __init__(self, vocab, width=128, layers=2, ctx=77, embed=48):
        super().__init__()
        torch.manual_seed(0)
        self.token_embedding = nn.Embedding(vocab, width)
        self.positional_embedding = nn.Parameter(torch.randn(ctx, width) * 0.1)
        self.transformer = _Transformer(width, layers, width // 64)
        self.ln_final = nn.LayerNorm(width)
        self.text_projection = nn.Parameter(torch.randn(width, embed) * width**-0.5)
        self.logit_scale = nn.Parameter(torch.tensor(4.6))
        self.visual = nn.Linear(4, 4)
        for p in self.parameters():  # random LayerNorm parameters too, so they are really read
            p.data.add_(torch.randn_like(p) * 0.05)
        self.register_buffer("mask", torch.full((ctx, ctx), float("-inf")).triu(1))

    def forward(self, text):
        x = self.token_embedding(text) + self.positional_embedding
        x = self.transformer(x.permute(1, 0, 2), self.mask).permute(1, 0, 2)
        x = self.ln_final(x)
        return x[torch.arange(x.shape[0]), text.argmax(dim=-1)] @ self.text_projection


@pytest.fixture()
def clip_files(tmp_path):
    vocab = write_vocab(tmp_path / "bpe_simple_vocab_16e6.txt.gz")
    n_tokens = len(ClipBPE(vocab).encoder)
    model = TinyClip(n_tokens).eval()
    ckpt = tmp_path / "ViT-B-32.pt"
    torch.jit.save(torch.jit.script(model), str(ckpt))
    return ckpt, vocab, model


def test_bpe_merges_and_layout(tmp_path):
    bpe = ClipBPE(write_vocab(tmp_path / "v.txt.gz"))
    assert len(bpe.encoder) == 512 + len(MERGES) + 2
    walk, hand = bpe.encoder["walk</w>"], bpe.encoder["hand</w>"]
    assert bpe.encode("Walk  the HAND") == [walk, bpe.encoder["the</w>"], hand]
    # Unknown words fall back to byte symbols; the last carries the end-of-word mark.
    assert bpe.encode("zq") == [bpe.encoder["z"], bpe.encoder["q</w>"]]
    assert bpe.encode("é") == [bpe.encoder[byte_symbols()[0xC3]], bpe.encoder[byte_symbols()[0xA9] + "</w>"]]
    row = bpe("walk", context_length=8)[0]
    assert row == [bpe.sot, walk, bpe.eot, 0, 0, 0, 0, 0]
    long_row = bpe("walk " * 20, context_length=8)[0]
    assert len(long_row) == 8 and long_row[-1] == bpe.eot


def test_loader_matches_reference_forward(clip_files):
    ckpt, vocab, model = clip_files
    enc = ClipTextEncoder(ckpt, vocab, device="cpu")
    assert (enc.dim, enc.width, enc.layers, enc.heads) == (48, 128, 2, 2)
    texts = ["walk the hand", "run", "a person walks and runs"]
    got = enc.encode(texts)
    ids = torch.tensor(enc.tokenizer(texts), dtype=torch.long)
    with torch.no_grad():
        want = torch.nn.functional.normalize(model(ids), dim=-1)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(got.norm(dim=-1), torch.ones(3))


def test_load_text_encoder_clip_and_missing_files(clip_files, tmp_path, monkeypatch):
    ckpt, vocab, _ = clip_files
    enc = load_text_encoder("clip", device="cpu", clip_path=ckpt, bpe_path=vocab)
    assert enc.encode(["run"]).shape == (1, 48)
    with pytest.raises(MissingAssetError, match="CLIP ViT-B/32 weights not found"):
        ClipTextEncoder(tmp_path / "absent.pt", vocab)
    monkeypatch.delenv("VMCLIP_CLIP_BPE", raising=False)
    with pytest.raises(MissingAssetError, match="bpe_simple_vocab_16e6"):
        ClipTextEncoder(ckpt, tmp_path / "absent.txt.gz")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(MissingAssetError, match="not a CLIP checkpoint"):
        ClipTextEncoder(junk, vocab)
