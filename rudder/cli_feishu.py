"""`rudder feishu connect|status`: connect an agent's bot from the terminal, list the bots."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import typer
from rich.table import Table

from rudder.cli_common import console, with_session
from rudder.config import Settings

feishu_app = typer.Typer(help="Feishu / Lark bots of agents.", no_args_is_help=True)


@feishu_app.command("connect")
def feishu_connect(
    agent: Annotated[str, typer.Option(help="The agent's name (or id).")],
    region: Annotated[
        str, typer.Option(help="feishu (Feishu CN) or lark (Lark Global).")
    ] = "feishu",
    url: Annotated[
        str | None, typer.Option(help="Rudder's address; default RUDDER_PUBLIC_URL.")
    ] = None,
    token: Annotated[
        str | None, typer.Option(envvar="RUDDER_API_TOKEN", help="API token (authenticated mode).")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the approval.")] = 600,
) -> None:
    """Connect an agent to its own Feishu or Lark bot: prints the link and a QR code, waits."""
    import time

    import httpx

    if region not in ("feishu", "lark"):
        console.print("[red]--region must be 'feishu' (Feishu CN) or 'lark' (Lark Global)[/]")
        raise typer.Exit(2)
    base = (url or Settings().effective_public_url).rstrip("/")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(base_url=base, headers=headers, timeout=20, trust_env=False) as client:
        try:
            orgs_ = client.get("/api/orgs").raise_for_status().json()
        except httpx.HTTPError as exc:
            console.print(
                f"[red]Cannot reach Rudder at {base}:[/] {exc}. Is `rudder start` running?"
            )
            raise typer.Exit(2) from None
        found = None
        for org in orgs_:
            for a in client.get(f"/api/orgs/{org['id']}/agents").json():
                if agent in (a["name"], a["id"]):
                    found = a
        if found is None:
            console.print(f"[red]No agent named {agent!r}.[/]")
            raise typer.Exit(2)
        r = client.post(
            f"/api/agents/{found['id']}/integrations/feishu/setup", json={"region": region}
        )
        if r.status_code >= 400:
            console.print(f"[red]{r.json().get('detail')}[/]")
            raise typer.Exit(1)
        setup = r.json()
        product = "Feishu CN" if region == "feishu" else "Lark Global"
        console.print(
            f"Open this link in {product} (or scan the code) and approve the app for [bold]{found['name']}[/]:"
        )
        console.print(setup["verification_url"], soft_wrap=True)
        from rudder.web.pages_connect import short_setup_link
        from rudder.web.qr import qr_text

        short = short_setup_link(base, setup["setup_id"])
        print(qr_text(short), end="")
        console.print(f"(the code opens {short}, which leads to the link above)", soft_wrap=True)
        deadline = time.monotonic() + timeout
        with console.status("Waiting for the approval…"):
            while time.monotonic() < deadline:
                status = client.get(f"/api/integration-setups/{setup['setup_id']}").json()
                if status["status"] != "pending":
                    break
                time.sleep(1)
        if status["status"] == "connected":
            info = client.get(f"/api/agents/{found['id']}/integrations/feishu").json()
            ended = "Feishu CN" if status.get("connected_region") == "feishu" else "Lark Global"
            console.print(
                f"[green]✓ connected to {ended}[/] — bot {info['bot_name']} ({info['app_id']}) "
                "is listening."
            )
            if status.get("connected_region") not in (None, region):
                console.print(status.get("outcome") or "")
            return
        console.print(f"[red]{status['status']}:[/] {status.get('error') or 'no answer in time'}")
        raise typer.Exit(1)


@feishu_app.command("status")
def feishu_status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Every agent's bot: region, status, app id, transport, last event, last error."""
    from sqlalchemy import select

    from rudder.db.models import Agent, Integration

    async def run(session: Any) -> list[dict[str, Any]]:
        rows = await session.execute(
            select(Agent, Integration).join(Integration, Integration.agent_id == Agent.id)
        )
        return [
            {
                "agent": a.name,
                "region": i.region,
                "status": i.status,
                "app_id": i.app_id,
                "bot_name": i.bot_name,
                "transport": i.transport,
                "last_event_at": i.last_event_at.isoformat() if i.last_event_at else None,
                "last_error": i.last_error,
            }
            for a, i in rows.all()
        ]

    rows = asyncio.run(with_session(run))
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        console.print(
            "No agent has a Feishu or Lark bot yet. Connect one: rudder feishu connect --agent NAME"
        )
        return
    table = Table(
        "agent", "region", "status", "bot", "app id", "transport", "last event", "last error"
    )
    app_id = table.columns[4]
    app_id.no_wrap, app_id.min_width = True, 20  # app ids are for copying: never cut
    for r in rows:
        table.add_row(
            r["agent"],
            r["region"],
            r["status"],
            r["bot_name"] or "",
            r["app_id"] or "",
            r["transport"],
            r["last_event_at"] or "—",
            r["last_error"] or "",
        )
    console.print(table)
