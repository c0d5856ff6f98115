"""Exactly-once at load: many bound users message several bots while Rudder is killed with -9.

    python benchmarks/soak.py [--messages 600] [--rate 15] [--kills 2] [--bots 4] [--users 60]
                              [--api-clients 8] [--db sqlite|postgres] [--settle 120]
                              [--instances 1] [--workers 0]   (both PostgreSQL only)

The sandbox (``_sandbox_load.py``) and Rudder (``python -m rudder start``) run as separate
processes on loopback. Every bot is a `process` agent (``_soak_agent.py``) that answers at once
with a text derived from the message's token, so each answer is known in advance. Users are
bound to the organization's member and spread over the bots in DMs; each bot also has a group
where messages @-mention it. Messages go out at ``--rate`` per second, round robin over the
chats; ``--kills`` times during that window Rudder gets SIGKILL and is started again 2 s later
on the same home and port. Meanwhile ``--api-clients`` clients post to local conversations
through the API. Then the soak waits until every message has its answer or ``--settle`` s pass.
On PostgreSQL, ``--instances N --workers M`` runs the scale-out deployment instead: N
`rudder start` instances sharing the bots (one secrets key, a home each) and M `rudder worker`s;
each kill hits the instance holding the most bots' leases, the survivors take its bots over,
and the API clients are spread over the instances.

Every message is judged from what a Feishu user sees (``GET /_sandbox/api/chats/{id}/messages``):
- ``answered_once_real``: exactly one bot message replies to it, and it shows the real answer
  (a finished card, or text);
- ``failure_notices``: its one reply shows something else (a failure line, an error);
- ``doubled``: more than one bot message replies to it;
- ``stuck_cards``: its one reply is a card still streaming (or empty);
- ``lost``: nothing replies to it.
Latency is from the user's message to the first poll that saw its real answer (polled every
``--poll`` s), for messages sent outside the kill windows (kill → healthy again + 2 s).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import secrets
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench import free_port, start_sandbox, stop

from rudder.texts import CARD_FOOTER_DONE

HERE = Path(__file__).resolve().parent
AGENT = HERE / "_soak_agent.py"
sys.path.insert(0, str(HERE))
from _soak_agent import answer  # noqa: E402


@dataclass
class Sent:
    token: str
    chat_id: str
    expected: str
    at: float  # monotonic
    message_id: str | None = None
    answered_at: float | None = None
    typing: bool = False  # the bot's "Typing" reaction is still on the message
    event_ids: list[str] = field(default_factory=list)


@dataclass
class Figures:
    api_ok: int = 0
    api_5xx: int = 0
    api_down: int = 0  # connection refused/reset: Rudder was dead (kill windows)
    api_latencies: list[float] = field(default_factory=list)
    api_errors: collections.Counter[str] = field(default_factory=collections.Counter)


class Rudder:
    """`python -m rudder start` on a fixed port (or `rudder worker`), restartable on the same
    home."""

    def __init__(
        self, home: str, sandbox_url: str, env: dict[str, str], *, worker: bool = False
    ) -> None:
        os.makedirs(home, exist_ok=True)
        self.worker = worker
        self.home, self.port = home, free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = dict(os.environ, RUDDER_HOME=home, RUDDER_FEISHU_BASE_URL=sandbox_url, **env)
        self.env.setdefault("RUDDER_LOG_LEVEL", "WARNING")
        if "DATABASE_URL" not in env:
            for key in ("DATABASE_URL", "RUDDER_DATABASE_URL"):
                self.env.pop(key, None)
        self.log = Path(home) / "rudder.log"
        self.proc: asyncio.subprocess.Process | None = None
        self.starts = 0
        self.cpu_s = 0.0  # CPU time of the processes that ended (user + system)

    def cpu_now(self) -> float:
        """CPU seconds used by the live process so far (its agents' processes excluded)."""
        if self.proc is None or self.proc.returncode is not None:
            return 0.0
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    async def start(self) -> float:
        started = time.monotonic()
        command = ["worker"] if self.worker else ["start", "--port", str(self.port)]
        with self.log.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "rudder", *command,
                env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        self.starts += 1
        if self.worker:
            return 0.0  # a worker serves no HTTP; it joins the run queue by itself
        async with httpx.AsyncClient(timeout=2) as client:
            while time.monotonic() - started < 90:
                try:
                    if (await client.get(f"{self.base}/api/health")).status_code == 200:
                        return time.monotonic() - started
                except httpx.HTTPError:
                    pass
                if self.proc.returncode is not None:
                    raise SystemExit(f"rudder exited with {self.proc.returncode}; see {self.log}")
                await asyncio.sleep(0.05)
        raise SystemExit("rudder did not become healthy within 90 s")

    async def kill9(self) -> None:
        assert self.proc is not None
        self.cpu_s += self.cpu_now()
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.cpu_s += self.cpu_now()
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 20)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


