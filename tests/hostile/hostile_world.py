"""A Rudder and its sandbox full of hostile text: names, titles and messages that try to run script.

Everything a stranger can name ends up on a page somewhere: an agent's name and role, an org's
name, a member's name, a conversation's title, a Feishu user's name and message text, a bot's name,
a run's output. `plant` writes one of each through the product (the API, the sandbox's Feishu
side, a real bind link), so `tests/hostile/test_page_headers.py` and the browser test
`tests/web/test_browser_hostile.py` can visit every page with them on it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import func, select, update

from rudder.db.models import Membership, Organization, User
from rudder.db.models_chat import RunEventRow
from rudder.domain import orgs
from rudder.runtimes import DEFAULT_AGENT_RUNTIME
from rudder.services import Services
from tests.helpers import wait_for, wait_run

# Closes the JS string of an old `onsubmit="return confirm('… {{ name|e }}?')"` and runs code.
JS_QUOTE = "Ex'+(document.title='PWNED')+'"
IMG = '"><img src=x onerror=alert(1)>'
SCRIPT = "</script><script>document.title='PWNED'</script>"
JS_URL = "javascript:alert(document.title='PWNED')"
ATTR = "' autofocus onfocus='document.title=`PWNED`' x='"
APOSTROPHE = "Ada's bot"
EVERYTHING = f"{SCRIPT} {IMG} {JS_URL} {ATTR}"
PAYLOADS = (JS_QUOTE, IMG, SCRIPT, JS_URL, ATTR)


@dataclass
class World:
    org_id: str
    other_org: str
    quote_agent: str  # named JS_QUOTE, bot connected
    apostrophe_agent: str  # named "Ada's bot", bot connected
    pending_agent: str  # named IMG, a setup pending (QR code on its panel)
    conversation: str  # a local conversation titled IMG with a hostile message and reply
    run: str  # a run whose output is hostile
    feishu_conversation: str | None  # the Feishu DM, once the Feishu user is bound
    bind_code: str
    confirmation: str  # the code in the same private message, which the bind page asks for
    sandbox_user_code: str  # the pending registration's code (the sandbox's confirm page)
    app_ids: dict[str, str] = field(default_factory=dict)

    def rudder_pages(self) -> list[str]:
        """Every page of the web app (and the bind page), as paths."""
        pages = ["/", "/agents", "/messenger", "/members", "/settings", "/login"]
        for agent in (self.quote_agent, self.apostrophe_agent, self.pending_agent):
            pages += [
                f"/agents/{agent}",
                f"/agents/{agent}/configuration",
                f"/agents/{agent}/runs",
                f"/agents/{agent}/integrations",
                f"/agents/{agent}/integrations/panel",
            ]
        pages += [
            f"/agents/{self.quote_agent}/runs/{self.run}",
            f"/messenger/{self.conversation}",
            f"/messenger?agent={self.quote_agent}",
            "/agents/no-such-agent",
            f"/bind/feishu/{self.bind_code}",
            "/bind/feishu/no-such-code",
        ]
        if self.feishu_conversation:
            pages.append(f"/messenger/{self.feishu_conversation}")
        return pages

    def sandbox_pages(self) -> list[str]:
        return [
            "/_sandbox/",
            f"/page/cli?user_code={self.sandbox_user_code}&name={IMG}&desc={SCRIPT}",
            "/page/cli?user_code=no-such-code",
        ]


async def _connect(
    api: httpx.AsyncClient, sb: httpx.AsyncClient, agent_id: str, bot_name: str
) -> str:
    app = (await sb.post("/_sandbox/api/apps", json={"name": bot_name, "brand": "feishu"})).json()
    connected = await api.post(
        f"/api/agents/{agent_id}/integrations/feishu/manual",
        json={"region": "feishu", "app_id": app["app_id"], "app_secret": app["app_secret"]},
    )
    assert connected.status_code == 200, connected.text
    return str(app["app_id"])


async def _agent(api: httpx.AsyncClient, org_id: str, name: str) -> str:
    # The bundled example runtime, so the agent answers offline.
    runtime_type, runtime_config = DEFAULT_AGENT_RUNTIME
    made = await api.post(
        f"/api/orgs/{org_id}/agents",
        json={
            "name": name,
            "role": IMG,
            "title": SCRIPT,
            "instructions": EVERYTHING,
            "runtime_type": runtime_type,
            "runtime_config": dict(runtime_config),
        },
    )
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


async def _messages(sb: httpx.AsyncClient, chat_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (await sb.get(f"/_sandbox/api/chats/{chat_id}/messages")).json()[
        "items"
    ]
    return items


async def plant(api: httpx.AsyncClient, sb: httpx.AsyncClient, services: Services) -> World:
    """Fill Rudder (at `api`, local mode: the caller is the owner) and the sandbox (at `sb`)."""
    org_id = str((await api.get("/api/orgs")).json()[0]["id"])
    async with services.sessions() as session, session.begin():
        await session.execute(
            update(Organization).where(Organization.id == org_id).values(name=SCRIPT + ATTR)
        )
        # A second organization (hostile name too), so the org switcher has a choice to offer.
        owner = await session.scalar(
            select(User)
            .join(Membership, Membership.user_id == User.id)
            .where(Membership.org_id == org_id)
        )
        assert owner is not None
        other_org = (await orgs.create_org(session, IMG + JS_QUOTE, owner)).id

    member = await api.post(
        f"/api/orgs/{org_id}/members",
        json={"email": "mallory@example.com", "name": SCRIPT + IMG, "role": "member"},
    )
    assert member.status_code == 201, member.text

    quote_agent = await _agent(api, org_id, JS_QUOTE)
    apostrophe_agent = await _agent(api, org_id, APOSTROPHE)
    pending_agent = await _agent(api, org_id, IMG)
    app_ids = {
        "quote": await _connect(api, sb, quote_agent, IMG + JS_QUOTE),
        "apostrophe": await _connect(api, sb, apostrophe_agent, APOSTROPHE),
    }
    pending = await api.post(
        f"/api/agents/{pending_agent}/integrations/feishu/setup", json={"region": "feishu"}
    )
    assert pending.status_code == 201, pending.text
    sandbox_user_code = str(pending.json()["user_code"])

    # A local conversation with a hostile title and message; its run's output is hostile too.
    conv = await api.post(
        f"/api/orgs/{org_id}/conversations", json={"agent_id": quote_agent, "title": IMG}
    )
    assert conv.status_code == 201, conv.text
    conversation = str(conv.json()["id"])
    sent = await api.post(f"/api/conversations/{conversation}/messages", json={"body": EVERYTHING})
    assert sent.status_code == 201, sent.text
    runs = (await api.get(f"/api/agents/{quote_agent}/runs")).json()
    run = str(runs[0]["id"])
    await wait_run(api, run)
    async with services.sessions() as session, session.begin():
        top = await session.scalar(
            select(func.max(RunEventRow.seq)).where(RunEventRow.run_id == run)
        )
        seq = (top or 0) + 1
        for i, (kind, payload) in enumerate(
            [
                ("text", {"text": EVERYTHING}),
                ("log", {"text": JS_QUOTE, "url": JS_URL}),
                ("tool_call", {"name": IMG, "arguments": {"x": SCRIPT}}),
            ]
        ):
            session.add(RunEventRow(run_id=run, seq=seq + i, kind=kind, payload=payload))

    # A Feishu user with a hostile name DMs a bot with hostile text; the bot answers with a bind
    # link (the bind page names the user); the user is bound, and the next message opens the
    # Feishu conversation in Messenger.
    user = (await sb.post("/_sandbox/api/users", json={"name": IMG + JS_QUOTE})).json()
    chat = (
        await sb.post(
            "/_sandbox/api/chats",
            json={"type": "p2p", "user_ids": [user["user_id"]], "app_ids": [app_ids["quote"]]},
        )
    ).json()

    async def listening() -> bool:
        found = (await sb.get(f"/_sandbox/api/apps/{app_ids['quote']}")).json()
        return bool(found.get("connections"))

    await wait_for(listening, timeout=15)
    await sb.post(
        f"/_sandbox/api/chats/{chat['chat_id']}/messages",
        json={"user_id": user["user_id"], "text": EVERYTHING},
    )

    async def bind_link() -> tuple[str, str] | None:
        for m in await _messages(sb, chat["chat_id"]):
            text = str(m.get("text", ""))
            found = re.search(r"/bind/feishu/([\w-]+)", text)
            code = re.search(r"enter this code: ([A-Z0-9]{4}-[A-Z0-9]{4})", text)
            if found and code:
                return found.group(1), code.group(1)
        return None

    bind_code, confirmation = await wait_for(bind_link, timeout=15)
    return World(
        org_id=org_id,
        other_org=other_org,
        quote_agent=quote_agent,
        apostrophe_agent=apostrophe_agent,
        pending_agent=pending_agent,
        conversation=conversation,
        run=run,
        feishu_conversation=None,
        bind_code=bind_code,
        confirmation=confirmation,
        sandbox_user_code=sandbox_user_code,
        app_ids=app_ids | {"chat": chat["chat_id"], "user": user["user_id"]},
    )


async def bind_and_resend(
    api: httpx.AsyncClient, sb: httpx.AsyncClient, world: World, *, confirm: bool = True
) -> None:
    """Bind the Feishu user (unless the caller did, e.g. in a browser), resend, await the DM."""
    if confirm:
        done = await api.post(
            f"/api/feishu-bindings/{world.bind_code}/confirm",
            json={"confirmation_code": world.confirmation},
        )
        assert done.status_code == 200, done.text
    chat, user = world.app_ids["chat"], world.app_ids["user"]
    await sb.post(
        f"/_sandbox/api/chats/{chat}/messages", json={"user_id": user, "text": SCRIPT + JS_QUOTE}
    )

    async def feishu_conversation() -> str | None:
        for c in (await api.get(f"/api/orgs/{world.org_id}/conversations")).json():
            if c.get("source") == "feishu":
                return str(c["id"])
        return None

    world.feishu_conversation = await wait_for(feishu_conversation, timeout=20)
