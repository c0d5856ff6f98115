"""`rudder agent edit|pause|resume|archive|revisions`: change a live agent through the API.

These go through the running server (like `rudder feishu connect`), because pausing stops
runs in progress, and resuming or raising a budget answers the messages a budget held: only
the process that executes runs can do that.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from rudder.config import Settings

console = Console()

UrlOpt = Annotated[str | None, typer.Option(help="Rudder's address; default RUDDER_PUBLIC_URL.")]
TokenOpt = Annotated[
    str | None, typer.Option(envvar="RUDDER_API_TOKEN", help="API token (authenticated mode).")
]
AgentArg = Annotated[str, typer.Argument(help="The agent's name or id.")]


def _client(url: str | None, token: str | None) -> httpx.Client:
    base = (url or Settings().effective_public_url).rstrip("/")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=base, headers=headers, timeout=30, trust_env=False)


def _fail(response: httpx.Response) -> None:
    try:
        body = response.json()
        detail = body.get("detail") or body
    except ValueError:
        detail = response.text
    console.print(f"[red]{detail}[/]")
    raise typer.Exit(1)


def _find(client: httpx.Client, name: str) -> dict[str, Any]:
    try:
        orgs = client.get("/api/orgs").raise_for_status().json()
    except httpx.HTTPError as exc:
        console.print(
            f"[red]Cannot reach Rudder at {client.base_url}:[/] {exc}. Is `rudder start` running?"
        )
        raise typer.Exit(2) from None
    found = [
        a
        for org in orgs
        for a in client.get(f"/api/orgs/{org['id']}/agents").json()
        if name in (a["name"], a["id"])
    ]
    if not found:
        console.print(f"[red]No agent named {name!r}.[/]")
        raise typer.Exit(2)
    if len(found) > 1:
        console.print(f"[red]{len(found)} agents are called {name!r}; give its id.[/]")
        raise typer.Exit(2)
    agent: dict[str, Any] = found[0]
    return agent


def _show(agent: dict[str, Any]) -> None:
    reason = f" ({agent['pause_reason']})" if agent.get("pause_reason") else ""
    budget = agent.get("budget_monthly_cents") or 0
    spent = agent.get("spent_monthly_cents") or 0
    console.print(
        f"[green]✓[/] {agent['name']}: {agent['status']}{reason}, runtime {agent['runtime_type']}, "
        f"spent ${spent / 100:.2f}" + (f" of ${budget / 100:.2f}" if budget else "") + " this month"
    )


def agent_edit(
    name: AgentArg,
    new_name: Annotated[str | None, typer.Option("--name", help="A new name.")] = None,
    title: Annotated[str | None, typer.Option(help="Job title.")] = None,
    role: Annotated[str | None, typer.Option(help="Role (general, engineer, pm, ...).")] = None,
    capabilities: Annotated[str | None, typer.Option(help="What the agent can do.")] = None,
    instructions: Annotated[
        str | None, typer.Option(help="Instructions; @FILE reads them from a file.")
    ] = None,
    runtime: Annotated[str | None, typer.Option(help="Runtime type.")] = None,
    config: Annotated[str | None, typer.Option(help="Runtime configuration as JSON.")] = None,
    skill: Annotated[
        list[str] | None, typer.Option(help="An enabled skill (repeat); replaces the list.")
    ] = None,
    no_skills: Annotated[bool, typer.Option("--no-skills", help="Disable every skill.")] = False,
    budget: Annotated[
        float | None, typer.Option(help="Monthly budget in US dollars (0: none).")
    ] = None,
    warn_percent: Annotated[int | None, typer.Option(help="Warning threshold, %.")] = None,
    hard_stop: Annotated[
        bool | None, typer.Option("--hard-stop/--no-hard-stop", help="Pause at the budget.")
    ] = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Change an agent's profile, instructions, runtime, skills or budget (kept as a revision)."""
    body: dict[str, Any] = {}
    for key, value in (
        ("name", new_name),
        ("title", title),
        ("role", role),
        ("capabilities", capabilities),
        ("runtime_type", runtime),
        ("budget_warn_percent", warn_percent),
        ("budget_hard_stop", hard_stop),
    ):
        if value is not None:
            body[key] = value
    if instructions is not None:
        if instructions.startswith("@"):
            with open(instructions[1:], encoding="utf-8") as f:
                instructions = f.read()
        body["instructions"] = instructions
    if config is not None:
        try:
            body["runtime_config"] = json.loads(config)
        except json.JSONDecodeError as exc:
            console.print(f"[red]--config is not valid JSON:[/] {exc}")
            raise typer.Exit(2) from None
    if skill or no_skills:
        body["skills"] = [] if no_skills else list(skill or [])
    if budget is not None:
        body["budget_monthly_cents"] = round(budget * 100)
    if not body:
        console.print("[yellow]Nothing to change; see --help.[/]")
        raise typer.Exit(2)
    with _client(url, token) as client:
        agent = _find(client, name)
        r = client.patch(f"/api/agents/{agent['id']}", json=body)
        if r.status_code >= 400:
            _fail(r)
        _show(r.json())


def _action(name: str, action: str, url: str | None, token: str | None, **body: Any) -> None:
    with _client(url, token) as client:
        agent = _find(client, name)
        r = client.post(f"/api/agents/{agent['id']}/{action}", json=body or None)
        if r.status_code >= 400:
            _fail(r)
        _show(r.json())


def agent_pause(name: AgentArg, url: UrlOpt = None, token: TokenOpt = None) -> None:
    """Pause an agent: its runs in progress stop, new messages get the paused notice."""
    _action(name, "pause", url, token, reason="manual")


def agent_resume(name: AgentArg, url: UrlOpt = None, token: TokenOpt = None) -> None:
    """Resume an agent; messages its budget held are answered now."""
    _action(name, "resume", url, token)


def agent_archive(
    name: AgentArg,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Archive (terminate) an agent: no more runs, its bot disconnected, its history kept."""
    if not yes and not typer.confirm(f"Archive {name}? It cannot be undone."):
        raise typer.Exit(1)
    _action(name, "archive", url, token)


def agent_revisions(name: AgentArg, url: UrlOpt = None, token: TokenOpt = None) -> None:
    """The agent's configuration revisions: who, when, what changed."""
    with _client(url, token) as client:
        agent = _find(client, name)
        r = client.get(f"/api/agents/{agent['id']}/revisions")
        if r.status_code >= 400:
            _fail(r)
        table = Table("rev", "when (UTC)", "who", "source", "changed")
        for rev in r.json():
            table.add_row(
                str(rev["rev"]),
                rev["created_at"][:19].replace("T", " "),
                rev["actor"],
                rev["source"],
                ", ".join(rev["changed_keys"]),
            )
        console.print(table)


def register(agent_app: typer.Typer) -> None:
    agent_app.command("edit")(agent_edit)
    agent_app.command("pause")(agent_pause)
    agent_app.command("resume")(agent_resume)
    agent_app.command("archive")(agent_archive)
    agent_app.command("revisions")(agent_revisions)