async def busiest(instances: list[Rudder], database_url: str | None) -> Rudder:
    """The instance holding the most bots' leases (PostgreSQL), else the only one."""
    if len(instances) == 1 or not database_url:
        return instances[0]
    import psycopg

    def held() -> dict[int, int]:
        with psycopg.connect(database_url, autocommit=True, connect_timeout=5) as conn:
            rows = conn.execute(
                "SELECT i.pid, count(*) FROM bot_leases l JOIN instances i "
                "ON i.id = l.owner_instance_id WHERE l.expires_at > now() GROUP BY i.pid"
            ).fetchall()
        return {int(pid): int(n) for pid, n in rows}

    counts = await asyncio.to_thread(held)
    return max(instances, key=lambda r: counts.get(r.proc.pid if r.proc else -1, 0))


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def setup(
    args: argparse.Namespace, sb: httpx.AsyncClient, rudder: httpx.AsyncClient
) -> tuple[list[dict[str, Any]], list[str], str, list[str]]:
    """Bots, agents, users, chats, bindings. Returns (targets, app_ids, org_id, agent_ids)."""
    org = (await rudder.get("/api/orgs")).json()[0]
    member = (await rudder.get(f"/api/orgs/{org['id']}/members")).json()[0]
    apps, agent_ids, integrations = [], [], []
    for b in range(args.bots):
        app = (await sb.post("/apps", json={"name": f"Soak {b}", "brand": "feishu"})).json()
        r = await rudder.post(
            f"/api/orgs/{org['id']}/agents",
            json={
                "name": f"Soak {b}",
                "runtime_type": "process",
                "runtime_config": {
                    "command": sys.executable,
                    "args": [str(AGENT)],
                    "env": {"SOAK_AGENT_DELAY": str(args.agent_delay)},
                },
            },
        )
        if not r.is_success:
            raise SystemExit(f"creating a process agent failed: {r.status_code} {r.text}")
        agent_id = r.json()["id"]
        r = await rudder.post(
            f"/api/agents/{agent_id}/integrations/feishu/manual",
            json={"region": "feishu", "app_id": app["app_id"], "app_secret": app["app_secret"]},
        )
        if not r.is_success:
            raise SystemExit(f"connecting {app['app_id']} failed: {r.status_code} {r.text}")
        apps.append(app)
        agent_ids.append(agent_id)
        integrations.append(r.json()["id"])
    users = [
        (await sb.post("/users", json={"name": f"User {u}"})).json()["user_id"]
        for u in range(args.users)
    ]
    targets: list[dict[str, Any]] = []
    for b, app in enumerate(apps):
        mine = [u for i, u in enumerate(users) if i % args.bots == b]
        listed = (await sb.get(f"/users?app_id={app['app_id']}")).json()["items"]
        open_ids = {u["user_id"]: u["open_id"] for u in listed}
        for user in mine:
            r = await rudder.post(
                f"/api/orgs/{org['id']}/feishu-user-bindings",
                json={
                    "integration_id": integrations[b],
                    "open_id": open_ids[user],
                    "user_id": member["user_id"],
                },
            )
            if not r.is_success:
                raise SystemExit(f"binding failed: {r.status_code} {r.text}")
            chat = await sb.post(
                "/chats", json={"type": "p2p", "user_ids": [user], "app_ids": [app["app_id"]]}
            )
            targets.append({"chat_id": chat.json()["chat_id"], "user_id": user, "mention": None})
        if args.groups and mine:
            group = await sb.post(
                "/chats",
                json={
                    "type": "group",
                    "name": f"Soak group {b}",
                    "user_ids": mine[:5],
                    "app_ids": [app["app_id"]],
                },
            )
            targets.append(
                {"chat_id": group.json()["chat_id"], "user_id": mine[0], "mention": app["app_id"]}
            )
    return targets, [a["app_id"] for a in apps], org["id"], agent_ids


