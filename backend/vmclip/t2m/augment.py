"""Text augmentation: turn the data's short labels into the sentences people type.

The mocap texts are mostly labels ("wave right hand, tired style", "walking", "cartwheel"). Each
clip's texts are expanded with (a) phrasings of the action it names (synonyms, whole sentences, with
the side word carried over), (b) the style as adjectives and adverbs ("a weary person ...", "...
wearily"), (c) plain templates around the original text. The motion latent is aligned with all of
them, so free sentences land near the right motions.
"""

from __future__ import annotations

import random
import re

# Action concepts: pattern on the (lower-cased) label, then third-person phrasings. "{0}" is the
# pattern's first group (a side word). Specific patterns come before general ones.
CONCEPTS: list[tuple[str, list[str]]] = [
    (
        r"zombie",
        [
            "walks like a zombie",
            "shambles forward like a zombie",
            "staggers with arms stretched out",
            "lurches forward stiffly like the undead",
        ],
    ),
    (
        r"jumping jacks?",
        [
            "does jumping jacks",
            "does star jumps",
            "jumps while clapping the hands overhead",
            "exercises with jumping jacks",
        ],
    ),
    (
        r"cartwheel",
        [
            "does a cartwheel",
            "turns a cartwheel",
            "flips sideways over the hands",
            "performs a gymnastic cartwheel",
        ],
    ),
    (r"backflip|back flip", ["does a backflip", "flips backwards in the air", "performs a back somersault"]),
    (r"sideflip|side flip", ["does a side flip", "flips sideways in the air"]),
    (r"crawl", ["crawls on hands and knees", "crawls forward on the ground", "creeps along the floor"]),
    (
        r"get(?:ting)? up|stand(?:ing)? up|rise from|gets up",
        [
            "gets up from the floor",
            "stands up from the ground",
            "rises from lying on the floor",
            "picks themself up off the ground",
        ],
    ),
    (
        r"fall(?:ing)? (?:down|backward)|falls",
        ["falls down", "falls to the ground", "collapses onto the floor", "trips and falls"],
    ),
    (r"spin kick", ["does a spinning kick", "spins around and kicks"]),
    (r"kick", ["kicks", "kicks with the leg", "kicks forward", "does a kick", "kicks something in front"]),
    (
        r"punch(?:ing)? (left|right)",
        ["punches with the {0} fist", "throws a {0} punch", "boxes with the {0} hand"],
    ),
    (r"punch|strike|box", ["punches", "throws punches", "punches forward", "boxes", "hits with the fist"]),
    (
        r"raise up both hands|raise both|both hands up",
        [
            "raises both hands",
            "raises both arms above the head",
            "puts both hands up in the air",
            "lifts both arms up",
            "throws both hands up",
        ],
    ),
    (
        r"raise up (left|right) hand",
        [
            "raises the {0} hand",
            "lifts the {0} arm up",
            "puts the {0} hand up",
            "raises the {0} arm above the head",
        ],
    ),
    (
        r"wave both hands",
        [
            "waves both hands",
            "waves with both arms",
            "waves both arms overhead",
            "greets with both hands waving",
        ],
    ),
    (
        r"wave (left|right) hand",
        [
            "waves the {0} hand",
            "waves with the {0} hand",
            "waves hello with the {0} hand",
            "greets someone with the {0} hand",
        ],
    ),
    (r"byebye|bye", ["waves goodbye", "says goodbye with a wave", "waves bye-bye", "waves farewell"]),
    (r"wav(?:e|ing)", ["waves", "waves a hand", "waves hello", "greets someone with a wave"]),
    (r"\bcall\b", ["calls someone over", "beckons someone to come", "calls out with a hand at the mouth"]),
    (r"\bbow\b", ["bows", "takes a bow", "bows politely", "bends forward in a bow", "bows to someone"]),
    (r"guide", ["guides someone the way", "points the way with an arm", "shows someone the direction"]),
    (r"respond", ["responds to someone", "answers with a gesture"]),
    (r"slash|sword", ["swings a sword", "slashes with a sword", "fights with a sword"]),
    (r"dab", ["does a dab", "dabs"]),
    (r"danc", ["dances", "is dancing", "dances to music", "moves to the rhythm"]),
    (
        r"walk turn (left|right)|turning (left|right)|turn (left|right)",
        ["turns {0}", "walks and turns {0}", "turns to the {0} while walking", "walks forward and turns {0}"],
    ),
    (r"running and turning (left|right)", ["runs and turns {0}", "runs in a curve to the {0}"]),
    (r"walk(?:s|ing)? back|walking backward", ["walks backwards", "walks backward", "steps back"]),
    (r"walk(?:s|ing)? (left|right)", ["walks to the {0}", "walks sideways to the {0}", "steps to the {0}"]),
    (r"run(?:ning)? (left|right|backward)", ["runs {0}", "runs to the {0}"]),
    (r"\bdash\b|sprint", ["dashes", "runs fast", "sprints", "dashes forward"]),
    (r"\brun|jog", ["runs", "runs forward", "jogs", "is running", "runs quickly"]),
    (r"sneak", ["sneaks", "tiptoes quietly", "sneaks forward carefully"]),
    (r"strut|sexy walk", ["struts", "walks with a swagger", "catwalks"]),
    (r"\bwalk", ["walks", "walks forward", "is walking", "strolls", "takes a walk", "walks ahead"]),
    (r"\bjump|\bhop", ["jumps", "jumps up", "jumps in place", "leaps", "hops"]),
    (
        r"idle|stand(?:s|ing)?\b|waits|shifts their weight",
        ["stands still", "stands and waits", "stands idle", "shifts weight while standing"],
    ),
    (r"turning around|turns around", ["turns around", "turns to face the other way"]),
    (r"basketball", ["plays basketball", "dribbles a basketball"]),
    (r"soccer", ["plays soccer", "kicks a soccer ball"]),
    (r"climb", ["climbs", "climbs up"]),
]
_COMPILED = [(re.compile(p), ph) for p, ph in CONCEPTS]

