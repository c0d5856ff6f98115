"""The organization's skills library (the Agent Skills format Claude Code and Codex read).

A skill is a folder with a `SKILL.md`: YAML front matter with `name` and `description`, the
instructions below it, and optional files next to it (scripts, references, templates). The
front matter is parsed with PyYAML, the format's own syntax, rather than by hand.
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import yaml  # type: ignore[import-untyped,unused-ignore]
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from rudder.db.models import Agent, Skill, utcnow
from rudder.domain import activity
from rudder.domain.errors import Conflict, Invalid, NotFound

# The Agent Skills naming rule: lowercase letters, digits and hyphens.
NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
MAX_DESCRIPTION = 1024
MAX_FILES = 50
MAX_FILE_BYTES = 256 * 1024
MAX_ZIP_BYTES = 4 * 1024 * 1024
_FRONT = re.compile(r"\A---\s*\n(.*?)\n---\s*(?:\n|\Z)(.*)\Z", re.S)


@dataclass(frozen=True, slots=True)
class SkillFiles:
    """A skill as the runtimes get it: its name and every file of its folder."""

    name: str
    description: str
    files: dict[str, str] = field(default_factory=dict)  # relative path → text, SKILL.md included


def parse_skill_md(text: str) -> tuple[str, str, str]:
    """(name, description, instructions) of a SKILL.md, or Invalid naming what is wrong."""
    if "\x00" in text:
        raise Invalid("SKILL.md: must not contain NUL characters")
    match = _FRONT.match(text.replace("\r\n", "\n"))
    if match is None:
        raise Invalid("SKILL.md: must start with front matter between '---' lines")
    try:
        meta = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as exc:
        raise Invalid(f"SKILL.md: the front matter is not valid YAML ({exc})") from None
    if not isinstance(meta, dict):
        raise Invalid("SKILL.md: the front matter must be a mapping (name: ..., description: ...)")
    name, description = meta.get("name"), meta.get("description")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise Invalid(
            "name: a skill name is 1-64 lowercase letters, digits and hyphens "
            "(not starting or ending with a hyphen)"
        )
    if not isinstance(description, str) or not description.strip():
        raise Invalid("description: the front matter needs a description of when to use the skill")
    if len(description) > MAX_DESCRIPTION:
        raise Invalid(f"description: at most {MAX_DESCRIPTION} characters")
    return name, description.strip(), match.group(2)


def compose_skill_md(name: str, description: str, instructions: str) -> str:
    front = yaml.safe_dump({"name": name, "description": description}, allow_unicode=True)
    return f"---\n{front}---\n\n{instructions.strip()}\n"


def _check_files(files: dict[str, Any]) -> dict[str, str]:
    if len(files) > MAX_FILES:
        raise Invalid(f"files: at most {MAX_FILES} files per skill")
    out: dict[str, str] = {}
    for raw, content in files.items():
        path = PurePosixPath(raw)
        if (
            not raw
            or path.is_absolute()
            or any(part in ("", ".", "..") for part in path.parts)
            or "\\" in raw
        ):
            raise Invalid(f"files: {raw!r} must be a relative path inside the skill's folder")
        if str(path) == "SKILL.md":
            continue
        if not isinstance(content, str) or "\x00" in content or "\x00" in raw:
            raise Invalid(f"files: {raw!r} must be text (no NUL characters)")
        if len(content.encode()) > MAX_FILE_BYTES:
            raise Invalid(f"files: {raw!r} is larger than {MAX_FILE_BYTES // 1024} KB")
        out[str(path)] = content
    return out


async def names(session: AsyncSession, org_id: str) -> list[str]:
    return list(
        await session.scalars(select(Skill.name).where(Skill.org_id == org_id).order_by(Skill.name))
    )


async def list_skills(session: AsyncSession, org_id: str) -> list[Skill]:
    return list(
        await session.scalars(select(Skill).where(Skill.org_id == org_id).order_by(Skill.name))
    )


async def get_skill(session: AsyncSession, org_id: str, name: str) -> Skill:
    found = await session.scalar(select(Skill).where(Skill.org_id == org_id, Skill.name == name))
    if found is None:
        raise NotFound(f"skill {name!r} not found")
    return found


async def save_skill(
    session: AsyncSession,
    org_id: str,
    skill_md: str,
    files: dict[str, Any] | None,
    actor: str,
    *,
    replace: bool = False,
) -> Skill:
    name, description, _ = parse_skill_md(skill_md)
    checked = _check_files(files or {})
    found = await session.scalar(select(Skill).where(Skill.org_id == org_id, Skill.name == name))
    if found is not None and not replace:
        raise Conflict(f"a skill named {name!r} already exists in this organization")
    if found is None:
        found = Skill(org_id=org_id, name=name, description=description, body=skill_md)
        session.add(found)
        action = "skill.created"
    else:
        action = "skill.updated"
    found.description = description
    found.body = skill_md
    found.files = checked
    found.updated_at = utcnow()
    await session.flush()
    activity.record(
        session,
        org_id=org_id,
        actor=actor,
        action=action,
        entity_type="skill",
        entity_id=found.id,
        details={"name": name, "files": sorted(checked)},
    )
    return found


def read_zip(data: bytes) -> tuple[str, dict[str, str]]:
    """(SKILL.md, other files) of a zipped skill folder: SKILL.md at the top or in one folder."""
    if len(data) > MAX_ZIP_BYTES:
        raise Invalid(f"file: the zip is larger than {MAX_ZIP_BYTES // (1024 * 1024)} MB")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise Invalid("file: not a zip archive") from None
    entries = [i for i in archive.infolist() if not i.is_dir()]
    tops = [i for i in entries if PurePosixPath(i.filename).name == "SKILL.md"]
    tops.sort(key=lambda i: len(PurePosixPath(i.filename).parts))
    if not tops:
        raise Invalid("file: the zip has no SKILL.md")
    root = PurePosixPath(tops[0].filename).parent
    files: dict[str, str] = {}
    skill_md = ""
    for info in entries:
        path = PurePosixPath(info.filename)
        try:
            rel = path.relative_to(root)
        except ValueError:
            continue
        if info.file_size > MAX_FILE_BYTES:
            raise Invalid(f"files: {rel} is larger than {MAX_FILE_BYTES // 1024} KB")
        try:
            text = archive.read(info).decode("utf-8")
        except UnicodeDecodeError:
            raise Invalid(f"files: {rel} is not UTF-8 text") from None
        if str(rel) == "SKILL.md":
            skill_md = text
        else:
            files[str(rel)] = text
    return skill_md, files


async def delete_skill(session: AsyncSession, org_id: str, name: str, actor: str) -> None:
    skill = await get_skill(session, org_id, name)
    agents = await session.scalars(select(Agent).where(Agent.org_id == org_id))
    for agent in agents:
        if name in (agent.skills or []):
            agent.skills = [n for n in agent.skills if n != name]
    await session.delete(skill)
    activity.record(
        session,
        org_id=org_id,
        actor=actor,
        action="skill.deleted",
        entity_type="skill",
        entity_id=skill.id,
        details={"name": name},
    )


async def skills_for_run(session: AsyncSession, agent: Agent) -> list[SkillFiles]:
    """The enabled skills of `agent`, with their files, in the agent's order."""
    enabled = list(agent.skills or [])
    if not enabled:
        return []
    rows = {
        s.name: s
        for s in await session.scalars(
            select(Skill).where(Skill.org_id == agent.org_id, Skill.name.in_(enabled))
        )
    }
    return [
        SkillFiles(
            name=n,
            description=rows[n].description,
            files={"SKILL.md": rows[n].body, **dict(rows[n].files or {})},
        )
        for n in enabled
        if n in rows
    ]
