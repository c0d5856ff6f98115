"""Skills delivered to a run the way its runtime reads them (called once, by the executor).

- `claude_local`: Claude Code discovers skills in `.claude/skills/<name>/SKILL.md` of its
  project and of every directory given with `--add-dir` (since 2.1.32); each run gets a private directory
  with the agent's skills, added with `--add-dir`, so the agent's own working directory (a
  repository, often) is never written to.
- `codex_local`: Codex discovers repository skills in `.agents/skills/<name>/SKILL.md` from its
  working directory up to the repository root, and has no flag for another skills directory;
  the skills are written into `<cwd>/.agents/skills/` for the run and removed afterwards
  (only folders Rudder wrote: an existing folder of the same name is left alone). Without a
  configured `cwd`, the run gets a private working directory.
- `process` and `http` get them in the context JSON (`skills`: name, description, the
  SKILL.md text and the other files); `openai` gets them in its system prompt.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from .base import RunContext

MARKER = ".rudder-skill"
# Folders written under a shared working directory, with how many runs use them right now.
_in_use: dict[Path, int] = {}


class SkillLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def files(self) -> Mapping[str, str]: ...


def _write(folder: Path, skill: SkillLike) -> None:
    for rel, text in skill.files.items():
        target = folder / rel
        # Paths were checked when the skill was saved; check again, files are written here.
        if folder.resolve() not in target.resolve().parents:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")


def payload(skills: Sequence[SkillLike]) -> list[dict[str, Any]]:
    return [
        {
            "name": s.name,
            "description": s.description,
            "skill_md": s.files.get("SKILL.md", ""),
            "files": {k: v for k, v in s.files.items() if k != "SKILL.md"},
        }
        for s in skills
    ]


def _prompt_section(skills: Sequence[SkillLike]) -> str:
    parts = ["Skills you have (follow one when the task matches its description):"]
    for s in skills:
        parts.append(f"## Skill: {s.name}\n{s.description}\n\n{s.files.get('SKILL.md', '')}")
    return "\n\n".join(parts)


@contextlib.contextmanager
def deliver(runtime_type: str, ctx: RunContext, skills: Sequence[SkillLike]) -> Iterator[None]:
    """Put `skills` where `runtime_type` reads them for the duration of the run."""
    if not skills:
        yield
        return
    if runtime_type == "claude_local":
        with tempfile.TemporaryDirectory(prefix="rudder-skills-") as tmp:
            for skill in skills:
                _write(Path(tmp) / ".claude" / "skills" / skill.name, skill)
            config = dict(ctx.runtime_config)
            config["extra_args"] = [*list(config.get("extra_args") or []), "--add-dir", tmp]
            ctx.runtime_config = config
            yield
        return
    if runtime_type == "codex_local":
        with _codex_skills(ctx, skills):
            yield
        return
    if runtime_type == "openai":
        ctx.instructions = "\n\n".join(p for p in (ctx.instructions, _prompt_section(skills)) if p)
        yield
        return
    ctx.extra["skills"] = payload(skills)
    yield


@contextlib.contextmanager
def _codex_skills(ctx: RunContext, skills: Sequence[SkillLike]) -> Iterator[None]:
    config = dict(ctx.runtime_config)
    private = None
    if not config.get("cwd"):
        private = tempfile.mkdtemp(prefix="rudder-codex-")
        config["cwd"] = private
        ctx.runtime_config = config
    root = Path(str(config["cwd"])) / ".agents" / "skills"
    written: list[Path] = []
    try:
        for skill in skills:
            folder = root / skill.name
            if folder in _in_use:
                _in_use[folder] += 1
                written.append(folder)
                continue
            if folder.exists():
                continue  # someone's own skill of that name: theirs wins, untouched
            folder.mkdir(parents=True)
            (folder / MARKER).write_text("written by Rudder for a run; removed after it\n")
            _write(folder, skill)
            _in_use[folder] = 1
            written.append(folder)
        yield
    finally:
        for folder in written:
            _in_use[folder] -= 1
            if _in_use[folder] <= 0:
                _in_use.pop(folder, None)
                if (folder / MARKER).exists():
                    shutil.rmtree(folder, ignore_errors=True)
        if private is not None:
            shutil.rmtree(private, ignore_errors=True)