# Bandai-Namco style names -> adjectives and adverbs.
STYLES: dict[str, tuple[list[str], list[str]]] = {
    "active": (["energetic", "lively", "vigorous"], ["energetically", "with lots of energy"]),
    "angry": (["angry", "furious", "mad"], ["angrily", "in anger"]),
    "childish": (["childish", "childlike", "playful"], ["like a child", "playfully"]),
    "chimpira": (["swaggering", "thuggish", "cocky"], ["with a swagger", "like a thug"]),
    "elderly": (["elderly", "old", "aged"], ["like an old person", "slowly like an elderly man"]),
    "old": (["old", "elderly", "aged"], ["like an old man", "like an elderly person"]),
    "exhausted": (["exhausted", "tired", "weary"], ["wearily", "with exhaustion"]),
    "tired": (["tired", "weary", "exhausted"], ["tiredly", "wearily"]),
    "feminine": (["feminine", "graceful", "ladylike"], ["gracefully", "in a feminine way"]),
    "giant": (["giant", "huge", "lumbering"], ["heavily", "like a giant"]),
    "happy": (["happy", "cheerful", "joyful"], ["happily", "cheerfully"]),
    "masculine": (["masculine", "manly", "tough"], ["in a masculine way", "like a tough guy"]),
    "masculinity": (["masculine", "manly", "tough"], ["in a masculine way", "like a tough guy"]),
    "musical": (["musical", "rhythmic", "theatrical"], ["rhythmically", "like in a musical"]),
    "normal": (["", "normal"], ["", "normally"]),
    "not confident": (["shy", "timid", "unconfident"], ["timidly", "shyly"]),
    "proud": (["proud", "confident", "self-assured"], ["proudly", "confidently"]),
    "sad": (["sad", "depressed", "unhappy"], ["sadly", "gloomily"]),
    "youthful": (["youthful", "young", "spry"], ["youthfully", "like a young person"]),
    "depressed": (["depressed", "sad", "gloomy"], ["sadly", "gloomily"]),
    "neutral": (["", "normal"], ["", "normally"]),
}
_STYLE_PREFIX = re.compile(r"^(angry|depressed|old|neutral|sexy|happy|sad|tired|proud) ")
_SUBJECTS = ["a person", "someone", "a man", "a woman", "the person"]


def split_style(text: str) -> tuple[str, str | None]:
    """'walk, tired style' -> ('walk', 'tired'); 'angry running' -> ('running', 'angry')."""
    t = text.strip().lower()
    m = re.match(r"^(.*?),\s*([a-z ]+?) style$", t)
    if m:
        return m.group(1).strip(), m.group(2).strip()
    m = _STYLE_PREFIX.match(t)
    if m and m.group(1) in STYLES and t[m.end() :]:
        return t[m.end() :], m.group(1)
    return t, None


def action_phrases(text: str) -> list[str]:
    """Third-person phrasings of the first concept the text names (empty when none matches)."""
    action, _ = split_style(text)
    for pattern, phrasings in _COMPILED:
        m = pattern.search(action)
        if m:
            side = next((g for g in m.groups() if g), "")
            return [p.format(side) for p in phrasings]
    return []


def concept_of(text: str) -> str | None:
    """The matching concept's pattern (a stable key), for grouping labels in evaluation."""
    action, _ = split_style(text)
    for pattern, _ in _COMPILED:
        if pattern.search(action):
            return pattern.pattern
    return None


def augment_texts(texts: list[str], max_variants: int = 24, seed: int = 0) -> list[str]:
    """Original texts plus up to `max_variants` sentences built from them (deterministic per seed)."""
    rng = random.Random(seed)
    out: list[str] = []
    for text in texts:
        if not text.strip():
            continue
        out.append(text.strip())
        action, style = split_style(text)
        adjs, advs = STYLES.get(style or "", ([""], [""]))
        phrases = action_phrases(text) or [action]
        for phrase in phrases:
            subj = rng.choice(_SUBJECTS)
            adj = rng.choice(adjs)
            adv = rng.choice(advs)
            out.append(f"{subj} {phrase}")
            if style and adj:
                article = "an" if adj[0] in "aeiou" else "a"
                out.append(f"{article} {adj} person {phrase}")
            if style and adv:
                out.append(f"{rng.choice(_SUBJECTS)} {phrase} {adv}")
        if action != text.strip().lower():
            out.append(action)
    seen: set[str] = set()
    unique = [t for t in out if not (t in seen or seen.add(t))]
    head, rest = unique[: len(texts)], unique[len(texts) :]
    rng.shuffle(rest)
    return head + rest[:max_variants]
