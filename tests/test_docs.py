"""The README and docs/ stay true: their commands parse, their links resolve, their pictures exist.

- the README holds the two commands, and CI (`.ci/run`) runs exactly its test command;
- every `vmclip` command named in code (inline or in a block) exists: its `--help` runs;
- every command line in a ```bash block parses with the real parser: `vmclip` lines with the `vmclip`
  argparse parser (a renamed or removed option fails), `docs/make_pictures.py` with its own parser,
  `build_addon.py` and `bench/*.py` lines by their options; files they name exist;
- every image the README links exists and is a real image (animated where it is a GIF);
- every relative link in the README and docs/ resolves, `#anchor` included.
All in this process: the parsers are built once, nothing runs but argparse.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import re
import shlex
import sys
from functools import cache
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
README_COMMANDS = (
    "bash setup.sh && .venv/bin/vmclip demo",
    "bash setup.sh && .venv/bin/python -m pytest -q",
)
MAX_IMAGE_BYTES = 1_000_000  # the README's pictures are committed: keep them small
VMCLIP = ("vmclip", ".venv/bin/vmclip")
PYTHON = ("python", "python3", ".venv/bin/python")

FENCE = re.compile(r"^```([\w-]*)\n(.*?)^```", re.M | re.S)
INLINE_CODE = re.compile(r"`([^`\n]+)`")
# [text](target) and ![alt](target); the target ends at whitespace or ")" (titles are not used here)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)|<img[^>]*\bsrc=\"([^\"]+)\"")
MENTION = re.compile(r"(?:^|[\s(])(?:\.venv/bin/)?vmclip((?: [a-z][a-z0-9-]*)*)")


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _blocks(text: str, lang: str | None = None) -> list[str]:
    return [body for kind, body in FENCE.findall(text) if lang is None or kind == lang]


def _prose(text: str) -> str:
    """The text without code blocks and inline code (links there are examples, not links)."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def _command_lines(block: str) -> list[list[str]]:
    """Each simple command of a bash block as tokens: continuations joined, comments dropped, split at
    `&&`, `||`, `;` and `|`, leading VAR=value assignments dropped."""
    commands = []
    for line in block.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
        lexer.whitespace_split = True
        current: list[str] = []
        for token in lexer:
            if token in (";", "&&", "||", "|", "&"):
                commands.append(current)
                current = []
            else:
                current.append(token)
        commands.append(current)
    out = []
    for tokens in commands:
        while tokens and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", tokens[0]):
            tokens = tokens[1:]
        if tokens:
            out.append(tokens)
    return out


