"""The shell commands the documentation promises: every line of README.md's ``bash`` fences and of
the ``experiments/*.yaml`` comments that starts (after ``VAR=value`` prefixes) with
``python -m scmm_lightning``, ``scmm-lightning``, ``make`` or ``python benchmarks/<script>.py``.
Continuation lines (``\\``) are joined, trailing ``# comments`` dropped, ``[optional]`` parts removed."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROGRAMS = (("python", "-m", "scmm_lightning"), ("scmm-lightning",), ("make",))
ENV_ASSIGNMENT = re.compile(r"^[A-Z_][A-Z0-9_]*=\S*$")
LOOKS_LIKE_COMMAND = re.compile(
    r"^(?:[A-Z_][A-Z0-9_]*=\S*\s+)*(?:python -m scmm_lightning|scmm-lightning|make|python benchmarks/\S+\.py)(?:\s|$)"
)


@dataclass(frozen=True)
class Command:
    source: str  # "README.md:123"
    env: tuple[tuple[str, str], ...]
    words: tuple[str, ...]  # program words removed: ("fit", ...), ("demo",) for make, ("benchmarks/x.py", ...)
    program: str  # "scmm_lightning", "make" or "benchmark"

    def __str__(self) -> str:
        return f"{self.source}: {' '.join(self.words)}"


def _strip_comment(line: str) -> str:
    # a '#' starting a word begins a comment (no README command quotes a '#')
    return re.split(r"(?:^|\s)#", line, maxsplit=1)[0].rstrip()


def _logical_lines(lines: list[tuple[int, str]]) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for number, raw in lines:
        text = _strip_comment(raw) if not raw.rstrip().endswith("\\") else raw.rstrip()[:-1]
        if pending is not None:
            pending = (pending[0], pending[1] + " " + text.strip())
        else:
            pending = (number, text.strip())
        if not raw.rstrip().endswith("\\"):
            out.append(pending)
            pending = None
    if pending is not None:
        out.append(pending)
    return out


def parse(line: str, source: str) -> Command | None:
    if not LOOKS_LIKE_COMMAND.match(line):
        return None
    line = re.sub(r"\[--[^\]]*\]", " ", line)  # [--out_dir DIR], [--seed_everything N]: optional parts
    try:
        words = shlex.split(line)
    except ValueError as err:
        raise ValueError(f"{source}: cannot split the command {line!r}: {err}") from err
    env = []
    while words and ENV_ASSIGNMENT.match(words[0]):
        key, value = words.pop(0).split("=", 1)
        env.append((key, value))
    if len(words) > 1 and words[0] == "python" and words[1].startswith("benchmarks/"):
        return Command(source, tuple(env), tuple(words[1:]), "benchmark")
    for program in PROGRAMS:
        if tuple(words[: len(program)]) == program:
            name = "make" if program == ("make",) else "scmm_lightning"
            return Command(source, tuple(env), tuple(words[len(program) :]), name)
    return None


def readme_commands(path: Path = ROOT / "README.md") -> list[Command]:
    """Commands of the ``bash`` fences, then those written inline as code spans in the prose."""
    text = path.read_text()
    commands, fence, block, prose = [], None, [], []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.startswith("```"):
            if fence is None:
                fence, block = line[3:].strip(), []
            else:
                if fence in ("bash", "sh", "shell"):
                    for start, text in _logical_lines(block):
                        cmd = parse(text, f"{path.name}:{start}")
                        if cmd is not None:
                            commands.append(cmd)
                fence = None
            continue
        if fence is not None:
            block.append((number, line))
        else:
            prose.append((number, line))
    joined = "\n".join(line for _, line in prose)
    starts = [n for n, _ in prose]
    offsets = [0]
    for _, line in prose:
        offsets.append(offsets[-1] + len(line) + 1)
    for match in re.finditer(r"`([^`]+)`", joined):
        span = " ".join(match.group(1).split())
        line_index = max(i for i, o in enumerate(offsets[:-1]) if o <= match.start())
        cmd = parse(span, f"{path.name}:{starts[line_index]}")
        if cmd is not None and len(cmd.words) > (1 if cmd.program == "scmm_lightning" else 0):
            commands.append(cmd)
    return commands


def config_comment_commands(folder: Path = ROOT / "experiments") -> list[Command]:
    commands = []
    for path in sorted(folder.rglob("*.yaml")):
        lines = [(n, line) for n, line in enumerate(path.read_text().splitlines(), 1)]
        comment = [(n, line.lstrip()[1:].strip()) for n, line in lines if line.lstrip().startswith("#")]
        # a comment continues a command when the previous comment line ended in '\'
        for start, text in _logical_lines(comment):
            cmd = parse(text, f"{path.relative_to(ROOT)}:{start}")
            if cmd is not None:
                commands.append(cmd)
    return commands
