"""The skills library and its delivery: process (context JSON), claude_local and codex_local
(files where the CLIs discover skills), openai (system prompt); a run records its skills."""

from __future__ import annotations

import io
import json
import sys
import zipfile
from pathlib import Path

import httpx
import pytest

from rudder.runtimes import skills as delivery
from rudder.runtimes.base import RunContext
from tests.agents.support import make_agent
from tests.helpers import default_org_and_agent, wait_run

SKILL_CLI = Path(__file__).with_name("skill_cli.py")
REVIEW_MD = (
    "---\nname: code-review\ndescription: Review a diff for bugs and style.\n---\n\n"
    "Read the diff; list bugs first, then style.\n"
)


def _exists(path: str) -> bool:
    return Path(path).exists()


def _zip(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, text in files.items():
            z.writestr(name, text)
    return buf.getvalue()


async def test_library_create_import_edit_delete(client: httpx.AsyncClient) -> None:
    org, _ = await default_org_and_agent(client)
    base = f"/api/orgs/{org['id']}/skills"
    made = await client.post(
        base, json={"skill_md": REVIEW_MD, "files": {"checklist.md": "- tests?"}}
    )
    assert made.status_code == 201, made.text
    assert made.json()["name"] == "code-review" and made.json()["files"] == ["checklist.md"]
    dup = await client.post(base, json={"skill_md": REVIEW_MD})
    assert dup.status_code == 409
    upload = _zip(
        {
            "release-notes/SKILL.md": "---\nname: release-notes\ndescription: Write notes.\n---\nGo.",
            "release-notes/scripts/collect.sh": "git log --oneline\n",
            "other/ignored.txt": "not part of the skill",
        }
    )
    imported = await client.post(
        base + "/import", files={"file": ("notes.zip", upload, "application/zip")}
    )
    assert imported.status_code == 201, imported.text
    assert imported.json()["files"] == ["scripts/collect.sh"]
    names = [s["name"] for s in (await client.get(base)).json()]
    assert names == ["code-review", "release-notes"]

    for body, field in (
        ({"skill_md": "no front matter"}, "SKILL.md"),
        ({"skill_md": "---\nname: Bad Name\ndescription: x\n---\n"}, "name"),
        ({"skill_md": "---\nname: ok\n---\n"}, "description"),
        ({"skill_md": "---\nname: [unclosed\n---\n"}, "YAML"),
        ({"name": "ok", "description": "d", "files": {"../evil": "x"}}, "files"),
        ({"name": "ok", "description": "d", "files": {"/etc/x": "x"}}, "files"),
        ({"description": "d"}, "skill_md"),
    ):
        r = await client.post(base, json=body)
        assert r.status_code == 422, (body, r.text)
        assert field in r.json()["detail"], (field, r.json())
    not_zip = await client.post(base + "/import", files={"file": ("x.zip", b"nope", "x")})
    assert not_zip.status_code == 422 and "zip" in not_zip.json()["detail"]

    agent = await make_agent(client, org["id"], "Reviewer", skills=["code-review", "release-notes"])
    edited = await client.put(
        base + "/code-review",
        json={"name": "code-review", "description": "Review diffs.", "instructions": "New."},
    )
    assert edited.status_code == 200 and edited.json()["agents"] == ["Reviewer"]
    assert (await client.delete(base + "/release-notes")).status_code == 204
    after = (await client.get(f"/api/agents/{agent['id']}")).json()
    assert after["skills"] == ["code-review"]
    assert "skill.deleted" in [
        a["action"] for a in (await client.get(f"/api/orgs/{org['id']}/activity")).json()
    ]


async def test_process_runs_get_skills_in_the_context(client: httpx.AsyncClient) -> None:
    org, _ = await default_org_and_agent(client)
    await client.post(f"/api/orgs/{org['id']}/skills", json={"skill_md": REVIEW_MD})
    agent = await make_agent(client, org["id"], "Proc", skills=["code-review"])
    conv = (
        await client.post(f"/api/orgs/{org['id']}/conversations", json={"agent_id": agent["id"]})
    ).json()
    msg = (
        await client.post(f"/api/conversations/{conv['id']}/messages", json={"body": "diff"})
    ).json()
    run = await wait_run(client, msg["run_id"])
    assert run["status"] == "succeeded" and run["skills"] == ["code-review"]
    reply = (await client.get(f"/api/conversations/{conv['id']}/messages")).json()[-1]
    assert reply["body"] == "echo: diff [skills: code-review]"


@pytest.mark.parametrize("runtime", ["claude_local", "codex_local"])
async def test_cli_runs_find_skills_where_the_cli_discovers_them(
    client: httpx.AsyncClient, tmp_path: Path, runtime: str
) -> None:
    org, _ = await default_org_and_agent(client)
    await client.post(
        f"/api/orgs/{org['id']}/skills",
        json={"skill_md": REVIEW_MD, "files": {"refs/style.md": "PEP 8"}},
    )
    exe = tmp_path / "fake-cli"
    exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{SKILL_CLI}" "$@"\n')
    exe.chmod(0o755)
    record = tmp_path / "record.jsonl"
    workdir = tmp_path / "project"
    workdir.mkdir()
    # Someone's own skill of another name in the project stays where it is.
    own = workdir / ".agents" / "skills" / "mine"
    own.mkdir(parents=True)
    (own / "SKILL.md").write_text("---\nname: mine\ndescription: mine\n---\n")
    config = {
        "command": str(exe),
        "cwd": str(workdir),
        "env": {"FAKE_CLI_FIXTURE": f"{runtime}__hello", "SKILL_RECORD": str(record)},
    }
    agent = await make_agent(
        client,
        org["id"],
        f"CLI {runtime}",
        runtime_type=runtime,
        runtime_config=config,
        skills=["code-review"],
    )
    conv = (
        await client.post(f"/api/orgs/{org['id']}/conversations", json={"agent_id": agent["id"]})
    ).json()
    msg = (
        await client.post(f"/api/conversations/{conv['id']}/messages", json={"body": "hi"})
    ).json()
    run = await wait_run(client, msg["run_id"])
    assert run["status"] == "succeeded", run
    assert run["skills"] == ["code-review"]
    call = json.loads(record.read_text().splitlines()[-1])
    assert call["skills"]["code-review/SKILL.md"] == REVIEW_MD
    assert call["skills"]["code-review/refs/style.md"] == "PEP 8"
    if runtime == "claude_local":
        # A private --add-dir: the project directory is not written to.
        assert "--add-dir" in call["argv"]
        added = call["argv"][call["argv"].index("--add-dir") + 1]
        assert _exists(added) is False  # removed after the run
        assert not (workdir / ".claude").exists()
    else:
        assert call["cwd"] == str(workdir)
        assert not (workdir / ".agents" / "skills" / "code-review").exists()
    assert (own / "SKILL.md").exists()


def test_openai_and_http_delivery() -> None:
    from rudder.domain.skills import SkillFiles

    skill = SkillFiles("code-review", "Review diffs.", {"SKILL.md": REVIEW_MD})
    ctx = RunContext("r", "a", "A", "c", [], {}, instructions="Be brief.")
    with delivery.deliver("openai", ctx, [skill]):
        assert ctx.instructions is not None
        assert (
            ctx.instructions.startswith("Be brief.") and "## Skill: code-review" in ctx.instructions
        )
    ctx = RunContext("r", "a", "A", "c", [], {})
    with delivery.deliver("http", ctx, [skill]):
        from rudder.runtimes._payload import context_payload

        assert context_payload(ctx)["skills"][0]["skill_md"] == REVIEW_MD
