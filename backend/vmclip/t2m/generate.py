"""Text -> motion with the trained MotionCLIP-style model.

The prompt's embedding (MiniLM or CLIP) lives in the same space as the motion latents. The decoder
turns a latent into a motion; which latent:

* The shipped model carries a bank of latents of its training windows, with the embeddings of the
  windows' (augmented) training descriptions. Each entry is scored by the learned motion-text cosine
  averaged with the best prompt-description cosine (left/right mismatches pushed down); a seeded draw
  picks one of the best entries (softmax over the top scores), and the latent decoded is that latent
  moved TOWARD_TEXT of the way toward the text embedding (0 for the shipped model: moving it damped
  the motion). Decoding real motions' latents
  gives crisp movement, the text steers the draw, the seed picks among the plausible motions, so
  different seeds give visibly different results and the same seed the same one.
* Without a bank (e.g. a MotionCLIP checkpoint) the text embedding itself is decoded, with seeded
  noise on the sphere for seeds other than the first draw.

Prompts with several actions ("turns around and walks away", "walks while waving the right hand")
are parsed and composed by compose.py: pieces in sequence are joined by in-painting (each new piece
held to the previous piece's last frames through the constraint machinery), actions done together
take the legs and the arms from different pieces; motions longer than the model's window are
generated in chunks joined the same way. Output: 30 fps, cleaned up (see cleanup.py).
"""

from __future__ import annotations

import math
import re
import unicodedata
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vmclip.devices import choose_device
from vmclip.errors import InputError, MissingAssetError
from vmclip.motion import Motion
from vmclip.motion import rotations as R
from vmclip.motion.constraints import MotionConstraints
from vmclip.t2m.cleanup import clean_motion
from vmclip.t2m.compose import Composer, Step, parse_prompt
from vmclip.t2m.constrain import finish_motion, prepare
from vmclip.t2m.model import ModelConfig, MotionClipModel, from_features

MAX_PROMPT_CHARS = 500
MIN_SECONDS, MAX_SECONDS = 1.0, 10.0
MAX_SEGMENTS = 6
OUT_FPS = 30.0
TOP_K = 24  # bank entries the draw chooses among
TEMPERATURE = 0.02  # softmax temperature over the scores
TEXT_WEIGHT = 0.5  # share of the description similarity in a bank entry's score
SIDE_PENALTY = 0.2  # score taken from entries that name only the other side
TOWARD_TEXT = 0.0  # share of the way the drawn latent moves toward the text embedding
# Score taken from a bank window as still as its clip's lead-in (scaled by 1 - the window's movement
# relative to its clip's busiest window): the label describes the clip's action, not its start.
ACTIVITY_WEIGHT = 0.05
# Score taken from a bank window the model decodes damped (scaled by 1 - the share of the capture's
# joint speed the decoded window keeps): among fitting motions, prefer those it reproduces vividly.
FIDELITY_WEIGHT = 0.05
MIN_FPS, MAX_FPS = 1.0, 120.0
# A prompt this close (cosine) to one of the model's training descriptions is generated whole, not
# composed: a capture of that very sentence holds its actions in their real order and timing.
# Training descriptions with commas and "and" ("basketball - dribble, shoot") score 0.95-1.0 against
# themselves; composed everyday prompts ("turns around and walks away") 0.61-0.89.
WHOLE_MATCH = 0.9


def validate_prompt(prompt: object) -> str:
    if not isinstance(prompt, str):
        raise InputError("prompt must be text")
    if any(unicodedata.category(ch) == "Cc" for ch in prompt):
        raise InputError("prompt contains control characters (newlines, tabs, escapes); use plain text")
    text = " ".join(prompt.split())
    if not text:
        raise InputError('prompt is empty; describe a motion, e.g. "a person waves with the right hand"')
    if len(prompt) > MAX_PROMPT_CHARS:
        raise InputError(f"prompt is {len(prompt)} characters long; at most {MAX_PROMPT_CHARS} are allowed")
    if not any(ch.isalpha() for ch in text):
        raise InputError('prompt has no words; describe a motion, e.g. "a person jumps"')
    return text


