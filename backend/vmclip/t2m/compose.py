"""Composition: prompts with several actions, in sequence or performed together.

Parsing (`parse_prompt`) is plain grammar, not a list of known actions:

* sequence words ("then", "and then", "after that", "finally", ";", a full stop) cut the prompt into
  steps done one after the other;
* within a step, "while"/"whilst" (and "as" before a pronoun, an article or an -ing word) join two
  clauses done at the same time ("walks while waving the right hand");
* "and" (or a comma) before a verb in the same form as the clause's first verb ("turns around and walks away",
  "walk and wave") joins two clauses whose relation the motions decide (`resolve_steps`): when one
  keeps its legs still and the other moves them, they are done together (upper body from the first,
  legs and root from the second); otherwise in sequence. "and" before an article, a side, a direction,
  a body part or an adverb ("the left and right hand", "back and forth") does not cut;
* the subject ("a person", "an old man", "she") is carried over to clauses that lack one.
Anything else (more than two clauses at the same time, a clause with no words) stays one piece.

Joining (`Composer`): each piece after the first is generated SEAM_SECONDS longer and in-painted with
the constraint machinery (`apply_constraints`): its first frames are held to the previous piece's last
frames (whole poses, root path and facing), so it is turned and moved onto the previous piece, its own
motion takes over through a smooth correction (no cross-fade, no speed spike), and the previous
piece's last frames are kept as they are. Body-part composition takes the legs, spine and root of
the lower-body piece and the named arm (or both arms, neck and head) of the other, both continuing
the same previous piece. A clause that asks for a turn ("turns around", "turns left", "turns 45
degrees to the right") gets the heading change it names over its span (`apply_turn`): the model's
windows hold parts of turns, so the missing yaw is added smoothly and the path turns with the body.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import torch

from vmclip.errors import InputError
from vmclip.motion import Motion
from vmclip.motion import rotations as R
from vmclip.motion.constraints import MotionConstraints
from vmclip.motion.skeleton import JOINT_INDEX
from vmclip.t2m.constrain import _rot_y, _yaw, apply_constraints, candidate_cost

MAX_PIECES = 6
SEAM_SECONDS = 0.2  # previous frames a new piece is held to: pose and velocity carry across the seam
CANDIDATES = 4  # seeded candidates per joined piece (the best seam match is kept)
CONSTRAINED_CANDIDATES = 8  # with user constraints: the one that fits them and the seam best
CONSTRAINT_WEIGHT = 1.0
# A chunk continuing the same action may be any stretch of its candidate windows (see `_choose`).
CONTINUE_SEARCH = True
# The upper-body piece of a body-part composition lends only its arm(s): among its candidates, those
# whose lent joints move (mean speed relative to the pelvis, m/s) are preferred by this weight, so a
# window that is still the wave's lead-in (arm down) does not become the whole wave.
LENT_ACTIVITY_WEIGHT = 2.0
# Legs count as still below this mean speed (m/s) of knees, ankles and feet relative to the pelvis,
# with the pelvis travelling slower than STILL_ROOT over the ground. Captured walks move the legs at
# 0.5-1 m/s, standing waves and bows at 0.05-0.15 m/s.
STILL_LEGS = 0.25
STILL_ROOT = 0.3
_TURN = re.compile(r"\bturn(?:s|ing|ed)?\b(?P<rest>.*)", re.IGNORECASE)
_LEGS = [JOINT_INDEX[f"{s}_{j}"] for s in ("left", "right") for j in ("knee", "ankle", "foot")]
_ARM = ("collar", "shoulder", "elbow", "wrist", "hand")

_SEQUENCE = re.compile(
    r"\s*(?:[,;.]\s*)?\b(?:and\s+then|then|after\s+that|afterwards|and\s+finally|finally)\b"
    r"\s*,?\s*|\s*;\s*|(?<=[a-z])\.\s+(?=\w)",
    re.IGNORECASE,
)
_WHILE = re.compile(r"\s*,?\s*\b(?:while|whilst)\b\s*", re.IGNORECASE)
# "as" joins clauses before a pronoun or an -ing word ("walks as she waves", "as waving"), not in
# comparisons ("as fast as he can") nor roles ("as a zombie").
_AS = re.compile(r"\s*,?\s*\bas\s+(?=(?:he|she|they|someone|somebody|\w+ing)\b)", re.IGNORECASE)
_COMPARISON = re.compile(r"\bas\s+\w+\s+as\b", re.IGNORECASE)
_AND = re.compile(r"(?:\s*,\s*(?:and\s+)?|\s+and\s+)(?=(\w+))", re.IGNORECASE)
_DETERMINERS = {"a", "an", "the", "this", "that", "one", "some", "my", "your", "our", "his", "her", "their"}
_PRONOUNS = {"he", "she", "they", "someone", "somebody", "it", "i", "we", "you", "everyone", "everybody"}
# Words after "and" that continue a phrase instead of starting a clause (closed word classes).
_NOT_VERBS = _DETERMINERS | {
    "both", "either", "each", "every", "other", "another", "two", "three", "its",
    "left", "right", "up", "down", "forth", "back", "forward", "forwards", "backward", "backwards",
    "sideways", "around", "over", "out", "in", "across", "away", "off", "on", "high", "low",
    "hand", "hands", "arm", "arms", "leg", "legs", "foot", "feet", "head", "knee", "knees", "shoulder",
    "shoulders", "elbow", "elbows", "wrist", "wrists", "hip", "hips", "body", "torso", "chest", "fist",
    "fists", "waist", "then",
}  # fmt: skip


@dataclass(frozen=True)
class Step:
    """One stretch of time: one clause, or two clauses done together ("while") or either way ("and")."""

    texts: tuple[str, ...]
    kind: str = "single"  # "single", "together" or "and"


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def _is_third_person(word: str) -> bool:
    return len(word) > 2 and word.endswith("s") and not word.endswith(("ss", "us", "is"))


def _subject(clause: str) -> tuple[str, str]:
    """(subject, predicate): a leading pronoun, or an article and the words up to the first verb-like
    word (at most four); ("", clause) when the clause starts with its verb."""
    words = clause.split()
    if not words:
        return "", clause
    first = words[0].lower()
    if first in _PRONOUNS:
        return words[0], " ".join(words[1:])
    if first in _DETERMINERS:
        for i in range(1, min(len(words), 6)):
            w = words[i].lower().strip(",")
            if _is_third_person(w) or w.endswith("ing"):
                return " ".join(words[:i]), " ".join(words[i:])
    return "", clause


def _verb_form(predicate: str) -> str:
    words = _words(predicate)
    if not words:
        return ""
    return "s" if _is_third_person(words[0]) else "ing" if words[0].endswith("ing") else "base"


def _split_and(predicate: str) -> list[str]:
    """Cut before "and" + a verb in the predicate's verb form (see the module doc)."""
    form = _verb_form(predicate)
    if not form:
        return [predicate]
    parts, start = [], 0
    for m in _AND.finditer(predicate):
        nxt = m.group(1).lower()
        verb = nxt not in _NOT_VERBS and not nxt.endswith("ly")
        if form == "s":
            verb = verb and _is_third_person(nxt)
        elif form == "ing":
            verb = verb and nxt.endswith("ing")
        if verb:
            parts.append(predicate[start : m.start()])
            start = m.end()
    parts.append(predicate[start:])
    return [p.strip(" ,") for p in parts]


