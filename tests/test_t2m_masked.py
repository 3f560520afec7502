"""The masked-token text-to-motion model on a small procedural data set with a tiny configuration:
features and their mirror, the training pack, seeded training, the shipped-format round trip,
generation (shapes, seeds, composition), constraints met through it, the `--model` switch, bad input.
The shipped weights are exercised by the evaluation and test_t2m_masked_shipped.py."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from vmclip.cli import main
from vmclip.devices import native_bf16
from vmclip.errors import InputError, MissingAssetError
from vmclip.motion import Motion, load_npz
from vmclip.motion import rotations as R
from vmclip.motion.constraints import MotionConstraints
from vmclip.t2m import DEFAULT_WEIGHTS, MASKED_WEIGHTS, weights_path
from vmclip.t2m.constrain import constraint_error_mm
from vmclip.t2m.data import canonicalize
from vmclip.t2m.generate import Generator
from vmclip.t2m.generate_masked import MaskedGenerator
from vmclip.t2m.pack import build_pack, load_pack
from vmclip.t2m.synthetic import write_synthetic_dataset
from vmclip.t2m.tokens import features_to_motion, mirror_permutation, motion_features
from vmclip.t2m.train_masked import MaskedOptions, train_masked

TINY = {
    "codes": 32,
    "code_dim": 16,
    "conv_width": 32,
    "width": 32,
    "layers": 1,
    "heads": 2,
    "ff_size": 64,
    "max_frames": 40,
}


def _opts(data, out, **kw) -> MaskedOptions:
    base = dict(
        tokenizer_steps=120,
        transformer_steps=60,
        tok_lr=2e-3,
        lr=2e-3,
        tok_batch=8,
        tok_frames=24,
        batch=8,
        warmup=5,
        log_every=20,
        quiet=True,
        threads=1,
        model=dict(TINY),
    )
    return MaskedOptions(data=data, out=out, **{**base, **kw})


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_synthetic_dataset(tmp_path_factory.mktemp("syn") / "processed", clips_per_label=4)


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("masked")
    info = train_masked(_opts(data, out))
    return out, info


@pytest.fixture(scope="module")
def gen(trained):
    torch.set_num_threads(1)
    return Generator.from_file(trained[0] / "model.pt", device="cpu")


def _random_motion(frames: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    rot = R.axis_angle_to_rotation_6d(torch.randn(frames, 24, 3, generator=g) * 0.6)
    trans = torch.cumsum(torch.randn(frames, 3, generator=g) * 0.04, 0) + torch.tensor([1.0, 0.9, -2.0])
    return rot, trans


def test_features_round_trip_to_the_canonical_motion() -> None:
    rot, trans = _random_motion(40, 0)
    back_rot, back_trans = features_to_motion(motion_features(rot, trans))
    want_rot, want_trans = canonicalize(rot[None], trans[None])
    mats = R.rotation_6d_to_matrix
    assert torch.allclose(mats(back_rot), mats(want_rot[0]), atol=1e-5)
    assert torch.allclose(back_trans, want_trans[0], atol=1e-5)


def test_feature_mirror_equals_the_mirrored_motion() -> None:
    rot, trans = _random_motion(30, 1)
    mirrored = Motion(rot.numpy(), trans.numpy(), 20.0).mirrored()
    index, sign = mirror_permutation()
    x = motion_features(rot, trans)
    want = motion_features(torch.from_numpy(mirrored.rot6d), torch.from_numpy(mirrored.trans))
    assert torch.allclose(x[:, index] * sign, want, atol=1e-5)
    assert not torch.allclose(x, want, atol=1e-3)  # the mirror is not the motion itself


def test_pack_holds_originals_with_mirrored_texts(data, trained) -> None:
    pack = load_pack(trained[0] / "pack.npz")
    clips = json.loads((data / "train.json").read_text())
    assert len(pack) == sum(not c["mirrored"] for c in clips)
    assert pack.feats.dtype == np.float16 and pack.feats.shape[1] == 148 and pack.fps == 20.0
    i = pack.labels.index("wave right hand")
    own = {pack.texts[t] for t in pack.text_ids[i]}
    mirror = {pack.texts[t] for t in pack.mirror_ids[i]}
    assert any("right" in t for t in own) and not any("right" in t for t in mirror)
    assert any("left" in t for t in mirror)


def test_training_logs_and_is_seeded(data, trained, tmp_path) -> None:
    out, info = trained
    rows = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    tok = [r["total"] for r in rows if r["phase"] == "tokenizer"]
    ce = [r["ce"] for r in rows if r["phase"] == "transformer"]
    assert len(tok) == 6 and tok[-1] < tok[0] and len(ce) == 3 and ce[-1] < ce[0]  # both learn
    assert info["tokenizer_steps"] == 120 and info["transformer_steps"] == 60
    hparams = json.loads((out / "hparams.json").read_text())
    assert hparams["config"]["codes"] == 32
    # bfloat16 only where native (emulated on an AVX2-only CPU: 6.5x slower); the run records which.
    assert hparams["bf16"] == native_bf16(torch.device("cpu"))
    again = train_masked(_opts(out / "pack.npz", tmp_path))
    a = torch.load(out / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "model.pt", weights_only=True)["state_dict"]
    assert again["transformer_steps"] == 60 and a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_loader_round_trip(gen, trained) -> None:
    assert isinstance(gen, MaskedGenerator) and gen.cfg.fps == 20.0
    saved = torch.load(trained[0] / "model.pt", weights_only=True)
    state = gen.model.state_dict()
    for k, v in saved["state_dict"].items():
        assert torch.equal(state[k], v.float()), k
    assert gen.known_description("a person walks forward") > 0.99  # a training description


def test_generation_shapes_and_seeds(gen, monkeypatch) -> None:
    a = gen.generate("a person walks forward", seconds=4.0, seed=3)
    b = gen.generate("a person walks forward", seconds=4.0, seed=3)
    assert a.rot6d.shape == (120, 24, 6) and a.trans.shape == (120, 3) and a.fps == 30.0
    assert np.array_equal(a.rot6d, b.rot6d) and np.array_equal(a.trans, b.trans)
    # Another seed samples other tokens. (The tiny test model's guided logits can be so peaked that
    # every seed at the shipped temperature takes the same few codes, depending on the CPU's
    # floating point during its 60 training steps: sampled hotter, the seed must show.)
    import vmclip.t2m.generate_masked as generate_masked

    monkeypatch.setattr(generate_masked, "TEMPERATURE", 3.0)
    hot = [gen.generate("a person walks forward", seconds=4.0, seed=s) for s in (3, 3, 4)]
    assert np.array_equal(hot[0].rot6d, hot[1].rot6d)
    assert not np.allclose(hot[0].rot6d, hot[2].rot6d)
    monkeypatch.undo()
    assert gen.generate("a person jumps", seconds=2.5, seed=0, fps=20).rot6d.shape == (50, 24, 6)
    long = gen.generate("a person walks forward", seconds=7.0, seed=0)  # several windows joined
    assert long.num_frames == 210 and np.isfinite(long.rot6d).all()


def test_composed_prompts(gen) -> None:
    for prompt in ("a person walks forward, then waves with the right hand", "a person walks while waving"):
        m, seams = gen.generate_with_seams(prompt, seconds=4.0, seed=0)
        assert m.num_frames == 120 and np.isfinite(m.trans).all()
    assert seams == [] or all(0 < s < 120 for s in seams)


def test_constraints_are_met_through_the_model(gen) -> None:
    ref = gen.generate("a person waves with the right hand", seconds=3.0, seed=7)
    mask = np.zeros(90, bool)
    mask[[0, 45, 89]] = True
    keys = MotionConstraints.create(ref.axis_angle(), ref.trans, mask)
    m = gen.generate("a person jumps in place", seconds=3.0, seed=1, constraints=keys)
    assert m.num_frames == 90 and constraint_error_mm(m, keys) < 1.0
    path = np.zeros((90, 25), bool)
    path[::10, 24] = True  # the root path alone
    t = np.linspace(0, 1, 90)
    trans = np.stack([np.sin(t * np.pi), np.full(90, 0.9), 1 - np.cos(t * np.pi)], -1).astype(np.float32)
    on_path = MotionConstraints.create(np.zeros((90, 24, 3), np.float32), trans, path)
    m = gen.generate("a person walks forward", seconds=3.0, seed=0, constraints=on_path)
    assert np.abs(m.trans[::10, [0, 2]] - trans[::10, [0, 2]]).max() < 0.01


def test_model_switch() -> None:
    assert weights_path(model="motionclip") == DEFAULT_WEIGHTS["minilm"]
    if MASKED_WEIGHTS.is_file():  # a user copied trained weights there
        assert weights_path(model="masked") == MASKED_WEIGHTS
    else:
        with pytest.raises(MissingAssetError, match="vmclip train --model masked"):
            weights_path(model="masked")
    assert weights_path(encoder="clip", checkpoint="x.pt", model="motionclip").name == "x.pt"
    with pytest.raises(MissingAssetError, match="no text-to-motion model"):
        weights_path(model="diffusion")
    with pytest.raises(MissingAssetError, match="MiniLM only"):
        weights_path(encoder="clip", model="masked")


def test_cli_with_a_masked_checkpoint(trained, tmp_path, capsys) -> None:
    out = tmp_path / "walk.npz"
    args = ["motion", "a person walks forward", "--seconds", "2", "--seed", "1", "-o", str(out)]
    assert main([*args, "--checkpoint", str(trained[0] / "model.pt")]) == 0
    assert load_npz(out).num_frames == 60
    with pytest.raises(SystemExit) as exc:
        main([*args, "--model", "diffusion"])
    assert exc.value.code == 2 and "invalid choice" in capsys.readouterr().err
    if not MASKED_WEIGHTS.is_file():  # not shipped: one line naming the training command, nothing written
        out.unlink()
        assert main([*args, "--model", "masked"]) == 2
        err = capsys.readouterr().err
        assert "vmclip train --model masked" in err and len(err.strip().splitlines()) == 1
        assert not out.exists()


def test_bad_input(gen, data, tmp_path) -> None:
    with pytest.raises(InputError, match="empty"):
        gen.generate("   ", seconds=3.0)
    with pytest.raises(InputError, match="seconds"):
        gen.generate("a person walks", seconds=30.0)
    with pytest.raises(InputError, match="not a training pack"):
        load_pack(tmp_path / "missing.npz")
    with pytest.raises(InputError, match="at least 1"):
        train_masked(_opts(data, tmp_path, tokenizer_steps=0))
    with pytest.raises(InputError, match="multiple of 4"):
        train_masked(_opts(data, tmp_path, model={**TINY, "max_frames": 42}))
    bad = tmp_path / "bad.npz"
    build_pack(data, bad)
    with pytest.raises(InputError, match="pack is 20 fps"):
        train_masked(_opts(bad, tmp_path, model={**TINY, "fps": 30.0}))


def test_held_tokens_are_kept_and_the_rest_filled(gen) -> None:
    model = gen.model
    text = gen.embed(["a person walks forward"]).repeat(2, 1)
    held = torch.full((2, 6), -1, dtype=torch.long)
    held[:, 0], held[1, 3] = 5, 7
    gens = [torch.Generator().manual_seed(s) for s in (0, 1)]
    out = model.sample(text, 6, gens, steps=4, held=held)
    assert out.shape == (2, 6) and (out[:, 0] == 5).all() and out[1, 3] == 7
    assert ((out >= 0) & (out < gen.cfg.codes)).all()  # nothing left masked


def test_started_from_a_trained_model_with_text_on_every_token(trained, data, tmp_path) -> None:
    """`--init` keeps the tokenizer as trained (0 tokenizer steps) and the every-token text map starts
    at zero, so before its first step the started model predicts exactly what the trained one did;
    training with text noise then moves only the transformer."""
    from vmclip.t2m.tokens import MaskedMotionModel, TokenConfig
    from vmclip.t2m.train_masked import _load_init, _start_from

    start = _load_init(trained[0] / "model.pt")
    cfg = TokenConfig(**{**start["config"], "text_every_token": True})
    model = MaskedMotionModel(cfg).eval()
    _start_from(model, start["state_dict"])
    old = Generator.from_file(trained[0] / "model.pt", device="cpu").model
    text = torch.nn.functional.normalize(torch.randn(2, cfg.latent_dim), dim=-1)
    ids = torch.randint(0, cfg.codes, (2, 6))
    keep = torch.tensor([True, False])
    with torch.no_grad():
        assert torch.allclose(model.transformer(text, ids, keep), old.transformer(text, ids, keep), atol=1e-4)
    out = tmp_path / "ft"
    train_masked(
        _opts(
            data,
            out,
            init=trained[0] / "model.pt",
            tokenizer_steps=0,
            text_noise=0.05,
            model={"text_every_token": True},
        )
    )
    tuned = Generator.from_file(out / "model.pt", device="cpu")
    assert tuned.cfg.text_every_token and tuned.model.transformer.text_add.weight.abs().max() > 0
    for name, value in tuned.model.tokenizer.state_dict().items():
        if "ema_" not in name:
            assert torch.allclose(value.float(), old.tokenizer.state_dict()[name].float(), atol=1e-3), name
    with pytest.raises(InputError, match="not found"):
        train_masked(_opts(data, tmp_path / "x", init=tmp_path / "missing.pt", tokenizer_steps=0))
    with pytest.raises(InputError, match="not a masked-token model"):
        torch.save({"format": "other"}, tmp_path / "other.pt")
        train_masked(_opts(data, tmp_path / "x", init=tmp_path / "other.pt", tokenizer_steps=0))
    with pytest.raises(InputError, match="other layer sizes"):
        train_masked(
            _opts(data, tmp_path / "x", init=trained[0] / "model.pt", tokenizer_steps=0, model={"width": 48})
        )


def test_conditioned_on_the_motionclip_latent(trained, data, tmp_path) -> None:
    """`condition="motionclip"`: the transformer trains on the shipped MotionCLIP-style model's latent
    of each window and generation draws that latent from the model's bank by the prompt; a model file
    made against another bank is refused."""
    from vmclip.t2m.latent_condition import bank_fingerprint, token_latents
    from vmclip.t2m.train_masked import ClipSampler, _mask_batch, clip_latents, clip_tokens

    out = tmp_path / "lat"
    train_masked(
        _opts(data, out, init=trained[0] / "model.pt", tokenizer_steps=0, model={"condition": "motionclip"})
    )
    gen = Generator.from_file(out / "model.pt", device="cpu")
    retriever = gen.retriever
    assert gen.cfg.condition == "motionclip" and retriever is not None
    assert gen.cfg.extra["motionclip_bank"] == bank_fingerprint(retriever.bank)
    text = "a person waves the right hand"
    emb = gen.embed([text])[0]
    draw = gen.draw(emb, np.random.default_rng(3), 4, text)
    assert torch.allclose(draw.emb, retriever.draw(emb, np.random.default_rng(3), 4, text), atol=1e-6)
    a, b = (gen.generate(text, seconds=2.0, seed=5) for _ in range(2))
    assert a.num_frames == 60 and np.allclose(a.rot6d, b.rot6d)

    # The training batch's condition is the window's latent: the same as encoding that window directly.
    pack = load_pack(out / "pack.npz")
    plain, mirrored, _, guides = clip_latents(pack, torch.device("cpu"), lambda *a: None)
    assert guides is None  # (only asked for with a tokenizer)
    assert len(plain) == len(pack) and plain[0].shape == (-(-pack.length(0) // 4), gen.cfg.latent_dim)
    direct = token_latents(retriever, pack.clip(0).astype(np.float32), pack.fps)
    assert torch.allclose(plain[0].float(), direct, atol=2e-3)
    assert not torch.allclose(mirrored[0].float(), plain[0].float(), atol=0.05)  # the mirror differs
    model = gen.model
    sampler = ClipSampler(pack, model.cfg.max_frames, 8, np.random.default_rng(0))
    tokens = clip_tokens(model, pack)
    cond, *_ = _mask_batch(model, tokens, pack, sampler, _opts(data, out), (plain, mirrored))
    rows = torch.cat([torch.cat(plain), torch.cat(mirrored)]).float()
    assert ((cond[:, None] - rows[None]).abs().amax(-1).min(1).values < 1e-6).all()

    obj = torch.load(out / "model.pt", weights_only=True)
    obj["config"]["extra"]["motionclip_bank"] = "0" * 16
    torch.save(obj, tmp_path / "other.pt")
    with pytest.raises(MissingAssetError, match="another MotionCLIP-style model"):
        Generator.from_file(tmp_path / "other.pt", device="cpu")


def test_guided_by_the_motionclip_decoding(trained, data, tmp_path) -> None:
    """`guide=True`: the MotionCLIP-style model's decoding of the drawn latent, encoded by the tokenizer,
    steers every token; started from a model without it, the guide's map is zero, so the model first
    predicts exactly as before; after training the guide changes the prediction."""
    from vmclip.t2m.latent_condition import decoded_guide, guide_input
    from vmclip.t2m.tokens import MaskedMotionModel, TokenConfig
    from vmclip.t2m.train_masked import _load_init, _start_from

    start = _load_init(trained[0] / "model.pt")
    cfg = TokenConfig(**{**start["config"], "condition": "motionclip", "guide": True})
    model = MaskedMotionModel(cfg).eval()
    _start_from(model, start["state_dict"])
    text = torch.nn.functional.normalize(torch.randn(2, cfg.latent_dim), dim=-1)
    ids = torch.randint(0, cfg.codes, (2, 6))
    keep = torch.tensor([True, True])
    g = guide_input(torch.randn(2, 4, cfg.code_dim), 6)
    assert g.shape == (2, 6, cfg.code_dim + 1) and (g[:, :4, -1] == 1).all() and (g[:, 4:] == 0).all()
    with torch.no_grad():
        assert torch.allclose(model.transformer(text, ids, keep, g), model.transformer(text, ids, keep))

    out = tmp_path / "guided"
    train_masked(
        _opts(
            data,
            out,
            init=trained[0] / "model.pt",
            tokenizer_steps=0,
            model={"condition": "motionclip", "guide": True},
        )
    )
    gen = Generator.from_file(out / "model.pt", device="cpu")
    assert gen.cfg.guide and gen.model.transformer.guide_proj.weight.abs().max() > 0
    emb = gen.embed(["a person jumps"])[0]
    z = gen.draw(emb, np.random.default_rng(0), 2, "a person jumps").emb
    guide = decoded_guide(gen.retriever, z, gen.model.tokenizer, gen.cfg.fps)
    window = gen.retriever.model.cfg.max_frames / gen.retriever.model.cfg.fps  # seconds
    assert guide.shape == (2, int(round(window * gen.cfg.fps)) // 4, gen.cfg.code_dim)
    with torch.no_grad():
        tr = gen.model.transformer
        ids = torch.full((2, 6), tr.mask_id)
        with_guide = tr(z, ids, torch.tensor([True, True]), guide_input(guide, 6))
        assert not torch.allclose(with_guide, tr(z, ids, torch.tensor([True, True])), atol=1e-4)
    motion = gen.generate("a person jumps", seconds=2.0, seed=1)
    assert motion.num_frames == 60 and np.isfinite(motion.rot6d).all()
    with pytest.raises(InputError, match="--guide needs --condition motionclip"):
        train_masked(
            _opts(
                data, tmp_path / "x", init=trained[0] / "model.pt", tokenizer_steps=0, model={"guide": True}
            )
        )


def test_residual_quantizers(data, tmp_path) -> None:
    """`quantizers=3`: a residual-VQ tokenizer whose layers each take away part of what the layers below
    left (on the training windows), a residual transformer trained in a third phase that completes the
    upper layers of sampled base tokens, and every codebook kept in fp32 in the file."""
    from vmclip.t2m.train_masked import ClipSampler, _tok_batch

    out = tmp_path / "rvq"
    opts = _opts(data, out, tokenizer_steps=200, residual_steps=40, model={**TINY, "quantizers": 3})
    info = train_masked(opts)
    assert info["residual_steps"] == 40
    rows = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["phase"] == "residual"] == [20, 40]
    state = torch.load(out / "model.pt", weights_only=True)["state_dict"]
    books = [k for k in state if k.endswith(".codebook")]
    assert len(books) == 3 and all(state[k].dtype == torch.float32 for k in books)

    gen = Generator.from_file(out / "model.pt", device="cpu")
    tok = gen.model.tokenizer
    assert len(tok.layers) == 3 and gen.model.residual is not None
    pack = load_pack(out / "pack.npz")
    sampler = ClipSampler(pack, opts.tok_frames, opts.tok_frames, np.random.default_rng(1))
    x = _tok_batch(pack, sampler, opts, mirror_permutation())  # (8, 24, 148) training windows
    with torch.no_grad():
        z = tok.encode(x)  # (8, D, 6)
        ids = tok.all_tokens(x)  # (8, 3, 6)
        assert ids.shape == (8, 3, 6) and torch.equal(ids[:, 0], tok.tokens(x))
        left = [z.transpose(1, 2)]
        for j, layer in enumerate(tok.layers):
            left.append(left[-1] - layer.codebook[ids[:, j]])
        err = [float(r.norm(dim=-1).mean()) for r in left]  # what 0, 1, 2, 3 layers leave
        assert err[3] < err[2] < err[1] < err[0]
        assert torch.allclose(tok.decode_tokens(ids[:, :1]), tok.decode_tokens(ids[:, 0]))

        cond = gen.embed(["a person walks forward"]).expand(2, -1)
        full = gen.model.residual.complete(cond, ids[:2, 0])  # (2, 3, 6)
        assert full.shape == (2, 3, 6) and torch.equal(full[:, 0], ids[:2, 0])
        assert int(full.max()) < TINY["codes"]
        assert not torch.allclose(tok.decode_tokens(full), tok.decode_tokens(full[:, 0]), atol=1e-3)
    a, b = (gen.generate("a person walks forward", seconds=2.0, seed=3) for _ in range(2))
    assert a.num_frames == 60 and np.allclose(a.rot6d, b.rot6d)


def test_evaluation_reports_the_tokenizer_ceiling(trained, data, tmp_path, capsys) -> None:
    """`vmclip eval motion` on a masked model also classifies its tokenizer's reconstruction of the real
    held-out windows; reconstructing through the resampling alone keeps the windows' features."""
    from vmclip.t2m.data import WindowSampler, load_clipset
    from vmclip.t2m.evaluate import EVAL_FPS, EVAL_FRAMES, _reconstructed_features
    from vmclip.t2m.evaluate import motion_features as eval_features

    report = tmp_path / "eval.json"
    argv = ["eval", "motion", "--data", str(data), "--checkpoint", str(trained[0] / "model.pt")]
    assert main([*argv, "-o", str(report), "--threads", "1", "--device", "cpu"]) == 0
    r = json.loads(report.read_text())
    assert 0 <= r["classifier_reconstructed_top1"] <= 1
    assert "the tokenizer's reconstruction of the real windows" in capsys.readouterr().out

    class Resampled:  # the evaluation's plumbing (15 -> 20 -> 15 fps) around a lossless tokenizer
        cfg = Generator.from_file(trained[0] / "model.pt", device="cpu").cfg

        @staticmethod
        def reconstruct(rot, trans):
            return canonicalize(rot, trans)

    windows = WindowSampler(load_clipset(data, "test"), EVAL_FPS, EVAL_FRAMES, seed=0).fixed_windows()
    direct = eval_features(windows["rot6d"], windows["trans"], windows["mask"])
    through = _reconstructed_features(Resampled, windows)
    assert torch.allclose(through, direct, atol=0.05 * float(direct.abs().max()))
