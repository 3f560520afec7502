"""Model layout, MotionCLIP checkpoint loading, features and canonical windows."""

import numpy as np
import pytest
import torch
from vmclip.errors import InputError
from vmclip.motion import rotations as R
from vmclip.t2m.data import canonicalize
from vmclip.t2m.model import ModelConfig, MotionClipModel, from_features, lengths_to_mask, to_features
from vmclip.t2m.motionclip_ckpt import load_motionclip_checkpoint


def _motionclip_state(latent=64, ff=96, enc_layers=2, dec_layers=3, classes=1, seed=0):
    """A random state dict spelled exactly like MotionCLIP's checkpoints (PyTorch's Transformer
    parameter names inside encoder/decoder, plus the frozen CLIP and SMPL entries they carry)."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.randn(*shape, generator=g) * 0.1

    sd = {
        "encoder.muQuery": r(classes, latent),
        "encoder.sigmaQuery": r(classes, latent),
        "encoder.skelEmbedding.weight": r(latent, 150),
        "encoder.skelEmbedding.bias": r(latent),
        "encoder.sequence_pos_encoder.pe": r(5000, 1, latent),
        "decoder.actionBiases": r(classes, latent),
        "decoder.sequence_pos_encoder.pe": r(5000, 1, latent),
        "decoder.finallayer.weight": r(150, latent),
        "decoder.finallayer.bias": r(150),
        "clip_model.positional_embedding": r(77, 8),
        "clip_model.logit_scale": r(()),
        "rotation2xyz.smpl_model.shapedirs": r(10, 3, 2),
    }

    def attn(prefix):
        sd[f"{prefix}.in_proj_weight"] = r(3 * latent, latent)
        sd[f"{prefix}.in_proj_bias"] = r(3 * latent)
        sd[f"{prefix}.out_proj.weight"] = r(latent, latent)
        sd[f"{prefix}.out_proj.bias"] = r(latent)

    def block(prefix, norms):
        sd[f"{prefix}.linear1.weight"], sd[f"{prefix}.linear1.bias"] = r(ff, latent), r(ff)
        sd[f"{prefix}.linear2.weight"], sd[f"{prefix}.linear2.bias"] = r(latent, ff), r(latent)
        for n in norms:
            sd[f"{prefix}.{n}.weight"], sd[f"{prefix}.{n}.bias"] = 1 + r(latent), r(latent)

    for i in range(enc_layers):
        p = f"encoder.seqTransEncoder.layers.{i}"
        attn(f"{p}.self_attn")
        block(p, ["norm1", "norm2"])
    for i in range(dec_layers):
        p = f"decoder.seqTransDecoder.layers.{i}"
        attn(f"{p}.self_attn")
        attn(f"{p}.multihead_attn")
        block(p, ["norm1", "norm2", "norm3"])
    return sd


def test_motionclip_checkpoint_loads_strictly(tmp_path):
    sd = _motionclip_state()
    path = tmp_path / "checkpoint_0100.pth.tar"
    torch.save(sd, path)
    (tmp_path / "opt.yaml").write_text(
        "latent_dim: 64\nnum_layers: 3\nnum_frames: 60\n"
        "normalize_encoder_output: false\nnormalize_decoder_input: true\n"
    )
    model = load_motionclip_checkpoint(path, num_heads=4)
    cfg = model.cfg
    assert (cfg.latent_dim, cfg.ff_size, cfg.enc_layers, cfg.dec_layers) == (64, 96, 2, 3)
    assert cfg.normalize_decoder_input and not cfg.normalize_encoder_output and cfg.fps == 30.0
    own = model.state_dict()
    for k, v in sd.items():
        if k.startswith(("encoder", "decoder")) and not k.endswith(".pe"):
            torch.testing.assert_close(own[k], v)  # every MotionCLIP weight landed under its own name
    assert not any(k.startswith(("clip_model", "rotation2xyz")) for k in own)
    x = torch.randn(2, 25, 6, 30)
    mask = lengths_to_mask(torch.tensor([30, 20]), 30)
    with torch.no_grad():
        z = model.encode(x, mask)
        out = model.decode(z, mask)
    assert z.shape == (2, 64) and out.shape == (2, 25, 6, 30)
    assert torch.all(out[1, ..., 20:] == 0)  # padded frames are zero, as in MotionCLIP


def test_motionclip_checkpoint_rejects_other_files(tmp_path):
    sd = _motionclip_state()
    sd["decoder.unknown.weight"] = torch.zeros(3)
    torch.save({"state_dict": sd}, tmp_path / "a.pt")
    with pytest.raises(InputError, match="does not match"):
        load_motionclip_checkpoint(tmp_path / "a.pt")
    torch.save({"foo": torch.zeros(1)}, tmp_path / "b.pt")
    with pytest.raises(InputError, match="not a MotionCLIP checkpoint"):
        load_motionclip_checkpoint(tmp_path / "b.pt")
    (tmp_path / "c.pt").write_bytes(b"junk")
    with pytest.raises(InputError, match="not a readable"):
        load_motionclip_checkpoint(tmp_path / "c.pt")


def test_own_model_keeps_motionclip_names_and_narrow_variant():
    full = MotionClipModel(ModelConfig(width=None, latent_dim=64, ff_size=32, enc_layers=1, dec_layers=1))
    names = set(full.state_dict())
    for n in [
        "encoder.muQuery",
        "encoder.sigmaQuery",
        "encoder.skelEmbedding.weight",
        "encoder.seqTransEncoder.layers.0.self_attn.in_proj_weight",
        "decoder.actionBiases",
        "decoder.seqTransDecoder.layers.0.multihead_attn.in_proj_weight",
        "decoder.finallayer.weight",
    ]:
        assert n in names
    assert not any("Proj." in n for n in names)  # MotionCLIP's exact layout when width == latent
    narrow = MotionClipModel(
        ModelConfig(width=32, latent_dim=64, ff_size=32, enc_layers=1, dec_layers=1)
    ).eval()
    x = torch.randn(3, 25, 6, 12)
    mask = torch.ones(3, 12, dtype=torch.bool)
    z = narrow.encode(x, mask)
    assert z.shape == (3, 64)
    torch.testing.assert_close(z.norm(dim=-1), torch.ones(3))
    assert narrow.decode(z, mask).shape == (3, 25, 6, 12)


def test_features_round_trip_and_translation_slot():
    rot = torch.randn(2, 7, 24, 6)
    tr = torch.randn(2, 7, 3)
    x = to_features(rot, tr)
    assert x.shape == (2, 25, 6, 7)
    torch.testing.assert_close(x[:, 24, :3].permute(0, 2, 1), tr)
    assert torch.all(x[:, 24, 3:] == 0)
    r2, t2 = from_features(x)
    torch.testing.assert_close(r2, rot)
    torch.testing.assert_close(t2, tr)


def test_canonical_windows_face_plus_z_from_the_origin():
    rng = np.random.default_rng(0)
    aa = rng.normal(0, 0.2, (3, 10, 24, 3))
    aa[:, :, 0, 1] += rng.uniform(-3, 3, (3, 1))  # random headings
    rot6d = torch.from_numpy(R.axis_angle_to_rotation_6d(aa)).float()
    trans = torch.from_numpy(rng.normal(0, 2, (3, 10, 3))).float()
    c_rot, c_tr = canonicalize(rot6d, trans)
    fwd = R.rotation_6d_to_matrix(c_rot[:, 0, 0])[..., :, 2]
    torch.testing.assert_close(fwd[:, 0], torch.zeros(3), atol=1e-5, rtol=0)
    assert torch.all(fwd[:, 2] > 0)
    torch.testing.assert_close(c_tr[:, 0, [0, 2]], torch.zeros(3, 2), atol=1e-5, rtol=0)
    torch.testing.assert_close(c_tr[..., 1], trans[..., 1])  # heights kept
    # Only the root changed, and distances travelled are preserved.
    torch.testing.assert_close(c_rot[:, :, 1:], rot6d[:, :, 1:])
    torch.testing.assert_close(
        (c_tr[:, 1:] - c_tr[:, :-1]).norm(dim=-1),
        (trans[:, 1:] - trans[:, :-1]).norm(dim=-1),
        atol=1e-5,
        rtol=1e-5,
    )


def test_several_memory_tokens():
    cfg = ModelConfig(
        width=32, latent_dim=64, ff_size=32, enc_layers=1, dec_layers=1, memory_tokens=4, memory_scale=4.0
    )
    model = MotionClipModel(cfg).eval()
    assert model.decoder.memoryProj.out_features == 4 * 32
    z = torch.nn.functional.normalize(torch.randn(2, 64), dim=-1)
    mask = torch.ones(2, 9, dtype=torch.bool)
    out = model.decode(z, mask)
    assert out.shape == (2, 25, 6, 9)
    # Rebuilt from its config dict (as the shipped file stores it) it gives the same output.
    again = MotionClipModel(ModelConfig.from_dict(cfg.to_dict())).eval()
    again.load_state_dict(model.state_dict())
    torch.testing.assert_close(again.decode(z, mask), out)


def test_window_activity_marks_a_still_lead_in():
    """The bank's activity: each window's joint speed over its clip's busiest window's."""
    from vmclip.t2m.train import window_activity

    frames = 30
    rot6d = R.matrix_to_rotation_6d(torch.eye(3).expand(4, frames, 24, 3, 3).clone())
    trans = torch.zeros(4, frames, 3)
    t = torch.arange(frames, dtype=torch.float32) / 15
    trans[1, :, 0] = 0.5 * t  # clip 0: a still lead-in (window 0), then walking (window 1)
    trans[2, :, 0] = 0.1 * t  # clip 1: two equally slow windows
    trans[3, :, 0] = 0.1 * t
    # A bent elbow moving in window 1 counts as well as the root's travel.
    angle = torch.linspace(0, 1.5, frames)
    bend = torch.zeros(frames, 3, 3)
    bend[:, 0, 0] = 1
    bend[:, 1, 1], bend[:, 1, 2] = torch.cos(angle), -torch.sin(angle)
    bend[:, 2, 1], bend[:, 2, 2] = torch.sin(angle), torch.cos(angle)
    rot6d[1, :, 19] = R.matrix_to_rotation_6d(bend)
    windows = {
        "rot6d": rot6d,
        "trans": trans,
        "mask": torch.ones(4, frames, dtype=torch.bool),
        "clip": torch.tensor([0, 0, 1, 1]),
    }
    act = window_activity(windows, 15.0)
    assert act[0] < 0.05 and act[1] == pytest.approx(1.0)
    assert act[2] == pytest.approx(1.0) and act[3] == pytest.approx(1.0)
    # A short window is padded with its last frame; the padding does not count as stillness.
    padded = dict(windows, mask=windows["mask"].clone(), trans=trans.clone())
    padded["trans"][3, 15:] = padded["trans"][3, 14]
    padded["mask"][3, 15:] = False
    assert window_activity(padded, 15.0)[3] == pytest.approx(1.0)


def test_window_fidelity_compares_decoded_with_captured_movement():
    """Fidelity: the decoded window's joint speed over the capture's (at most 1; still windows 1)."""
    from vmclip.t2m.train import STILL_SPEED, window_fidelity, window_speed

    torch.manual_seed(0)
    cfg = ModelConfig(
        latent_dim=64,
        width=64,
        ff_size=64,
        num_heads=2,
        enc_layers=1,
        dec_layers=1,
        dropout=0.0,
        max_frames=20,
    )
    model = MotionClipModel(cfg).eval()
    frames = 20
    rot6d = R.matrix_to_rotation_6d(torch.eye(3).expand(3, frames, 24, 3, 3).clone())
    trans = torch.zeros(3, frames, 3)
    t = torch.arange(frames, dtype=torch.float32) / cfg.fps
    trans[1, :, 0] = 0.5 * t  # moving
    trans[2, :, 0] = 1e4 * t  # far faster than anything decoded
    mask = torch.ones(3, frames, dtype=torch.bool)
    windows = {"rot6d": rot6d, "trans": trans, "mask": mask, "clip": torch.arange(3)}
    latents = torch.nn.functional.normalize(torch.randn(3, 64), dim=-1)
    fid = window_fidelity(model, latents, windows)
    assert model.training is False
    assert window_speed(rot6d, trans, mask, cfg.fps)[0] < STILL_SPEED and fid[0] == 1  # still: counts 1
    assert 0 <= fid.min() and fid.max() <= 1
    with torch.no_grad():
        rot, tr = from_features(model.decode(latents, mask))
    decoded = window_speed(rot, tr, mask, cfg.fps)
    real = window_speed(rot6d, trans, mask, cfg.fps)
    expected = (decoded / real).clamp(0, 1)
    assert fid[1:].tolist() == pytest.approx(expected[1:].tolist(), rel=1e-4)
    assert fid[2] < 0.5