def _with_subject(subject: str, clause: str) -> str:
    own, _ = _subject(clause)
    return clause if own or not subject else f"{subject} {clause}"


def _clean(text: str) -> str:
    return text.strip(" ,.;:!")


def _parse_step(part: str, subject: str) -> list[Step]:
    own, predicate = _subject(part)
    subject = own or subject
    sides = [_clean(s) for s in _WHILE.split(predicate)]
    if len(sides) == 1 and not _COMPARISON.search(predicate):
        sides = [_clean(s) for s in _AS.split(predicate)]
    if len(sides) == 2 and all(any(ch.isalpha() for ch in s) for s in sides):
        return [Step(tuple(_with_subject(subject, s) for s in sides), "together")]
    if len(sides) > 2:
        return [Step((part,))]
    clauses = [c for c in _split_and(predicate) if any(ch.isalpha() for ch in c)]
    if len(clauses) == 2:
        return [Step(tuple(_with_subject(subject, c) for c in clauses), "and")]
    if len(clauses) > 2:  # a chain of actions: one after the other
        return [Step((_with_subject(subject, c),)) for c in clauses]
    return [Step((_with_subject(subject, part),))]


def parse_prompt(prompt: str) -> list[Step]:
    """A prompt -> steps in time order (see the module doc). More than MAX_PIECES clauses: each
    part between sequence words is one piece; more than MAX_PIECES of those is an error."""
    parts = [_clean(p) for p in _SEQUENCE.split(prompt)]
    parts = [p for p in parts if any(ch.isalpha() for ch in p)] or [prompt]
    if len(parts) > MAX_PIECES:
        raise InputError(f"prompt has {len(parts)} steps; at most {MAX_PIECES} are supported")
    subject, _ = _subject(parts[0])
    steps: list[Step] = []
    for part in parts:
        steps.extend(_parse_step(part, subject))
        subject = _subject(part)[0] or subject
    if sum(len(s.texts) for s in steps) > MAX_PIECES:
        return [Step((p,)) for p in parts]
    return steps