@cache
def _vmclip_parser() -> argparse.ArgumentParser:
    from vmclip.cli import build_parser

    return build_parser()


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # noqa: SLF001 - argparse keeps its subparsers only here
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            return dict(action.choices)
    return {}


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> tuple[int, str]:
    """argparse's verdict without leaving the process: (exit code, what it printed)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            parser.parse_args(argv)
        except SystemExit as exc:
            return int(exc.code or 0), out.getvalue() + err.getvalue()
    return 0, ""


def _vmclip_argv(argv: list[str]) -> list[str]:
    from vmclip.cli import _rewrite_aliases

    return _rewrite_aliases(argv)


def _command_path(words: list[str]) -> list[str]:
    """The longest run of `words` that names (sub)commands of `vmclip`."""
    path, parser = [], _vmclip_parser()
    for word in _vmclip_argv(words):
        sub = _subcommands(parser)
        if word not in sub:
            break
        path.append(word)
        parser = sub[word]
    return path


def _mentions() -> dict[tuple[str, ...], str]:
    """Every `vmclip WORD ...` written in code, README and docs: {words: where}."""
    found: dict[tuple[str, ...], str] = {}
    for page in PAGES:
        text = _text(page)
        for code in INLINE_CODE.findall(FENCE.sub("", text)) + _blocks(text):
            for line in code.splitlines():
                for match in MENTION.finditer(line):
                    words = tuple(match.group(1).split())
                    if words:
                        found.setdefault(words, f"{page.relative_to(ROOT)}: {line.strip()}")
    return found


def _bash_commands() -> list[tuple[str, list[str]]]:
    return [
        (str(page.relative_to(ROOT)), tokens)
        for page in PAGES
        for block in _blocks(_text(page), "bash")
        for tokens in _command_lines(block)
    ]


def _options(tokens: list[str]) -> list[str]:
    return [t.split("=", 1)[0] for t in tokens if t.startswith("--")]


@cache
def _make_pictures_parser() -> argparse.ArgumentParser:
    spec = importlib.util.spec_from_file_location("make_pictures", ROOT / "docs" / "make_pictures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_parser()


@cache
def _build_addon_help() -> str:
    sys.path.insert(0, str(ROOT))
    try:
        import build_addon
    finally:
        sys.path.remove(str(ROOT))
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        build_addon.main(["--help"])
    return out.getvalue()


def _check_python(args: list[str]) -> str | None:
    """A `python SCRIPT ...` or `python -m pytest ...` line; None when it holds, else why not."""
    if args[:2] == ["-m", "pytest"]:
        missing = [a for a in args[2:] if a.startswith("tests/") and not (ROOT / a.split("::")[0]).exists()]
        return f"no such test file {missing}" if missing else None
    script = ROOT / args[0]
    if not script.is_file():
        return f"no such script {args[0]}"
    if args[0] == "docs/make_pictures.py":
        code, said = _parse(_make_pictures_parser(), args[1:])
        return None if code == 0 else said.strip()
    if args[0] == "build_addon.py":
        known = _build_addon_help()
    else:  # bench scripts: their options are declared in their source
        known = _text(script)
    unknown = [o for o in _options(args[1:]) if not re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", known)]
    return f"{args[0]} has no option {unknown}" if unknown else None


def _check(tokens: list[str]) -> str | None:
    program, args = tokens[0], tokens[1:]
    if program in VMCLIP:
        code, said = _parse(_vmclip_parser(), _vmclip_argv(args))
        return None if code == 0 else said.strip().splitlines()[-1]
    if program in PYTHON and args:
        return _check_python(args)
    if program == "bash":
        return None if (ROOT / args[0]).is_file() else f"no such script {args[0]}"
    return None  # another program (none of ours): not checked


def test_readme_has_the_two_commands_and_ci_runs_the_test_command():
    blocks = _blocks(_text(README), "bash")
    lines = {line.strip() for block in blocks for line in block.splitlines()}
    for command in README_COMMANDS:
        assert command in lines, f"README lost its command: {command}"
    ci = [line.strip() for line in _text(ROOT / ".ci" / "run").splitlines()]
    assert README_COMMANDS[1] in ci, ".ci/run must run exactly the README's test command"


def test_every_vmclip_command_named_in_the_docs_exists():
    mentions = _mentions()
    assert len(mentions) >= 10, mentions  # the finder itself works
    failures, helped = [], set()
    for words, where in sorted(mentions.items()):
        path = _command_path(list(words))
        if not path:
            failures.append(f"`vmclip {' '.join(words)}`: no such command ({where})")
            continue
        if tuple(path) in helped:
            continue
        helped.add(tuple(path))
        code, said = _parse(_vmclip_parser(), [*path, "--help"])
        if code != 0 or "usage: vmclip" not in said:
            failures.append(f"`vmclip {' '.join(path)} --help` failed ({where}): {said[-300:]}")
    assert not failures, "\n".join(failures)
    assert {("motion",), ("animate",), ("serve",), ("demo",)} <= helped


def test_every_bash_example_parses():
    commands = _bash_commands()
    checked = [(where, t) for where, t in commands if t[0] in VMCLIP or t[0] in PYTHON or t[0] == "bash"]
    assert len(checked) >= 30, f"only {len(checked)} command lines found"
    failures = []
    for where, tokens in checked:
        problem = _check(tokens)
        if problem:
            failures.append(f"{where}: {shlex.join(tokens)}\n    -> {problem}")
    assert not failures, "\n".join(failures)


def test_the_readme_pictures_exist():
    text = _text(README)
    targets = [a or b for a, b in IMAGE.findall(text)]
    assert len(targets) >= 2, "the README shows the result and the Blender panel"
    for target in targets:
        path = ROOT / target
        assert path.is_file(), f"README links a missing image: {target}"
        assert path.stat().st_size <= MAX_IMAGE_BYTES, f"{target} is larger than {MAX_IMAGE_BYTES} bytes"
        with Image.open(path) as img:
            img.verify()
        if path.suffix == ".gif":
            with Image.open(path) as img:
                assert img.n_frames > 1, f"{target} is not animated"


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


@cache
def _anchors(path: Path) -> frozenset[str]:
    text = FENCE.sub("", _text(path))
    return frozenset(_slug(h) for h in re.findall(r"^#{1,6} +(.+?) *#*$", text, re.M))


def test_every_relative_link_resolves():
    failures, count = [], 0
    for page in PAGES:
        for target in LINK.findall(_prose(_text(page))):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            count += 1
            file_part, _, anchor = target.partition("#")
            path = (page.parent / file_part).resolve() if file_part else page
            where = f"{page.relative_to(ROOT)}: ({target})"
            if not path.exists():
                failures.append(f"{where}: no such file")
            elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
                failures.append(f"{where}: no heading #{anchor}")
    assert count >= 20, f"only {count} links found"
    assert not failures, "\n".join(failures)


def test_the_checks_catch_a_wrong_command_and_a_wrong_link():
    """The checkers themselves: a renamed option, an unknown subcommand and a dead link are caught."""
    assert _check(["vmclip", "animate", "me.jpg", "--prompt", "x", "-o", "x.mp4"]) is None
    assert _check(["vmclip", "animate", "me.jpg", "--promt", "x", "-o", "x.mp4"]) is not None
    assert (
        _check([".venv/bin/vmclip", "motion", "convert", "a.bvh", "-o", "a.npz", "--fpss", "3"]) is not None
    )
    assert _command_path(["animat"]) == []
    assert _check([".venv/bin/python", "bench/bench_t2m.py", "--runz", "3"]) is not None
    assert _check([".venv/bin/python", "build_addon.py", "--offlin"]) is not None
    assert _check([".venv/bin/python", "docs/make_pictures.py", "--only", "everything"]) is not None
    assert _command_lines('A=1 vmclip motion "a b" -o x.npz && vmclip serve  # c') == [
        ["vmclip", "motion", "a b", "-o", "x.npz"],
        ["vmclip", "serve"],
    ]
    assert _slug("How it works (`backend/vmclip/person/`)") == "how-it-works-backendvmclipperson"
