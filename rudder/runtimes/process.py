"""The `process` runtime: any local program that reads the run context as JSON on stdin and
answers on stdout, as plain text or as JSONL events.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator

from ._child import ChildSpec, child_env, resolve_command, spawn, stderr_events
from ._events import OutputDecoder
from ._payload import context_payload
from ._secrets import Redactor, redacting, resolve_values
from .base import RunContext, RunEvent, RuntimeError_
from .config import ProcessConfig, run_config


def run_env(ctx: RunContext) -> dict[str, str]:
    """Identifiers an agent may use when it talks to Rudder's API about this run."""
    env = {
        "RUDDER_RUN_ID": ctx.run_id,
        "RUDDER_AGENT_ID": ctx.agent_id,
        "RUDDER_CONVERSATION_ID": ctx.conversation_id,
    }
    if ctx.run_dir:
        env["RUDDER_RUN_DIR"] = ctx.run_dir  # files to attach to the reply go here
    return env


class ProcessRuntime:
    type_name = "process"

    def stream(self, ctx: RunContext) -> AsyncIterator[RunEvent]:
        redactor = Redactor()
        return redacting(self._stream(ctx, redactor), redactor)

    async def _stream(self, ctx: RunContext, redactor: Redactor) -> AsyncGenerator[RunEvent, None]:
        config = run_config(ProcessConfig, ctx.runtime_config)
        env = child_env({**run_env(ctx), **await resolve_values(ctx, config.env, redactor)})
        spec = ChildSpec(
            argv=[resolve_command(config.command), *config.args],
            env=env,
            stdin=json.dumps(context_payload(ctx)).encode(),
            timeout_sec=config.timeout_sec,
            grace_sec=config.grace_sec,
            cwd=config.cwd,
        )
        decoder = OutputDecoder("stdout")
        async with spawn(spec) as child:
            async for chunk in child.stdout_chunks():
                for event in decoder.feed(chunk):
                    yield event
                for event in stderr_events(child):
                    yield event
            code = await child.wait()
            for event in stderr_events(child):
                yield event
            if code != 0:
                raise RuntimeError_(child.exit_reason(code))
            for event in decoder.finish():
                yield event
