"""Milliseconds from a Feishu user message to the first reply text visible in the bot's card.

Rudder (embedded default: SQLite, in-process run queue, long connection) and the Feishu sandbox
run in this process on loopback. A `process` agent answers at once. Each iteration posts a DM
through the sandbox's control API and watches the sandbox's own state for the first non-empty
text in the bot's reply card; the next iteration starts when the card is closed, and at least
`--interval` after the previous one started.

Why the interval: Feishu allows a bot 5 messages per second into one chat (230020 beyond that,
reference §6.8; the sandbox enforces it). Back-to-back iterations in one chat ask for more and
measure the rate limit's retry backoff instead of the reply path. 0.3 s keeps any five replies
more than a second apart; `--interval 0` reproduces the unpaced loop.

Usage: python benchmarks/reply_latency.py [--iterations N] [--interval S]; prints one JSON
object last.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import re
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from rudder.config import Settings
from rudder.sandbox import SandboxServer
from rudder.sandbox.core import Sandbox
from rudder.server import create_app

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import machine

ITERATION_TIMEOUT_S = 10.0
# Starts, prints its answer, exits: the runtime's first token comes "at once".
AGENT = {
    "command": "python",
    "args": ["-I", "-S", "-c", "import sys; sys.stdout.write('pong'); sys.stdout.flush()"],
}


class CardWatch:
    """Notices, on every sandbox state change, the first non-empty bot text in one chat."""

    def __init__(self, sandbox: Sandbox, chat_id: str) -> None:
        self.sandbox = sandbox
        self.chat_id = chat_id
        self.after = 0
        self.first_text_at: float | None = None
        self.card_at: float | None = None  # the (still empty) reply card appeared
        self.first_text_event = asyncio.Event()
        original = sandbox.touch

        def touch() -> None:
            original()
            self._look()

        sandbox.touch = touch  # type: ignore[method-assign]

    def arm(self) -> None:
        self.after = len(self.sandbox.chat_messages.get(self.chat_id, []))
        self.first_text_at = None
        self.card_at = None
        self.first_text_event.clear()

    def _bot_replies(self) -> list[Any]:
        ids = self.sandbox.chat_messages.get(self.chat_id, [])[self.after :]
        messages = [self.sandbox.messages[i] for i in ids]
        return [m for m in messages if m.sender_type == "app"]

    def _look(self) -> None:
        if self.first_text_at is not None:
            return
        for message in self._bot_replies():
            if self.card_at is None:
                self.card_at = time.perf_counter()
            if self.sandbox.message_text(message).strip():
                self.first_text_at = time.perf_counter()
                self.first_text_event.set()
                return

    def closed_card(self) -> Any | None:
        for message in self._bot_replies():
            card = self.sandbox.card_of(message)
            config = card.get("config", {}) if isinstance(card, dict) else {}
            if message.msg_type == "interactive" and not config.get("streaming_mode"):
                return message
        return None


class RunTimes:
    """When the executor started the run and got its first text (an in-process observer)."""

    def __init__(self) -> None:
        self.started_at: float | None = None
        self.text_at: float | None = None

    def arm(self) -> None:
        self.started_at = self.text_at = None

    async def __call__(self, phase: str, update: Any) -> None:
        now = time.perf_counter()
        if phase == "start" and self.started_at is None:
            self.started_at = now
        elif phase == "text" and self.text_at is None:
            self.text_at = now


async def wait_until(predicate: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := await predicate()):
        if time.monotonic() > deadline:
            raise SystemExit("timed out while setting up the benchmark")
        await asyncio.sleep(0.01)
    return value


async def setup(rudder: httpx.AsyncClient, sb: httpx.AsyncClient) -> tuple[str, str]:
    """An agent with a connected bot and a bound Feishu user in a DM: (user id, chat id)."""
    org = (await rudder.get("/api/orgs")).json()[0]
    agent = (
        await rudder.post(
            f"/api/orgs/{org['id']}/agents",
            json={"name": "Pong", "runtime_type": "process", "runtime_config": AGENT},
        )
    ).json()
    app = (await sb.post("/_sandbox/api/apps", json={"name": "Pong", "brand": "feishu"})).json()
    connected = await rudder.post(
        f"/api/agents/{agent['id']}/integrations/feishu/manual",
        json={"region": "feishu", "app_id": app["app_id"], "app_secret": app["app_secret"]},
    )
    connected.raise_for_status()

    async def live() -> bool:
        info = (await rudder.get(f"/api/agents/{agent['id']}/integrations/feishu")).json()
        return bool(info["connection"] and info["connection"]["status"] == "connected")

    await wait_until(live, 10)
    user = (await sb.post("/_sandbox/api/users", json={"name": "Ada"})).json()["user_id"]
    chat = (
        await sb.post(
            "/_sandbox/api/chats",
            json={"type": "p2p", "user_ids": [user], "app_ids": [app["app_id"]]},
        )
    ).json()["chat_id"]
    await sb.post(f"/_sandbox/api/chats/{chat}/messages", json={"user_id": user, "text": "hi"})

    async def prompt() -> str | None:
        items = (await sb.get(f"/_sandbox/api/chats/{chat}/messages")).json()["items"]
        texts = [m["text"] for m in items if m["sender"]["sender_type"] == "app"]
        return texts[0] if texts else None

    text = await wait_until(prompt, 10)
    link = re.search(r"/bind/feishu/([\w-]+)", text)
    # The private prompt carries the code the bind page asks for (docs/feishu-chats.md).
    code = re.search(r"enter this code: ([A-Z0-9]{4}-[A-Z0-9]{4})", text)
    assert link is not None and code is not None
    confirm = f"/api/feishu-bindings/{link.group(1)}/confirm"
    (await rudder.post(confirm, json={"confirmation_code": code.group(1)})).raise_for_status()
    return user, chat


def max_ops_per_second(op_times: list[float]) -> int:
    return max(
        (sum(1 for t in op_times[i:] if t - s < 1.0) for i, s in enumerate(op_times)), default=0
    )


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


async def measure(iterations: int, warmup: int, interval: float = 0.3) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as home:
        async with (
            SandboxServer() as server,
            httpx.AsyncClient(base_url=server.url, timeout=10) as sb,
        ):
            settings = Settings(
                home=Path(home),
                database_url=f"sqlite+aiosqlite:///{Path(home) / 'rudder.db'}",
                secrets_key=secrets.token_hex(32),
                feishu_base_url=server.url,
                public_url="http://rudder.bench",  # local mode answers only to its own hosts
            )
            app = create_app(settings)
            async with app.router.lifespan_context(app):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(
                    transport=transport, base_url="http://rudder.bench", timeout=10
                ) as rudder:
                    user, chat = await setup(rudder, sb)
                    watch = CardWatch(server.sandbox, chat)
                    runs = RunTimes()
                    app.state.services.runs.add_observer(runs)
                    samples: list[float] = []
                    stages: dict[str, list[float]] = {
                        "run_started": [],
                        "agent_text": [],
                        "card_shown": [],
                    }
                    next_at = time.perf_counter()
                    for i in range(warmup + iterations):
                        await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
                        next_at = time.perf_counter() + interval
                        watch.arm()
                        runs.arm()
                        started = time.perf_counter()
                        await sb.post(
                            f"/_sandbox/api/chats/{chat}/messages",
                            json={"user_id": user, "text": f"ping {i}"},
                        )
                        async with asyncio.timeout(ITERATION_TIMEOUT_S):
                            await watch.first_text_event.wait()
                            while watch.closed_card() is None:
                                await asyncio.sleep(0.005)
                        assert watch.first_text_at is not None
                        if i >= warmup:
                            samples.append((watch.first_text_at - started) * 1000)
                            for name, at in (
                                ("run_started", runs.started_at),
                                ("agent_text", runs.text_at),
                                ("card_shown", watch.card_at),
                            ):
                                if at is not None:
                                    stages[name].append((at - started) * 1000)
                    # Let the last reply's outbox rows (typing off) finish before shutting down.
                    await asyncio.sleep(0.5)
                    card_rate = max(
                        (max_ops_per_second(c.op_times) for c in server.sandbox.cards.values()),
                        default=0,
                    )
    return {
        "iterations": len(samples),
        "first_text_mean_ms": round(statistics.fmean(samples), 1),
        "first_text_max_ms": round(max(samples), 1),
        "card_ops_max_per_s": card_rate,
        "interval_s": interval,
        # Where the time goes, from the user's message: p50 of each stage's end.
        "stages_p50_ms": {k: round(percentile(v, 50), 1) for k, v in stages.items() if v},
        "first_text_p50_ms": round(percentile(samples, 50), 1),
        "first_text_p99_ms": round(percentile(samples, 99), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument(
        "--interval",
        type=float,
        default=0.3,
        help="minimum seconds between two messages (Feishu: ≤ 5 bot messages/s per chat)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    with contextlib.redirect_stdout(sys.stderr):
        result = asyncio.run(measure(args.iterations, args.warmup, args.interval))
    print(json.dumps({**result, **machine()}))


if __name__ == "__main__":
    main()
