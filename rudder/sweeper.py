"""Nothing is left behind while the process lives: a periodic sweep re-drives stranded work.

At start-up the recoveries (runs, replies, inbound events) take up what a dead process left.
While Rudder runs, work can still be stranded without a crash: an event whose outcome could
not be written, a run whose end could not be recorded, a reply task that crashed, a queued
run whose submission was lost. Every `SWEEP_EVERY_S` the sweeper asks each owner for what is
older than `STALE_AFTER_S` and not in progress here, and hands it back to that owner:
- the inbound pipeline routes events still `received`;
- the run queue submits `queued` runs and treats orphaned `running` ones as interrupted;
- the Feishu outbound resumes replies whose ledger is pending, starts replies for Feishu runs
  that have none, delivers other pending rows, and settles reply cards still showing work
  after their run ended (card_sweep.py).
On PostgreSQL every instance sweeps too, but leaves runs to the shared run queue's own sweeps
(stalled workers, lost submissions: rudder/scale/runqueue.py). An event two instances route at
once is posted once (one post per Feishu message and conversation, migration 0014), and a reply
is taken up only when its run ended a while ago and its driver evidently died (Outbound.sweep).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from rudder.services import Services

log = logging.getLogger(__name__)

SWEEP_EVERY_S = 5.0
STALE_AFTER_S = 20.0


class Sweeper:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.every_s = SWEEP_EVERY_S
        self.stale_after_s = STALE_AFTER_S
        self.taken = 0  # items handed back so far (tests, logs)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="sweeper")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.every_s)
            try:
                await self.sweep()
            except Exception:
                log.exception("sweep failed; the next one tries again")

    async def sweep(self) -> int:
        from rudder.executor import InProcessRunQueue
        from rudder.feishu.inbound import pipeline
        from rudder.feishu.outbound import outbound_of

        taken = await pipeline(self.services).sweep(self.stale_after_s)
        runs = self.services.runs
        # Embedded only: the shared queue's runs may be executing in another process.
        if type(runs) is InProcessRunQueue:
            taken += await runs.sweep(self.stale_after_s)
        taken += await outbound_of(self.services).sweep(self.stale_after_s)
        if taken:
            log.warning("sweep: took up %d stranded item(s)", taken)
        self.taken += taken
        return taken


def install(services: Services) -> Sweeper:
    found = services.components.sweeper
    if found is None:
        found = services.components.sweeper = Sweeper(services)
    found.start()
    return found


async def shutdown(services: Services) -> None:
    found = services.components.sweeper
    if found is not None:
        await found.close()