async def wait_connected(sb: httpx.AsyncClient, app_ids: list[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        apps = [(await sb.get(f"/apps/{a}")).json() for a in app_ids]
        if all(a.get("connections") for a in apps):
            return
        await asyncio.sleep(0.1)
    raise SystemExit("bots did not connect")


def judge(sent: Sent, replies: list[dict[str, Any]]) -> str:
    if not replies:
        return "lost"
    if len(replies) > 1:
        return "doubled"
    [reply] = replies
    if reply["msg_type"] == "interactive" and (reply.get("streaming") or not reply["text"]):
        return "stuck"
    text = str(reply["text"])
    done = "\n" + CARD_FOOTER_DONE  # a finished card's footer
    if reply["msg_type"] == "interactive" and text.endswith(done):
        text = text[: -len(done)]
    return "real" if text.strip() == sent.expected else "notice"


async def poll(
    sb: httpx.AsyncClient, chats: list[str], sent: dict[str, Sent]
) -> dict[str, list[dict[str, Any]]]:
    """Bot replies by the user message they answer; marks first sightings of real answers."""
    by_parent: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    now = time.monotonic()
    gate = asyncio.Semaphore(16)  # the sandbox is one process serving Rudder too

    async def page(chat_id: str) -> list[dict[str, Any]]:
        for attempt in range(5):
            try:
                async with gate:
                    items: list[dict[str, Any]] = (
                        await sb.get(f"/chats/{chat_id}/messages")
                    ).json()["items"]
                    return items
            except httpx.HTTPError:
                if attempt == 4:
                    raise
                await asyncio.sleep(0.5)
        raise AssertionError("unreachable")

    for items in await asyncio.gather(*(page(c) for c in chats)):
        for m in items:
            if m["sender"]["sender_type"] == "app" and m.get("parent_id"):
                by_parent[m["parent_id"]].append(m)
            elif m["message_id"] in sent:
                sent[m["message_id"]].typing = any(
                    r["emoji_type"] == "Typing" for r in m.get("reactions", [])
                )
    for message_id, item in sent.items():
        if item.answered_at is None and judge(item, by_parent.get(message_id, [])) == "real":
            item.answered_at = now
    return by_parent


async def api_client(
    rudder_base: str, conversation_id: str, stop_at: float, figures: Figures
) -> None:
    async with httpx.AsyncClient(base_url=rudder_base, timeout=30) as client:
        n = 0
        while time.monotonic() < stop_at:
            n += 1
            started = time.monotonic()
            try:
                r = await client.post(
                    f"/api/conversations/{conversation_id}/messages",
                    json={"body": f"local message {n}"},
                )
            except httpx.TransportError:
                figures.api_down += 1
                await asyncio.sleep(0.2)
                continue
            if r.status_code >= 500:
                figures.api_5xx += 1
                figures.api_errors[r.text[:200]] += 1
            elif r.status_code < 300:
                figures.api_ok += 1
                figures.api_latencies.append(time.monotonic() - started)
            else:
                figures.api_errors[f"{r.status_code} {r.text[:150]}"] += 1
            await asyncio.sleep(0.25)


def create_pg_database(admin_url: str) -> tuple[str, str]:
    """A throw-away database next to `admin_url` (shared servers stay clean): (name, url)."""
    import psycopg

    name = f"rudder_soak_{os.getpid()}_{secrets.token_hex(3)}"
    plain = admin_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = plain.rpartition("/")
    return name, f"{base}/{name}"


def drop_pg_database(admin_url: str, name: str) -> None:
    import psycopg

    plain = admin_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def db_figures(home: str, database_url: str | None) -> dict[str, Any]:
    """What Rudder's tables say after the soak (SQLite only)."""
    if database_url:
        return {}
    path = Path(home) / "rudder.db"
    if not path.exists():
        return {}
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        runs = dict(db.execute("SELECT status, count(*) FROM runs GROUP BY status").fetchall())
        inbound = dict(
            db.execute("SELECT outcome, count(*) FROM inbound_events GROUP BY outcome").fetchall()
        )
        failed = [
            r[0][:200]
            for r in db.execute(
                "SELECT reason FROM inbound_events WHERE outcome = 'failed' LIMIT 5"
            ).fetchall()
        ]
        outbox = dict(db.execute("SELECT status, count(*) FROM outbox GROUP BY status").fetchall())
        errors = collections.Counter(
            (r[0] or "")[:120]
            for r in db.execute("SELECT error FROM runs WHERE status = 'failed'").fetchall()
        )
    finally:
        db.close()
    return {
        "runs": runs,
        "inbound": inbound,
        "inbound_failed_reasons": failed,
        "outbox": outbox,
        "run_errors": dict(errors.most_common(5)),
    }


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    load_before = os.getloadavg()
    home = tempfile.mkdtemp(prefix="rudder-soak-")
    env: dict[str, str] = {}
    pg_admin = pg_name = None
    if args.db == "postgres":
        pg_admin = os.environ.get("RUDDER_TEST_POSTGRES_URL")
        if not pg_admin:
            raise SystemExit("--db postgres needs RUDDER_TEST_POSTGRES_URL")
        pg_name, env["DATABASE_URL"] = create_pg_database(pg_admin)
    if args.instances > 1 or args.workers:
        if args.db != "postgres":
            raise SystemExit("--instances above 1 and --workers need --db postgres")
        env["RUDDER_SECRETS_KEY"] = secrets.token_hex(32)  # one key for every process
    sandbox_proc, sandbox_url = start_sandbox()
    fleet = [
        Rudder(home if i == 0 else os.path.join(home, f"instance-{i}"), sandbox_url, env)
        for i in range(args.instances)
    ]
    fleet += [
        Rudder(os.path.join(home, f"worker-{i}"), sandbox_url, env, worker=True)
        for i in range(args.workers)
    ]
    instances = [r for r in fleet if not r.worker]
    rudder = instances[0]
    figures = Figures()
    sent: dict[str, Sent] = {}
    kill_windows: list[tuple[float, float]] = []
    restarts: list[float] = []
    reconnected: list[float] = []  # kill → every bot connected again
    try:
        for member in fleet:
            await member.start()
        async with (
            httpx.AsyncClient(base_url=sandbox_url + "/_sandbox/api", timeout=30) as sb,
            httpx.AsyncClient(base_url=rudder.base, timeout=30) as api,
        ):
            await sb.patch("/settings", json={"ws_reconnect_nonce": 0})
            targets, app_ids, org_id, agent_ids = await setup(args, sb, api)
            await wait_connected(sb, app_ids)
            conversations = []
            for i in range(args.api_clients):
                r = await api.post(
                    f"/api/orgs/{org_id}/conversations",
                    json={"agent_id": agent_ids[i % len(agent_ids)], "title": f"API {i}"},
                )
                r.raise_for_status()
                conversations.append(r.json()["id"])
            chats = [t["chat_id"] for t in targets]
            window = args.messages / args.rate
            t0 = time.monotonic()

            async def post(i: int) -> None:
                target = targets[i % len(targets)]
                token = f"soak-{i:06d}-{secrets.token_hex(2)}"
                body: dict[str, Any] = {"user_id": target["user_id"], "text": f"{token} hello"}
                if target["mention"]:
                    body["mention_app_ids"] = [target["mention"]]
                item = Sent(token, target["chat_id"], answer(token), time.monotonic())
                r = await sb.post(f"/chats/{target['chat_id']}/messages", json=body)
                r.raise_for_status()
                item.message_id = r.json()["message_id"]
                item.event_ids = list(r.json().get("event_ids") or [])
                sent[item.message_id] = item

            async def sender() -> None:
                tasks = []
                for i in range(args.messages):
                    delay = t0 + i / args.rate - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    tasks.append(asyncio.create_task(post(i)))
                await asyncio.gather(*tasks)

            async def killer() -> None:
                for k in range(args.kills):
                    at = t0 + window * (k + 1) / (args.kills + 1)
                    await asyncio.sleep(max(0.0, at - time.monotonic()))
                    victim = await busiest(instances, env.get("DATABASE_URL"))
                    killed = time.monotonic()
                    await victim.kill9()
                    await asyncio.sleep(2)
                    restarts.append(await victim.start())
                    kill_windows.append((killed, time.monotonic() + 2))
                    await wait_connected(sb, app_ids, timeout=120)
                    reconnected.append(time.monotonic() - killed)

            async def poller(until: asyncio.Event) -> None:
                while not until.is_set():
                    await poll(sb, chats, sent)
                    try:
                        await asyncio.wait_for(until.wait(), args.poll)
                    except TimeoutError:
                        pass

            done_polling = asyncio.Event()
            polling = asyncio.create_task(poller(done_polling))
            clients = [  # spread over the instances: each answers any conversation
                asyncio.create_task(
                    api_client(instances[i % len(instances)].base, c, t0 + window, figures)
                )
                for i, c in enumerate(conversations)
            ]
            await asyncio.gather(sender(), killer(), *clients)
            send_s = time.monotonic() - t0
            deadline = time.monotonic() + args.settle
            while time.monotonic() < deadline:
                if all(s.answered_at is not None for s in sent.values()):
                    break
                await asyncio.sleep(0.5)
            done_polling.set()
            await polling
            # Settled (or out of time): wait a little for anything late or doubled, then judge.
            await asyncio.sleep(args.linger)
            by_parent = await poll(sb, chats, sent)
            total_s = time.monotonic() - t0
            # A message lost so far whose event Feishu still owes a re-push (its ladder: 15 s,
            # 5 min, 1 h, 6 h) is late, not gone; it is counted apart.
            deliveries = (await sb.get("/deliveries")).json()["items"]
            unacked = {d["event_id"] for d in deliveries if d["status"] == "pending"}
            by_event = {d["event_id"]: d for d in deliveries}
            lost_history = [
                [
                    f"{round(a['at'] - by_event[e]['created_at'], 1)}s "
                    f"{'ok' if a['ok'] else a['detail'][:60]}"
                    for a in by_event[e]["history"]
                ]
                for mid, s in sent.items()
                if judge(s, by_parent.get(mid, [])) == "lost"
                for e in s.event_ids[:1]
                if e in by_event
            ][:3]
            awaiting = sum(
                1
                for mid, s in sent.items()
                if judge(s, by_parent.get(mid, [])) == "lost"
                and any(e in unacked for e in s.event_ids)
            )
            rudder_cpu = sum(r.cpu_s + r.cpu_now() for r in fleet)
        verdicts = collections.Counter(judge(s, by_parent.get(mid, [])) for mid, s in sent.items())
        samples: dict[str, list[str]] = collections.defaultdict(list)
        for mid, s in sent.items():
            v = judge(s, by_parent.get(mid, []))
            if v != "real" and len(samples[v]) < 3:
                samples[v].append(
                    " | ".join(r["text"][:160] for r in by_parent.get(mid, [])) or s.token
                )
        latencies = [
            s.answered_at - s.at
            for s in sent.values()
            if s.answered_at is not None and not any(a <= s.at <= b for a, b in kill_windows)
        ]
        answered_times = sorted(s.answered_at for s in sent.values() if s.answered_at)
        rate = (
            len(answered_times) / (answered_times[-1] - t0)
            if answered_times and answered_times[-1] > t0
            else 0.0
        )
    finally:
        await asyncio.gather(*(r.stop() for r in fleet))
        stop(sandbox_proc)
        if pg_admin and pg_name and not args.keep:
            drop_pg_database(pg_admin, pg_name)
    log_text = "".join(r.log.read_text(errors="replace") for r in fleet if r.log.exists())
    result = {
        "db": args.db,
        "messages": args.messages,
        "rate": args.rate,
        "kills": args.kills,
        "instances": args.instances,
        "workers": args.workers,
        "bots": args.bots,
        "users": args.users,
        "chats": len(targets),
        "api_clients": args.api_clients,
        "agent_delay_s": args.agent_delay,
        "sent": len(sent),
        "answered_once_real": verdicts["real"],
        "failure_notices": verdicts["notice"],
        "doubled": verdicts["doubled"],
        "lost": verdicts["lost"],
        "lost_awaiting_feishu_repush": awaiting,
        "lost_delivery_history": lost_history,
        "stuck_cards": verdicts["stuck"],
        "typing_left": sum(1 for s in sent.values() if s.typing),
        "api_ok": figures.api_ok,
        "api_5xx": figures.api_5xx,
        "api_unreachable": figures.api_down,
        "api_p99_s": round(percentile(figures.api_latencies, 0.99), 3),
        "api_errors": dict(figures.api_errors.most_common(3)),
        "answered_rate_per_s": round(rate, 2),
        "latency_p50_s": round(statistics.median(latencies), 3) if latencies else None,
        "latency_p99_s": round(percentile(latencies, 0.99), 3) if latencies else None,
        # CPU of the Rudder process(es) per Feishu message (API clients' runs included): a
        # figure that depends less on how loaded the shared machine is than the rates do.
        "rudder_cpu_s": round(rudder_cpu, 2),
        "rudder_cpu_ms_per_message": round(1000 * rudder_cpu / max(1, len(sent)), 1),
        "send_window_s": round(send_s, 1),
        "total_s": round(total_s, 1),
        "restart_to_healthy_s": [round(r, 2) for r in restarts],
        "kill_to_bots_connected_s": [round(r, 2) for r in reconnected],
        "samples": dict(samples),
        "log_database_locked": log_text.count("database is locked"),
        "log_tracebacks": log_text.count("Traceback"),
        "tables": db_figures(home, env.get("DATABASE_URL")),
        "load_avg_before": [round(x, 2) for x in load_before],
        "load_avg_after": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
    }
    if args.keep:
        result["home"] = home
        if pg_name:
            result["database"] = pg_name
    else:
        shutil.rmtree(home, ignore_errors=True)
    return result


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--messages", type=int, default=600)
    p.add_argument("--rate", type=float, default=15.0)
    p.add_argument("--kills", type=int, default=2)
    p.add_argument("--bots", type=int, default=4)
    p.add_argument("--users", type=int, default=60)
    p.add_argument("--api-clients", type=int, default=8)
    p.add_argument("--groups", type=int, default=1, help="1: a group per bot with @-mentions")
    p.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    p.add_argument("--instances", type=int, default=1, help="PostgreSQL: `rudder start`s")
    p.add_argument("--workers", type=int, default=0, help="PostgreSQL: `rudder worker`s")
    p.add_argument("--settle", type=float, default=120.0)
    p.add_argument("--linger", type=float, default=3.0)
    p.add_argument("--poll", type=float, default=0.5)
    p.add_argument("--agent-delay", type=float, default=0.0, help="seconds each answer takes")
    p.add_argument("--keep", action="store_true", help="keep RUDDER_HOME (database, log)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    result = asyncio.run(soak(parse(argv)))
    print(json.dumps(result, ensure_ascii=False))
    return result


if __name__ == "__main__":
    main()