# --- measuring pieces ---------------------------------------------------------------------------------


def legs_still(motion: Motion) -> bool:
    """Whether a motion keeps its legs still (stands or sits) rather than stepping or travelling."""
    pos = motion.joint_positions()
    rel = pos - pos[:, :1]
    legs = np.linalg.norm(np.diff(rel[:, _LEGS], axis=0), axis=-1).mean() * motion.fps
    root = np.linalg.norm(np.diff(motion.trans[:, [0, 2]], axis=0), axis=-1).mean() * motion.fps
    return bool(legs < STILL_LEGS and root < STILL_ROOT)


def upper_joints(text: str) -> list[int]:
    """The joints an upper-body clause moves: the arm of the side it names, else both arms, neck, head."""
    sides = [s for s in ("left", "right") if re.search(rf"\b{s}\b", text.lower())]
    if len(sides) == 1:
        return [JOINT_INDEX[f"{sides[0]}_{j}"] for j in _ARM]
    return [JOINT_INDEX[f"{s}_{j}"] for s in ("left", "right") for j in _ARM] + [
        JOINT_INDEX["neck"],
        JOINT_INDEX["head"],
    ]


def turn_degrees(text: str) -> float | None:
    """The heading change a clause asks for: "turns around/back" 180 (either way), "turns left" +90,
    "turns right" -90, "turns 45 degrees to the right" -45; None when it asks for none."""
    m = _TURN.search(text)
    if m is None:
        return None
    rest = m.group("rest").lower()
    sign = -1.0 if re.search(r"\bright\b", rest) and not re.search(r"\bleft\b", rest) else 1.0
    number = re.search(r"(\d+(?:\.\d+)?)\s*degrees?\b", rest)
    if number:
        return sign * float(number.group(1))
    if re.search(r"\b(?:around|round|about|back)\b", rest):
        return 180.0
    if re.search(r"\b(?:left|right)\b", rest):
        return sign * 90.0
    return None


def apply_turn(motion: Motion, start: int, degrees: float) -> Motion:
    """Turn the body from frame `start` to the end so that its facing changes by `degrees` over that
    span (180: either way, the way the motion already turns): the missing yaw is added along a
    smoothstep, and the path's steps turn with the body."""
    local = motion.matrices().astype(np.float64)
    yaw = np.unwrap(_yaw(local[start:, 0]))
    done = float(yaw[-1] - yaw[0])
    target = math.radians(degrees)
    if abs(degrees) == 180.0:
        target = math.copysign(math.pi, done if abs(done) > 1e-3 else 1.0)
    span = max(1, motion.num_frames - 1 - start)
    k = np.clip((np.arange(motion.num_frames) - start) / span, 0.0, 1.0)
    turn = (target - done) * k * k * (3 - 2 * k)
    ry = _rot_y(turn)
    local[:, 0] = ry @ local[:, 0]
    steps = np.diff(motion.trans.astype(np.float64), axis=0)
    steps = (ry[1:] @ steps[..., None])[..., 0]
    trans = np.concatenate([motion.trans[:1], motion.trans[:1] + np.cumsum(steps, 0)])
    return Motion.from_matrices(local, trans, motion.fps, motion.texts, motion.betas)


