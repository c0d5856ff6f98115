"""Small helpers shared by tests."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from rudder import texts

FINAL = ("succeeded", "failed", "cancelled")


async def wait_run(client: httpx.AsyncClient, run_id: str, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run = (await client.get(f"/api/runs/{run_id}")).json()
        if run["status"] in FINAL:
            return dict(run)
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run_id} still {run['status']} after {timeout}s")
        await asyncio.sleep(0.02)


async def wait_for(predicate: Any, timeout: float = 10.0, interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)


async def default_org_and_agent(client: httpx.AsyncClient) -> tuple[dict[str, Any], dict[str, Any]]:
    orgs = (await client.get("/api/orgs")).json()
    org = orgs[0]
    agents = (await client.get(f"/api/orgs/{org['id']}/agents")).json()
    return org, agents[0]


DONE = "\n" + texts.CARD_FOOTER_DONE  # how a finished one-card reply ends when read


def card_body(message: dict[str, Any]) -> str:
    """The reply text on a sandbox card message (its streaming element), without the footer."""
    elements = ((message.get("card") or {}).get("body") or {}).get("elements") or []
    return "".join(
        str(e.get("content", "")) for e in elements if e.get("element_id") == "streaming_content"
    )


def card_footer(message: dict[str, Any]) -> str | None:
    elements = ((message.get("card") or {}).get("body") or {}).get("elements") or []
    found = [str(e["content"]) for e in elements if e.get("element_id") == "rudder_footer"]
    return found[0] if found else None


def card_buttons(message: dict[str, Any]) -> list[str]:
    """The labels of a card's buttons, in order."""
    elements = ((message.get("card") or {}).get("body") or {}).get("elements") or []
    return [str(e["text"]["content"]) for e in elements if e.get("tag") == "button"]
