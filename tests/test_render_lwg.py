"""Optional Liquid Warping GAN refinement: iPERCore checkpoint format, loading, use in the renderer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from render_scenes import make_person
from test_render import body, wave_motion  # noqa: F401 - fixture reused
from vmclip.errors import InputError, MissingAssetError
from vmclip.render.lwg import AttLWBGenerator, load_refiner
from vmclip.render.pipeline import animate
from vmclip.video import read_frames


def test_default_layout_has_ipercore_parameter_names():
    keys = set(AttLWBGenerator().state_dict())
    for name in (
        "src_net.encoders.layers.0.0.weight",
        "src_net.res_blocks.5.main.2.bias",
        "src_net.img_reg.0.weight",
        "tsf_net_enc.layers.2.0.weight",
        "enc_attlwbs.0.spade.mlp_shared.0.weight",
        "res_attlwbs.5.fk.weight",
        "tsf_net_dec.upconvs.2.0.weight",
        "tsf_net_dec.skippers.1.0.bias",
        "tsf_img_reg.0.weight",
        "tsf_att_reg.0.weight",
    ):
        assert name in keys, name
    assert "tsf_net_enc.layers.0.0.bias" not in keys  # the transfer encoder has no biases


def _checkpoint(tmp_path, prefix="module."):
    torch.manual_seed(0)
    net = AttLWBGenerator(filters=(8, 16, 16), n_res=2)
    state = {prefix + k: v for k, v in net.state_dict().items()}
    state[prefix + "bg_net.encoders.0.weight"] = torch.randn(4, 4, 3, 3)  # iPERCore's in-painter: skipped
    path = tmp_path / "net_iter_1_id_G.pth"
    torch.save(state, path)
    return path, net


def test_checkpoint_round_trip_infers_sizes_and_loads_every_weight(tmp_path):
    path, net = _checkpoint(tmp_path)
    refiner = load_refiner(path, device="cpu")
    for k, v in net.state_dict().items():
        assert torch.equal(refiner.net.state_dict()[k], v), k


def test_renderer_uses_the_generator_when_given(body, tmp_path):  # noqa: F811
    path, _ = _checkpoint(tmp_path, prefix="")
    out = tmp_path / "lwg.mp4"
    animate(make_person(body), wave_motion(2), out, size=128, body=body, lwg_checkpoint=path)
    frames = read_frames(out)
    assert len(frames) == 2 and frames[0].shape == (96, 128, 3)
    plain = tmp_path / "plain.mp4"
    animate(make_person(body), wave_motion(2), plain, size=128, body=body)
    # random weights: a different picture from the classical path, but a valid one
    assert np.abs(read_frames(plain)[1].astype(float) - frames[1]).mean() > 1.0


def test_bad_checkpoints_are_explained(tmp_path):
    with pytest.raises(MissingAssetError):
        load_refiner(tmp_path / "absent.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="not a readable"):
        load_refiner(junk)
    path, net = _checkpoint(tmp_path, prefix="")
    state = torch.load(path, weights_only=True)
    del state["tsf_att_reg.0.weight"]
    torch.save(state, path)
    with pytest.raises(InputError, match="do not match"):
        load_refiner(path)
