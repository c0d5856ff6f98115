"""Binding hijack, racing confirmations, stored credentials and readable files, against Rudder
running on a real socket with its sandbox (issue 15, holes 7–9).

- A group member who reads the group chat can't bind someone else's Feishu identity to their
  own account: the group never sees the link or the code, and a forwarded link without the code
  from the private message gets nowhere, not even by guessing.
- Parallel confirmations of one link: exactly one 200, the rest 409, no 5xx; the binding row and
  the activity log agree on who won.
- No stored inbound event carries a Verification Token (webhook without Encrypt Key, and the long
  connection), including rows an older version wrote, which a start scrubs.
- RUDDER_HOME is 0700 and the database file (and its -wal/-shm) 0600, however loose the umask.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from alembic import command
from sqlalchemy import select
from sqlalchemy.engine import Connection

from rudder import texts
from rudder.db import migrate
from rudder.db.engine import create_engine, session_factory
from rudder.db.models import ActivityLog, FeishuUserBinding, InboundEvent
from rudder.domain import auth, orgs
from rudder.feishu import bindings
from tests.conftest import TEST_SECRETS_KEY
from tests.helpers import wait_for
from tests.hostile.conftest import count
from tests.hostile.live import Live, live_rudder
from tests.routing.dialogue import BIND_CODE, BIND_LINK, Prompt

FEISHU = "Feishu"


@dataclass
class Product:
    """Rudder's API and its sandbox's control API, both over real sockets."""

    live: Live
    api: httpx.AsyncClient
    sb: httpx.AsyncClient
    db_url: str

    async def control(self, method: str, path: str, **kwargs: Any) -> Any:
        r = await self.sb.request(method, "/_sandbox/api" + path, **kwargs)
        assert r.status_code < 300, r.text
        return r.json()

    async def org_and_agent(self) -> tuple[dict[str, Any], dict[str, Any]]:
        org = (await self.api.get("/api/orgs")).json()[0]
        agent = (await self.api.get(f"/api/orgs/{org['id']}/agents")).json()[0]
        return org, agent

    async def bot(self, name: str = "Helper", webhook: bool = False) -> tuple[dict[str, Any], str]:
        """A sandbox app connected to the default agent; (app, integration id). A webhook bot
        has no Encrypt Key: its Verification Token is all that authenticates its events."""
        _, agent = await self.org_and_agent()
        app = await self.control("POST", "/apps", json={"name": name, "brand": "feishu"})
        body = {"region": "feishu", "app_id": app["app_id"], "app_secret": app["app_secret"]}
        if webhook:
            body.update(transport="webhook", verification_token=app["verification_token"])
        r = await self.api.post(f"/api/agents/{agent['id']}/integrations/feishu/manual", json=body)
        assert r.status_code == 200, r.text
        integration_id: str = r.json()["id"]
        if webhook:
            url = f"{self.live.url}/api/integrations/feishu/{integration_id}/webhook"
            await self.control(
                "PATCH",
                f"/apps/{app['app_id']}",
                json={"event_delivery": "webhook", "encrypt_key": "", "webhook_url": url},
            )
        else:

            async def connected() -> bool:
                state = (
                    await self.api.get(f"/api/agents/{agent['id']}/integrations/feishu")
                ).json()
                return bool(state["connection"] and state["connection"]["status"] == "connected")

            await wait_for(connected, timeout=15)
        return app, integration_id

    async def person(self, name: str) -> str:
        user_id: str = (await self.control("POST", "/users", json={"name": name}))["user_id"]
        return user_id

    async def chat(self, kind: str, users: list[str], app: dict[str, Any]) -> str:
        body: dict[str, Any] = {"type": kind, "user_ids": users, "app_ids": [app["app_id"]]}
        if kind == "group":
            body["name"] = "Team"
        chat_id: str = (await self.control("POST", "/chats", json=body))["chat_id"]
        return chat_id

    async def say(self, chat_id: str, user_id: str, text: str, **extra: Any) -> None:
        await self.control(
            "POST", f"/chats/{chat_id}/messages", json={"user_id": user_id, "text": text, **extra}
        )

    async def bot_texts(self, chat_id: str) -> list[str]:
        found = await self.control("GET", f"/chats/{chat_id}/messages")
        items = found.get("items", found) if isinstance(found, dict) else found
        return [m["text"] for m in items if m["sender"]["sender_type"] == "app"]

    async def prompt(self, chat_id: str) -> Prompt:
        async def arrived() -> Prompt | None:
            for text in await self.bot_texts(chat_id):
                link, code = BIND_LINK.search(text), BIND_CODE.search(text)
                if link:  # (a prompt without a code has an empty one: the page must refuse it)
                    return Prompt(link.group(1), code.group(1) if code else "")
            return None

        prompt: Prompt = await wait_for(arrived, timeout=15)
        return prompt

    async def confirm(self, link: str, code: str | None, token: str) -> httpx.Response:
        return await self.api.post(
            f"/api/feishu-bindings/{link}/confirm",
            json={"confirmation_code": code} if code is not None else None,
            headers={"authorization": f"Bearer {token}"},
        )


@asynccontextmanager
async def running(db_url: str, home: Path) -> AsyncIterator[Product]:
    with live_rudder(db_url, home) as live:
        async with (
            httpx.AsyncClient(base_url=live.url, timeout=30) as api,
            httpx.AsyncClient(base_url=live.sandbox_url, timeout=30) as sb,
        ):
            await sb.patch("/_sandbox/api/settings", json={"registration_interval": 0.05})
            yield Product(live, api, sb, db_url)


async def _members(db_url: str, org_id: str, n: int, prefix: str) -> list[tuple[str, str]]:
    """`n` new members of the organization, each with an API token: [(user_id, token)]."""
    engine = create_engine(db_url)
    try:
        out = []
        async with session_factory(engine)() as session, session.begin():
            for i in range(n):
                _, user = await orgs.add_member(
                    session, org_id, f"{prefix}{i}@example.com", f"{prefix} {i}", "member", "t"
                )
                _, token = await auth.issue_token(
                    session, org_id=org_id, name=f"{prefix}{i}", user_id=user.id
                )
                out.append((user.id, token))
        return out
    finally:
        await engine.dispose()


async def _binding_and_log(db_url: str, open_id: str) -> tuple[list[str], list[str]]:
    """Who the Feishu user is bound to (rows), and whom the log says each binding went to."""
    engine = create_engine(db_url)
    try:
        async with session_factory(engine)() as session:
            rows = list(
                await session.scalars(
                    select(FeishuUserBinding.user_id).where(FeishuUserBinding.open_id == open_id)
                )
            )
            logged = [
                str(a.details.get("user_id"))
                for a in await session.scalars(
                    select(ActivityLog).where(ActivityLog.action == "feishu.user_bound")
                )
                if a.details.get("open_id") == open_id
            ]
        return rows, logged
    finally:
        await engine.dispose()


async def _open_id(product: Product, user_id: str, app: dict[str, Any]) -> str:
    users = (await product.control("GET", f"/users?app_id={app['app_id']}"))["items"]
    found: str = next(u["open_id"] for u in users if u["user_id"] == user_id)
    return found


# -- hole 7: the link in a group, and a forwarded link ------------------------------------------


async def test_a_group_member_cannot_bind_someone_elses_feishu_account(
    db_url: str, tmp_path: Path
) -> None:
    async with running(db_url, tmp_path / "home") as product:
        org, _ = await product.org_and_agent()
        app, _ = await product.bot()
        ada, eve = await product.person("Ada"), await product.person("Eve")
        team = await product.chat("group", [ada, eve], app)
        [(eve_user, eve_token)] = await _members(db_url, org["id"], 1, "eve")

        # Ada, not yet linked, @-mentions the bot in the group that Eve reads too.
        await product.say(team, ada, "hello bot", mention_app_ids=[app["app_id"]])

        async def answered() -> list[str]:
            return await product.bot_texts(team)

        in_group = "\n".join(await wait_for(answered, timeout=15))
        count("binding hijack: group chats read for a link or code")
        assert "/bind/" not in in_group and not BIND_CODE.search(in_group), in_group
        assert texts.FEISHU_BINDING_SENT_PRIVATELY.format(product=FEISHU) in in_group
        # The link and its code went to Ada alone, in her direct chat with the bot.
        prompt = await product.prompt(await product.chat("p2p", [ada], app))
        assert prompt.confirmation not in in_group

        # Eve gets the link forwarded (or reads it over Ada's shoulder) but not the code.
        tries = [None, "", "0000-0000", "AAAA-AAAA", "ZZZZ-ZZZZ", "2345-6789", "K7QM-2XPD"]
        answers = []
        for guess in tries:
            r = await product.confirm(prompt.link, guess, eve_token)
            count("binding hijack: confirmations without the private code")
            answers.append(r.status_code)
            if r.status_code in (200, 201):
                count("binding hijack: wrongly accepted")
        # Missing code: 422 without using a try; then wrong codes use up the link's tries.
        assert answers[:2] == [422, 422], answers
        assert answers[2 : 2 + bindings.MAX_ATTEMPTS - 1] == [422] * (bindings.MAX_ATTEMPTS - 1)
        assert set(answers[2 + bindings.MAX_ATTEMPTS - 1 :]) == {429}, answers
        # Even the right code no longer works: the link is void after that many wrong guesses.
        late = await product.confirm(prompt.link, prompt.confirmation, eve_token)
        count("binding hijack: confirmations without the private code")
        assert late.status_code == 429, late.text
        ada_open_id = await _open_id(product, ada, app)
        rows, logged = await _binding_and_log(db_url, ada_open_id)
        assert rows == [] and logged == []
        assert eve_user not in rows

        # The page of that link is never framed, and offers no form any more.
        page = await product.api.get(
            f"/bind/feishu/{prompt.link}", headers={"authorization": f"Bearer {eve_token}"}
        )
        assert page.headers["x-frame-options"] == "DENY"
        assert page.status_code == 429 and 'name="code"' not in page.text


# -- hole 8: one link confirmed in parallel -----------------------------------------------------


async def _race(product: Product, link: str, code: str, tokens: list[str]) -> list[httpx.Response]:
    gate = asyncio.Event()

    async def one(token: str) -> httpx.Response:
        await gate.wait()
        return await product.confirm(link, code, token)

    tasks = [asyncio.create_task(one(t)) for t in tokens]
    await asyncio.sleep(0.05)
    gate.set()
    return list(await asyncio.gather(*tasks))


async def test_parallel_confirmations_of_one_link_bind_exactly_once(
    db_url: str, tmp_path: Path
) -> None:
    async with running(db_url, tmp_path / "home") as product:
        org, _ = await product.org_and_agent()
        app, _ = await product.bot()
        owner_token = (
            await product.api.post(f"/api/orgs/{org['id']}/api-tokens", json={"name": "race"})
        ).json()["token"]

        # 8 confirmations by the same member: one links, seven hear "already linked".
        ada = await product.person("Ada")
        ada_prompt = await _prompted(product, ada, app)
        same = await _race(product, ada_prompt.link, ada_prompt.confirmation, [owner_token] * 8)
        _tally(same)
        assert sorted(r.status_code for r in same) == [200] + [409] * 7, [r.text for r in same]
        already = texts.FEISHU_BINDING_ALREADY_LINKED.format(product=FEISHU)
        assert {r.json()["detail"] for r in same if r.status_code == 409} == {already}
        rows, logged = await _binding_and_log(db_url, await _open_id(product, ada, app))
        winner = next(r for r in same if r.status_code == 200).json()["user_id"]
        assert rows == [winner] and logged == [winner]

        # 20 confirmations by 20 different members: one wins, and everyone agrees who.
        bob = await product.person("Bob")
        bob_prompt = await _prompted(product, bob, app)
        members = await _members(db_url, org["id"], 20, "racer")
        many = await _race(
            product, bob_prompt.link, bob_prompt.confirmation, [t for _, t in members]
        )
        _tally(many)
        assert sorted(r.status_code for r in many) == [200] + [409] * 19, [r.text for r in many]
        used = texts.FEISHU_BINDING_ALREADY_USED.format(product=FEISHU)
        assert {r.json()["detail"] for r in many if r.status_code == 409} == {used}
        won = next(r for r in many if r.status_code == 200).json()["user_id"]
        assert won in {u for u, _ in members}
        rows, logged = await _binding_and_log(db_url, await _open_id(product, bob, app))
        assert rows == [won] and logged == [won]


async def _prompted(product: Product, user_id: str, app: dict[str, Any]) -> Prompt:
    chat = await product.chat("p2p", [user_id], app)
    await product.say(chat, user_id, "hi")
    return await product.prompt(chat)


def _tally(responses: list[httpx.Response]) -> None:
    count("binding confirm races: confirmations sent", len(responses))
    wins = sum(r.status_code == 200 for r in responses)
    bad = sum(r.status_code >= 500 for r in responses) + max(0, wins - 1) + (wins == 0)
    count("binding confirm races: extra wins or 5xx", bad)


# -- hole 9: credentials in stored events, and readable files -----------------------------------


async def _stored_payloads(db_url: str) -> list[str]:
    engine = create_engine(db_url)
    try:
        async with session_factory(engine)() as session:
            return [json.dumps(p) for p in await session.scalars(select(InboundEvent.payload))]
    finally:
        await engine.dispose()


def _downgrade_to_0003(connection: Connection) -> None:
    command.downgrade(migrate.alembic_config(connection), "0003")


async def test_no_stored_event_carries_a_verification_token(db_url: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    async with running(db_url, home) as product:
        # A webhook bot without an Encrypt Key: the token is all that authenticates its events.
        hook_app, _ = await product.bot("Hook", webhook=True)
        hook_token = hook_app["verification_token"]
        ada = await product.person("Ada")
        direct = await product.chat("p2p", [ada], hook_app)
        for i in range(3):
            await product.say(direct, ada, f"hello {i}")

        async def recorded() -> list[str] | None:
            found = await _stored_payloads(db_url)
            return found if len(found) >= 3 else None

        payloads = await wait_for(recorded, timeout=15)
    count("stored event scan: rows checked", len(payloads))
    leaks = sum(hook_token in p for p in payloads)
    count("stored event scan: rows with a credential", leaks)
    assert leaks == 0
    assert all('"header"' in p for p in payloads)  # the events themselves are all there

    # Rows an older version stored with the token are scrubbed when the product starts.
    engine = create_engine(db_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_downgrade_to_0003)
        async with session_factory(engine)() as session, session.begin():
            for row in await session.scalars(select(InboundEvent)):
                # Where Feishu puts it, plus one nested deeper (as a card callback's `event.token`).
                header = {**row.payload.get("header", {}), "token": hook_token}
                event = {**row.payload.get("event", {}), "token": hook_token}
                row.payload = {**row.payload, "header": header, "token": hook_token, "event": event}
        assert all(hook_token in p for p in await _stored_payloads(db_url))
    finally:
        await engine.dispose()
    async with running(db_url, home):
        pass
    after = await _stored_payloads(db_url)
    count("stored event scan: rows checked", len(after))
    old_leaks = sum(hook_token in p for p in after)
    count("stored event scan: rows with a credential", old_leaks)
    assert old_leaks == 0 and len(after) == len(payloads)


@contextmanager
def _loose_umask() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_home_and_database_files_are_owner_only(tmp_path: Path) -> None:
    home = tmp_path / "fresh" / "home"
    db = home / "rudder.db"
    with _loose_umask():
        async with running(f"sqlite+aiosqlite:///{db}", home) as product:
            await product.api.get("/api/orgs")  # the database is open, in WAL mode
            files = [db, Path(f"{db}-wal"), Path(f"{db}-shm")]
            modes = {p.name: _mode(p) for p in [home, *files] if p.exists()}
        # `rudder db upgrade` on a home of its own, as an operator would run it.
        cli_home = tmp_path / "cli" / "home"
        env = {
            **os.environ,
            "RUDDER_HOME": str(cli_home),
            "RUDDER_SECRETS_KEY": TEST_SECRETS_KEY,
        }
        env.pop("DATABASE_URL", None)
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "rudder", "db", "upgrade"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        cli_modes = {p.name: _mode(p) for p in (cli_home, cli_home / "rudder.db")}
    count("file permissions checked", len(modes) + len(cli_modes))
    assert modes.pop("home") == 0o700, modes
    assert modes and set(modes.values()) == {0o600}, modes
    assert cli_modes == {"home": 0o700, "rudder.db": 0o600}, cli_modes
