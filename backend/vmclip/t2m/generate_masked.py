"""Text -> motion with the masked-token model (tokens.py), behind the same `Generator` interface.

Composition, constraints and clean-up are the MotionCLIP-style generator's (compose.py,
constrain.py): they ask the generator for seeded `draw`s of a text and `decode` them to model-rate
windows. Here a draw is the text embedding with one seed per candidate, and decoding samples the
tokens with the masked transformer (iterative unmasking, classifier-free guidance), with a residual
VQ completes the upper layers with the residual transformer, and turns them into motion with the
tokenizer's decoder. The model works at 20 fps; output is resampled to 30 fps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from vmclip.errors import MissingAssetError
from vmclip.t2m.generate import Generator
from vmclip.t2m.tokens import DOWN, MaskedMotionModel, TokenConfig, features_to_motion, motion_features

STEPS = 10  # unmasking iterations
GUIDANCE = 6.0  # classifier-free guidance scale (logits: unconditional + g x (conditional - unconditional))
TEMPERATURE = 1.0
TOP_FRACTION = 0.9  # sample among the top 10 % of codes
CHOICE_NOISE = 4.5  # Gumbel noise (annealed to 0) on the confidence deciding which tokens are kept
PREFIX = False  # joined pieces start from the previous piece's last tokens (continue_from): off, see docs


@dataclass
class Draw:
    """What `MaskedGenerator.draw` hands to `decode`: one text embedding and one seed per candidate."""

    emb: torch.Tensor  # (N, D)
    seeds: list[int]
    held: torch.Tensor | None = None  # (N, tokens) first tokens to keep (-1 beyond), see continue_from

    def __len__(self) -> int:
        return len(self.seeds)


class MaskedGenerator(Generator):
    """The masked-token model + text encoder; `generate(prompt, seconds, seed) -> Motion` (30 fps)."""

    def __init__(
        self,
        model: MaskedMotionModel,
        text_encoder,
        descriptions: dict | None = None,
        info: dict | None = None,
        device: str | torch.device = "cpu",
        retriever: Generator | None = None,
    ) -> None:
        self.model = model.to(device).eval()
        self.cfg: TokenConfig = model.cfg
        self.text_encoder = text_encoder
        self.device = torch.device(device)
        self.bank = None
        self.clips: list[dict] = []
        self.clip_sides: list = []
        self.info = info or {}
        # A "motionclip"-conditioned model draws its condition from that model's bank by the prompt.
        self.retriever = retriever
        self.text_emb = None
        if descriptions is not None and len(descriptions.get("emb", [])):
            self.text_emb = F.normalize(descriptions["emb"].float().to(self.device), dim=-1)
        if text_encoder is not None and text_encoder.dim != self.cfg.latent_dim:
            raise MissingAssetError(
                f"text encoder {text_encoder.name} gives {text_encoder.dim}-d embeddings "
                f"but the model's text input is {self.cfg.latent_dim}-d"
            )

    @classmethod
    def from_object(
        cls, obj: dict, device: str, encoder: str | None = None, **encoder_kwargs
    ) -> MaskedGenerator:
        """From a loaded model file (`train_masked.export_masked`)."""
        from vmclip.text import load_text_encoder

        cfg = TokenConfig.from_dict(obj["config"])
        model = MaskedMotionModel(cfg)
        state = {k: v.float() for k, v in obj["state_dict"].items()}
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or any("ema_" not in k for k in missing):
            raise MissingAssetError(f"model file does not fit the masked model (missing {missing[:3]})")
        enc = load_text_encoder(encoder or cfg.text_encoder, device=device, **encoder_kwargs)
        retriever = None
        if cfg.condition == "motionclip":
            from vmclip.t2m.latent_condition import bank_fingerprint, load_condition_model

            retriever = load_condition_model(device)
            if retriever.bank is None or bank_fingerprint(retriever.bank) != cfg.extra.get("motionclip_bank"):
                raise MissingAssetError(
                    "this masked model was trained on the latents of another MotionCLIP-style model than "
                    "the shipped one; retrain it: `vmclip train --model masked --condition motionclip`"
                )
        elif cfg.condition != "text":
            raise MissingAssetError(f"model file has an unknown condition {cfg.condition!r}")
        return cls(model, enc, obj.get("descriptions"), obj.get("info"), device, retriever)

    def model_frames(self, seconds: float) -> int:
        """Model-rate frames for `seconds` of output: a 4 s motion is one whole 80-frame window (its
        last 30-fps frame is held) rather than a window and a one-frame continuation."""
        total = int(math.ceil(seconds * self.cfg.fps)) + 1
        return total - 1 if total == self.cfg.max_frames + 1 else total

    def draw(self, text_emb: torch.Tensor, rng: np.random.Generator, n: int, text: str = "") -> Draw:
        """n seeded candidates of one text (the seed of each decides its sampled tokens); with a
        retriever, each candidate's condition is a motion latent it draws for the text."""
        if self.retriever is not None:
            cond = self.retriever.draw(text_emb.to(self.retriever.device), rng, n, text).to(self.device)
        else:
            cond = text_emb[None].repeat(n, 1).to(self.device)
        seeds = [int(s) for s in rng.integers(0, 2**62, size=n)]
        return Draw(cond, seeds)

    @torch.no_grad()
    def decode(self, z: Draw, frames: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Candidates -> rotations (N, frames, 24, 6) and root paths (N, frames, 3) at the model rate."""
        frames = min(frames, self.cfg.max_frames)
        n_tok = max(1, math.ceil(frames / DOWN))
        gens = [torch.Generator().manual_seed(s) for s in z.seeds]
        held = None
        if z.held is not None:
            held = torch.full((len(z), n_tok), -1, dtype=torch.long, device=self.device)
            k = min(n_tok, z.held.shape[1])
            held[:, :k] = z.held[:, :k]
        guide = None
        if self.cfg.guide:
            from vmclip.t2m.latent_condition import decoded_guide, guide_input

            g = decoded_guide(self.retriever, z.emb, self.model.tokenizer, self.cfg.fps)
            guide = guide_input(g.to(self.device), n_tok)
        tokens = self.model.sample(
            z.emb, n_tok, gens, STEPS, GUIDANCE, TEMPERATURE, TOP_FRACTION, held, CHOICE_NOISE, guide
        )
        if self.model.residual is not None:  # the upper residual-VQ layers, given the base layer
            tokens = self.model.residual.complete(z.emb, tokens)  # (N, V, tokens)
        feats = self.model.tokenizer.decode_tokens(tokens)[:, :frames]
        return features_to_motion(feats)

    @torch.no_grad()
    def continue_from(self, z: Draw, tail) -> Draw:
        """The candidates, made to start with the tokens of `tail` (a Motion at the model rate, the
        previous piece's last frames, a multiple of 4 long): the transformer in-paints what follows,
        so a joined piece continues the previous one's movement instead of starting afresh."""
        if not PREFIX or tail.num_frames < DOWN or tail.num_frames % DOWN:
            return z
        x = motion_features(torch.from_numpy(tail.rot6d).float(), torch.from_numpy(tail.trans).float())
        ids = self.model.tokenizer.tokens(x[None].to(self.device))  # (1, tail frames / 4)
        return Draw(z.emb, z.seeds, ids.expand(len(z), -1).clone())

    @torch.no_grad()
    def reconstruct(self, rot6d: torch.Tensor, trans: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Windows (B, T, 24, 6) / (B, T, 3) at the model rate -> the tokenizer's reconstruction,
        canonical (starting at the ground origin facing +Z)."""
        x = motion_features(rot6d.to(self.device), trans.to(self.device))
        pad = (-x.shape[1]) % DOWN
        x = torch.cat([x, x[:, -1:].expand(-1, pad, -1)], 1)
        rec = self.model.tokenizer.decode_tokens(self.model.tokenizer.all_tokens(x))[:, : rot6d.shape[1]]
        return features_to_motion(rec)