def lent_speed(rot6d: torch.Tensor, trans: torch.Tensor, joints: list[int], fps: float) -> torch.Tensor:
    """(N, F-1) mean speed (m/s) of `joints` relative to the pelvis, per frame, in N decoded candidates."""
    from vmclip.motion.kinematics import forward_kinematics

    pos = forward_kinematics(R.rotation_6d_to_matrix(rot6d), trans)[0]  # (N, F, 24, 3)
    rel = pos[:, :, joints] - pos[:, :, :1]
    return (rel[:, 1:] - rel[:, :-1]).norm(dim=-1).mean(-1) * fps


def seam_constraints(prev: Motion, frames: int, seam: int) -> MotionConstraints:
    """Constraints for a `frames`-long piece whose first `seam` frames must be prev's last ones."""
    poses = np.zeros((frames, 24, 3), np.float32)
    trans = np.zeros((frames, 3), np.float32)
    mask = np.zeros(frames, bool)
    poses[:seam] = prev.axis_angle()[-seam:]
    trans[:seam] = prev.trans[-seam:]
    mask[:seam] = True
    return MotionConstraints.create(poses, trans, mask)


def join(prev: Motion | None, piece: Motion, seam: int) -> Motion:
    """prev + piece, the piece in-painted onto prev's last `seam` frames (see the module doc)."""
    if prev is None:
        return piece
    placed = apply_constraints(piece, seam_constraints(prev, piece.num_frames, seam))
    return Motion(
        np.concatenate([prev.rot6d[:-seam], placed.rot6d]),
        np.concatenate([prev.trans[:-seam], placed.trans]),
        prev.fps,
        prev.texts,
    )


def together(lower: Motion, upper: Motion, joints: list[int], start: int) -> Motion:
    """`lower` with `upper`'s rotations of `joints` from frame `start` on (same length, same start)."""
    rot = lower.rot6d.copy()
    rot[start:, joints] = upper.rot6d[start:, joints]
    return Motion(rot, lower.trans, lower.fps, lower.texts)


# --- generating ---------------------------------------------------------------------------------------