def validate_seconds(seconds: object) -> float:
    try:
        value = float(seconds)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InputError(f"seconds must be a number, not {seconds!r}") from None
    if not math.isfinite(value) or not MIN_SECONDS <= value <= MAX_SECONDS:
        raise InputError(f"seconds must be between {MIN_SECONDS:g} and {MAX_SECONDS:g}, not {seconds}")
    return value


def validate_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise InputError(f"seed must be a whole number, not {seed!r}")
    if not 0 <= int(seed) < 2**63:
        raise InputError(f"seed must be between 0 and 2^63-1, not {seed}")
    return int(seed)


def validate_fps(fps: object) -> float:
    try:
        value = float(fps)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InputError(f"fps must be a number, not {fps!r}") from None
    if not math.isfinite(value) or not MIN_FPS <= value <= MAX_FPS:
        raise InputError(f"fps must be between {MIN_FPS:g} and {MAX_FPS:g}, not {fps}")
    return value


def output_frames(seconds: float, fps: float = OUT_FPS) -> int:
    """Frames of a generated motion (and rows of its constraints): seconds x fps, rounded."""
    return int(round(seconds * fps))


def _sides(text: str) -> frozenset[str]:
    return frozenset(re.findall(r"\b(left|right)\b", text.lower()))


class Generator:
    """Loaded model + text encoder; `generate(prompt, seconds, seed) -> Motion` (30 fps, cleaned)."""

    def __init__(
        self,
        model: MotionClipModel,
        text_encoder,
        bank: dict | None = None,
        clips: list[dict] | None = None,
        info: dict | None = None,
        device: str | torch.device = "cpu",
        clip_texts: dict | None = None,
    ) -> None:
        self.model = model.to(device).eval()
        self.cfg: ModelConfig = model.cfg
        self.text_encoder = text_encoder
        self.device = torch.device(device)
        self.bank = None
        if bank is not None and len(bank.get("latents", [])):
            self.bank = F.normalize(bank["latents"].float().to(self.device), dim=-1)
            self.bank_clip = bank["clip"].long().to(self.device)  # indexes device tensors
            ones = torch.ones(len(self.bank))
            self.bank_activity = bank.get("activity", ones).float().to(self.device)
            self.bank_fidelity = bank.get("fidelity", ones).float().to(self.device)
        self.clips = clips or []
        self.info = info or {}
        self.text_emb = None
        if self.bank is not None and clip_texts is not None and len(clip_texts.get("emb", [])):
            self.text_emb = F.normalize(clip_texts["emb"].float().to(self.device), dim=-1)
            self.text_index = clip_texts["index"].long().to(self.device)
            counts = torch.diff(clip_texts["offsets"].long())
            self.text_clip = torch.repeat_interleave(torch.arange(len(counts)), counts).to(self.device)
            self.n_clips = len(counts)
        self.clip_sides = [_sides(c.get("text", "")) for c in self.clips]
        if text_encoder is not None and text_encoder.dim != self.cfg.latent_dim:
            raise MissingAssetError(
                f"text encoder {text_encoder.name} gives {text_encoder.dim}-d embeddings "
                f"but the model's latent is {self.cfg.latent_dim}-d"
            )

    # -- loading --------------------------------------------------------------------------------
    @classmethod
    def from_file(
        cls, path: str | Path, device: str | None = None, encoder: str | None = None, **encoder_kwargs
    ) -> Generator:
        from vmclip.t2m import require_weights_file
        from vmclip.text import load_text_encoder

        path = require_weights_file(path)
        device = str(choose_device(device))
        try:
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a bad file
            raise InputError(f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__})") from None
        if isinstance(obj, dict) and obj.get("format") == "vmclip-t2m-masked":
            from vmclip.t2m.generate_masked import MaskedGenerator

            return MaskedGenerator.from_object(obj, device, encoder, **encoder_kwargs)
        if isinstance(obj, dict) and obj.get("format") == "vmclip-t2m":
            cfg = ModelConfig.from_dict(obj["config"])
            model = MotionClipModel(cfg)
            model.load_state_dict({k: v.float() for k, v in obj["state_dict"].items()})
            bank, clips, info = obj.get("bank"), obj.get("clips"), obj.get("info")
            clip_texts = obj.get("clip_texts")
        elif isinstance(obj, dict) and "model" in obj and "config" in obj:  # a training checkpoint
            cfg = ModelConfig.from_dict(obj["config"])
            model = MotionClipModel(cfg)
            model.load_state_dict(obj["model"])
            bank, clips, info, clip_texts = None, None, {"step": obj.get("step")}, None
        else:  # MotionCLIP's own checkpoint format
            from vmclip.t2m.motionclip_ckpt import load_motionclip_checkpoint

            model = load_motionclip_checkpoint(path)
            cfg = model.cfg
            bank, clips, info, clip_texts = None, None, {"source": "motionclip"}, None
        enc = load_text_encoder(encoder or cfg.text_encoder, device=device, **encoder_kwargs)
        return cls(model, enc, bank, clips, info, device, clip_texts)

    # -- latents --------------------------------------------------------------------------------
    def embed(self, texts: list[str]) -> torch.Tensor:
        return F.normalize(self.text_encoder.encode(texts).float().to(self.device), dim=-1)

    def scores(self, text_emb: torch.Tensor, text: str = "") -> torch.Tensor:
        """How well each bank entry fits a text: the learned motion-text cosine, averaged (when the
        model file carries them) with the best cosine between the text and the entry's training
        descriptions; entries whose description names the other side (left/right) are pushed down."""
        score = self.bank @ text_emb
        if self.text_emb is not None:
            per_text = (self.text_emb @ text_emb)[self.text_index]
            best = torch.full((self.n_clips,), -1.0, device=self.device)
            best = best.scatter_reduce(0, self.text_clip, per_text, reduce="amax")
            score = (1 - TEXT_WEIGHT) * score + TEXT_WEIGHT * best[self.bank_clip]
        score = score - ACTIVITY_WEIGHT * (1 - self.bank_activity)
        score = score - FIDELITY_WEIGHT * (1 - self.bank_fidelity)
        want = _sides(text)
        if want and self.clip_sides:
            wrong = torch.tensor([bool(s) and not (s & want) for s in self.clip_sides], device=self.device)
            score = score - SIDE_PENALTY * wrong[self.bank_clip].to(score.dtype)
        return score

    def draw(self, text_emb: torch.Tensor, rng: np.random.Generator, n: int, text: str = "") -> torch.Tensor:
        """n seeded latents for one text embedding (see the module doc)."""
        if self.bank is None:
            noise = torch.from_numpy(rng.standard_normal((n, text_emb.shape[-1])).astype(np.float32))
            noise[0] = 0  # the first draw is the text itself
            return F.normalize(text_emb[None] + 0.15 * F.normalize(noise.to(self.device), dim=-1), dim=-1)
        scores = self.scores(text_emb, text)
        k = min(TOP_K, len(scores))
        top, idx = scores.topk(k)
        p = torch.softmax((top - top.max()) / TEMPERATURE, 0).double().cpu().numpy()
        picks = rng.choice(k, size=n, p=p / p.sum())
        base = self.bank[idx[torch.from_numpy(picks).to(idx.device)]]
        return F.normalize(base + TOWARD_TEXT * (text_emb[None] - base), dim=-1)

    def known_description(self, prompt: str) -> float:
        """The best cosine between the prompt and the model's training descriptions (0 without them)."""
        if self.text_emb is None:
            return 0.0
        return float((self.text_emb @ self.embed([prompt])[0]).max())

    def matches(self, prompt: str, k: int = 5) -> list[tuple[str, float]]:
        """The bank's best-matching training descriptions for a prompt (for inspection)."""
        if self.bank is None or not self.clips:
            return []
        scores = self.scores(self.embed([prompt])[0], prompt)
        out: dict[str, float] = {}
        for s, i in zip(*scores.topk(min(len(scores), 200)), strict=True):
            text = self.clips[int(self.bank_clip[int(i)])]["text"]
            out.setdefault(text, round(float(s), 3))
            if len(out) == k:
                break
        return list(out.items())

    def model_frames(self, seconds: float) -> int:
        """Model-rate frames generated for `seconds` of output (one more, so resampling covers it)."""
        return int(math.ceil(seconds * self.cfg.fps)) + 1

    @torch.no_grad()
    def decode(self, z: torch.Tensor, frames: int) -> tuple[torch.Tensor, torch.Tensor]:
        mask = torch.ones(len(z), frames, dtype=torch.bool, device=self.device)
        return from_features(self.model.decode(z, mask))

    # -- assembly -------------------------------------------------------------------------------
    @staticmethod
    def _seam_cost(
        prev_rot: torch.Tensor, prev_tr: torch.Tensor, rot: torch.Tensor, tr: torch.Tensor
    ) -> torch.Tensor:
        """Pose + velocity mismatch between prev's tail and each candidate's head (heading-free)."""
        pose = ((rot[:, :, 1:] - prev_rot[None, :, 1:]) ** 2).sum((-1, -2)).mean(-1)
        tilt = (
            (
                (
                    R.rotation_6d_to_matrix(rot[:, :, 0])[..., 1, :]
                    - R.rotation_6d_to_matrix(prev_rot[None, :, 0])[..., 1, :]
                )
                ** 2
            )
            .sum(-1)
            .mean(-1)
        )
        height = ((tr[:, :, 1] - prev_tr[None, :, 1]) ** 2).mean(-1)
        vel = (
            (((rot[:, 1:, 1:] - rot[:, :-1, 1:]) - (prev_rot[None, 1:, 1:] - prev_rot[None, :-1, 1:])) ** 2)
            .sum((-1, -2))
            .mean(-1)
        )
        return pose + tilt + 10 * height + 4 * vel

    def generate(
        self,
        prompt: str,
        seconds: float = 4.0,
        seed: int = 0,
        clean: bool = True,
        constraints: MotionConstraints | None = None,
        fps: float = OUT_FPS,
    ) -> Motion:
        """Text -> motion at `fps`; `constraints` (one row per output frame) are met (constrain.py)."""
        return self.generate_with_seams(prompt, seconds, seed, clean, constraints, fps)[0]

    def generate_with_seams(
        self,
        prompt: str,
        seconds: float = 4.0,
        seed: int = 0,
        clean: bool = True,
        constraints: MotionConstraints | None = None,
        fps: float = OUT_FPS,
    ) -> tuple[Motion, list[int]]:
        """`generate`, and the output frames where joined pieces begin (for measuring the seams)."""
        prompt = validate_prompt(prompt)
        seconds = validate_seconds(seconds)
        seed = validate_seed(seed)
        fps = validate_fps(fps)
        n_out = output_frames(seconds, fps)
        held = prepare(constraints, n_out, fps)
        steps = parse_prompt(prompt)
        if (len(steps) > 1 or steps[0].kind != "single") and self.known_description(prompt) >= WHOLE_MATCH:
            steps = [Step((prompt,))]
        total = self.model_frames(seconds)
        composer = Composer(self, np.random.default_rng(seed), held, fps)
        raw = composer.compose(steps, total)
        motion = Motion(raw.rot6d, raw.trans, raw.fps, [prompt])
        motion = motion.resample(fps)
        motion = motion.slice(0, n_out) if motion.num_frames >= n_out else _hold(motion, n_out)
        seams = [int(round(f * fps / raw.fps)) for f in composer.seams]
        return finish_motion(motion, held, clean_motion if clean else None), [s for s in seams if s < n_out]


def _hold(motion: Motion, frames: int) -> Motion:
    extra = frames - motion.num_frames
    rot = np.concatenate([motion.rot6d, np.repeat(motion.rot6d[-1:], extra, 0)])
    tr = np.concatenate([motion.trans, np.repeat(motion.trans[-1:], extra, 0)])
    return Motion(rot, tr, motion.fps, motion.texts, motion.betas)
