"""CLIP's byte-level BPE tokeniser, reading the `bpe_simple_vocab_16e6.txt.gz` merges file.

The vocabulary is not shipped here (it belongs to the optional `clip` package); pass its path, or
install `clip` / `clip-anytorch` and it is found in the package's data. Token layout (CLIP's): 256
byte symbols, the same 256 with an end-of-word mark `</w>`, one token per merge, then
`<|startoftext|>` and `<|endoftext|>`.
"""

from __future__ import annotations

import functools
import gzip
import html
import importlib.util
import os
from pathlib import Path

from vmclip.errors import MissingAssetError

VOCAB_NAME = "bpe_simple_vocab_16e6.txt.gz"
NUM_MERGES = 49152 - 256 - 2  # CLIP uses this many merges from its 262k-line file
CONTEXT_LENGTH = 77

try:  # Unicode classes (\p{L}) as CLIP's tokeniser uses; `regex` comes with transformers.
    import regex as _re

    _PATTERN = _re.compile(
        r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]"
        r"|[^\s\p{L}\p{N}]+",
        _re.IGNORECASE,
    )
except ImportError:  # pragma: no cover - the stdlib approximation of the same classes
    import re as _re

    _PATTERN = _re.compile(
        r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[^\W\d_]+|\d"
        r"|[^\s\w]+|_+",
        _re.IGNORECASE,
    )


@functools.lru_cache(maxsize=1)
def byte_symbols() -> dict[int, str]:
    """Map every byte to a printable unicode character (printable Latin-1 bytes map to themselves)."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in keep}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def find_vocab(path: str | os.PathLike | None = None) -> Path:
    """The merges file: an explicit path, $VMCLIP_CLIP_BPE, or the installed `clip` package's data."""
    candidates: list[Path] = []
    if path:
        candidates.append(Path(path))
    elif os.environ.get("VMCLIP_CLIP_BPE"):
        candidates.append(Path(os.environ["VMCLIP_CLIP_BPE"]))
    else:
        spec = importlib.util.find_spec("clip")  # finds the package without importing torchvision
        if spec is not None and spec.submodule_search_locations:
            for loc in spec.submodule_search_locations:
                candidates.append(Path(loc) / VOCAB_NAME)
    for cand in candidates:
        if cand.is_file():
            return cand
    where = ", ".join(str(c) for c in candidates) or "no path given and the clip package is not installed"
    raise MissingAssetError(
        f"CLIP's BPE vocabulary {VOCAB_NAME} not found ({where}); pass its path "
        "(--clip-bpe or VMCLIP_CLIP_BPE) or install the clip package"
    )


class ClipBPE:
    """Text -> CLIP token ids (start and end tokens added, padded/truncated to 77)."""

    def __init__(self, vocab_path: str | os.PathLike | None = None) -> None:
        path = find_vocab(vocab_path)
        try:
            with gzip.open(path, "rt", encoding="utf-8") as fh:
                lines = fh.read().split("\n")
        except (OSError, EOFError, UnicodeDecodeError) as exc:
            raise MissingAssetError(f"{path}: not a readable gzip BPE vocabulary ({exc})") from None
        # First line is a version header; then one merge "a b" per line.
        merges = [tuple(line.split()) for line in lines[1 : NUM_MERGES + 1] if len(line.split()) == 2]
        symbols = list(byte_symbols().values())
        vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
        vocab += ["<|startoftext|>", "<|endoftext|>"]
        self.encoder = {tok: i for i, tok in enumerate(vocab)}
        self.ranks = {m: i for i, m in enumerate(merges)}
        self.sot = self.encoder["<|startoftext|>"]
        self.eot = self.encoder["<|endoftext|>"]
        self._cache: dict[str, list[str]] = {}

    def _bpe(self, word: str) -> list[str]:
        """Merge the word's symbols by rank, lowest rank first, until no known pair remains."""
        if word in self._cache:
            return self._cache[word]
        parts = list(word[:-1]) + [word[-1] + "</w>"]
        while len(parts) > 1:
            adjacent = list(zip(parts, parts[1:], strict=False))
            pair = min(adjacent, key=lambda ab: self.ranks.get(ab, len(self.ranks)))
            if pair not in self.ranks:
                break
            merged: list[str] = []
            i = 0
            while i < len(parts):
                if i < len(parts) - 1 and (parts[i], parts[i + 1]) == pair:
                    merged.append(parts[i] + parts[i + 1])
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        self._cache[word] = parts
        return parts

    def encode(self, text: str) -> list[int]:
        text = " ".join(html.unescape(html.unescape(text)).split()).lower()
        table = byte_symbols()
        ids: list[int] = []
        for word in _PATTERN.findall(text):
            mapped = "".join(table[b] for b in word.encode("utf-8"))
            ids.extend(self.encoder[p] for p in self._bpe(mapped))
        return ids

    def __call__(self, texts: list[str] | str, context_length: int = CONTEXT_LENGTH) -> list[list[int]]:
        """Token ids per text, with start/end tokens, truncated (end token kept) and zero-padded."""
        if isinstance(texts, str):
            texts = [texts]
        rows = []
        for text in texts:
            ids = [self.sot, *self.encode(text), self.eot]
            if len(ids) > context_length:
                ids = ids[: context_length - 1] + [self.eot]
            rows.append(ids + [0] * (context_length - len(ids)))
        return rows