class Composer:
    """Generates the steps of a parsed prompt with a `Generator` and joins them (model rate)."""

    def __init__(self, gen, rng: np.random.Generator, held: MotionConstraints | None, out_fps: float) -> None:
        self.gen = gen
        self.rng = rng
        self.held = held
        self.out_fps = out_fps
        self.fps = float(gen.cfg.fps)
        self.seam = max(2, int(round(SEAM_SECONDS * self.fps)))
        self._emb: dict[str, torch.Tensor] = {}
        self.seams: list[int] = []  # model frames where a joined piece's held frames begin

    def emb(self, text: str) -> torch.Tensor:
        if text not in self._emb:
            self._emb[text] = self.gen.embed([text])[0]
        return self._emb[text]

    def _cost(
        self, prev: Motion | None, rot: torch.Tensor, tr: torch.Tensor, lent_speeds: torch.Tensor | None
    ) -> torch.Tensor:
        """(N,) how badly each candidate continues prev, fits the user's constraints and (for a piece
        lending joints, whose per-frame speeds are `lent_speeds`) leaves those joints still."""
        cost = torch.zeros(len(rot), device=rot.device)
        if prev is not None:
            tail_rot = torch.from_numpy(prev.rot6d[-self.seam :]).to(rot)
            tail_tr = torch.from_numpy(prev.trans[-self.seam :]).to(tr)
            cost = cost + self.gen._seam_cost(tail_rot, tail_tr, rot[:, : self.seam], tr[:, : self.seam])
        if self.held is not None:
            start = 0 if prev is None else (prev.num_frames - self.seam) * self.out_fps / self.fps
            cost = cost + CONSTRAINT_WEIGHT * candidate_cost(
                rot, tr, self.held, int(round(start)), self.fps, self.out_fps
            )
        if lent_speeds is not None:
            active = lent_speeds.mean(-1)
            cost = cost + LENT_ACTIVITY_WEIGHT * (active.max() - active)
        return cost

    def _choose(
        self, prev: Motion | None, text: str, frames: int, lent: list[int] | None, search: bool = False
    ) -> Motion:
        """Decode seeded candidates and keep the `frames` frames with the least `_cost`. With `search`
        (a continuation of the same action) candidates are whole windows and any stretch of them may
        be kept, so a walk continues in step and a finished action (standing up) is not restarted."""
        n = (
            CONSTRAINED_CANDIDATES
            if self.held is not None
            else (1 if prev is None and not lent else CANDIDATES)
        )
        z = self.gen.draw(self.emb(text), self.rng, n, text)
        if prev is not None and hasattr(self.gen, "continue_from"):  # a model that in-paints tokens
            z = self.gen.continue_from(z, prev.slice(prev.num_frames - self.seam, prev.num_frames))
            search = False  # the piece starts where the previous one ends: no stretch to search
        window = self.gen.cfg.max_frames if search else frames
        rot, tr = self.gen.decode(z, window)
        speeds = lent_speed(rot, tr, lent, self.fps) if lent else None
        best, pick = math.inf, (0, 0)
        # With user constraints every offset costs a `candidate_cost`: every 3rd keeps the 100 ms budget.
        for o in range(0, window - frames + 1, 3 if self.held is not None else 1):
            part = None if speeds is None else speeds[:, o : o + frames - 1]
            cost = self._cost(prev, rot[:, o : o + frames], tr[:, o : o + frames], part)
            i = int(cost.argmin())
            if float(cost[i]) < best:
                best, pick = float(cost[i]), (i, o)
        i, o = pick
        return Motion(
            rot[i, o : o + frames].cpu().numpy(), tr[i, o : o + frames].cpu().numpy(), self.fps, [text]
        )

    def extend(self, prev: Motion | None, text: str, frames: int, lent: list[int] | None = None) -> Motion:
        """prev continued by `frames` new frames of `text`, in chunks of at most the model's window.
        Each chunk is as long as the window allows (an action that does not repeat, such as a turn or
        a bow, is one whole window, not two half windows each starting the action afresh)."""
        out, left = prev, frames
        while left > 0:
            held = 0 if out is None else self.seam
            n = min(left, self.gen.cfg.max_frames - held)
            piece = self._choose(out, text, n + held, lent, search=CONTINUE_SEARCH and out is not prev)
            if out is not None and not lent:
                self.seams.append(out.num_frames - self.seam)
            out = join(out, piece, self.seam)
            left -= n
        assert out is not None
        return out

    def probe(self, text: str) -> Motion:
        """The first draw of a text alone (a whole window), to see which body parts it moves."""
        z = self.gen.draw(self.emb(text), np.random.default_rng(0), 1, text)
        rot, tr = self.gen.decode(z, self.gen.cfg.max_frames)
        return Motion(rot[0].cpu().numpy(), tr[0].cpu().numpy(), self.fps)

    def resolve(self, steps: list[Step]) -> list[Step]:
        """Ordered "together" steps (upper-body clause first) and "and" steps decided (module doc)."""
        out: list[Step] = []
        for step in steps:
            if step.kind == "single":
                out.append(step)
                continue
            still = [legs_still(self.probe(t)) for t in step.texts]
            if step.kind == "and" and still[0] == still[1]:
                out.extend(Step((t,)) for t in step.texts)
            elif still[1] and not still[0]:
                out.append(Step(step.texts[::-1], "together"))
            else:
                out.append(Step(step.texts, "together"))
        return out

    def compose(self, steps: list[Step], total: int) -> Motion:
        """The steps over `total` model frames, joined (module doc)."""
        steps = self.resolve(steps)
        per = [total // len(steps) + (1 if i < total % len(steps) else 0) for i in range(len(steps))]
        if min(per) < 2:
            raise InputError(f"too short for {len(steps)} steps; give more seconds")
        out: Motion | None = None
        for step, n in zip(steps, per, strict=True):
            start = 0 if out is None else out.num_frames - self.seam
            if step.kind == "single":
                out = self.extend(out, step.texts[0], n)
            else:
                joints = upper_joints(step.texts[0])
                upper = self.extend(out, step.texts[0], n, joints)
                lower = self.extend(out, step.texts[1], n)
                out = together(lower, upper, joints, start)
            turns = [d for d in map(turn_degrees, step.texts) if d is not None]
            if turns:
                out = apply_turn(out, start, turns[0])
        assert out is not None
        return out


def rot6d_yaw(rot6d: np.ndarray) -> np.ndarray:
    """Facing angle (rad) about +Y of root rotations (..., 6)."""
    fwd = R.rotation_6d_to_matrix(torch.from_numpy(np.asarray(rot6d, np.float32)))[..., :, 2]
    return torch.atan2(fwd[..., 0], fwd[..., 2]).numpy()
