"""An agent runtime's environment check: is everything a run needs in place on this machine?

Answers before anyone finds out from Feishu: the config is valid, the program is on PATH and
starts (its `--version`), the CLI is logged in, the working directory exists, the secrets the
config names exist, and, where that costs nothing, a one-line test run answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, cast

from ._child import child_env, resolve_command
from ._events import excerpt
from .base import RunContext, RunEvent, RunEventKind, RuntimeError_, SecretResolver
from .config import (
    CONFIG_MODELS,
    ClaudeLocalConfig,
    CodexLocalConfig,
    HttpConfig,
    OpenAIConfig,
    ProcessConfig,
    RuntimeConfigError,
    SecretRef,
    parse_config,
)

PROBE_TIMEOUT_S = 10.0
DRY_RUN_TIMEOUT_S = 60.0
DRY_RUN_PROMPT = "This is a connection test from Rudder. Reply with the single word: ok"

_INSTALL_HINTS = {
    "claude_local": "install Claude Code (npm install -g @anthropic-ai/claude-code), "
    "or set `command` to the full path of `claude`",
    "codex_local": "install Codex (npm install -g @openai/codex), "
    "or set `command` to the full path of `codex`",
}
# Where each CLI finds credentials without an interactive login.
_KEY_VARS = {
    "claude_local": ("ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_AUTH_TOKEN"),
    "codex_local": ("CODEX_API_KEY", "OPENAI_API_KEY"),
}
_NESTING_ENV = ("CLAUDECODE", "CLAUDE_CODE_ENTRYPOINT")


class Level(StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    level: Level
    message: str
    hint: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "level": self.level.value,
            "message": self.message,
            "hint": self.hint,
        }


@dataclass(slots=True)
class EnvReport:
    runtime_type: str
    checks: list[Check] = field(default_factory=list)

    @property
    def status(self) -> Level:
        levels = {c.level for c in self.checks}
        if Level.FAIL in levels:
            return Level.FAIL
        return Level.WARN if Level.WARN in levels else Level.PASS

    def add(self, name: str, level: Level, message: str, hint: str | None = None) -> None:
        self.checks.append(Check(name, level, message, hint))

    def as_dict(self) -> dict[str, Any]:
        return {
            "runtime_type": self.runtime_type,
            "status": self.status.value,
            "checks": [c.as_dict() for c in self.checks],
        }


def is_offline_example(runtime_type: str, config: Mapping[str, Any]) -> bool:
    """The bundled example agent: a test run of it is free, offline and harmless."""
    args = config.get("args") or []
    return runtime_type == "process" and "rudder.runtimes.example_agent" in args


async def _probe(argv: list[str], env: dict[str, str], cwd: str | None) -> tuple[int, str]:
    """Run a short informational command; (exit code, its output). Bounded, never interactive."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
        cwd=cwd,
        start_new_session=True,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), PROBE_TIMEOUT_S)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)
        await proc.wait()
        return -1, f"no answer within {PROBE_TIMEOUT_S:g} s"
    return proc.returncode or 0, out.decode("utf-8", errors="replace").strip()


def _secret_names(config: Any) -> list[str]:
    names: list[str] = []
    for value in (getattr(config, "env", None) or getattr(config, "headers", None) or {}).values():
        if isinstance(value, SecretRef):
            names.append(value.secret)
    if isinstance(config, OpenAIConfig) and config.api_key_secret:
        names.append(config.api_key_secret)
    return names


async def _check_secrets(report: EnvReport, names: list[str], resolve: SecretResolver) -> None:
    if not names:
        report.add("secrets", Level.SKIP, "the config names no secrets")
        return
    missing = []
    for name in names:
        try:
            await resolve(name)
        except Exception:
            missing.append(name)
    if missing:
        report.add(
            "secrets",
            Level.FAIL,
            f"missing: {', '.join(missing)}",
            "add them under the organization's Settings → Secrets (the names must match)",
        )
    else:
        report.add("secrets", Level.PASS, f"found: {', '.join(names)}")


def _check_cwd(report: EnvReport, cwd: str | None) -> bool:
    if cwd is None:
        report.add("working directory", Level.PASS, f"Rudder's own ({os.getcwd()})")
        return True
    if Path(cwd).is_dir():
        report.add("working directory", Level.PASS, cwd)
        return True
    report.add("working directory", Level.FAIL, f"does not exist: {cwd}", "create it or fix `cwd`")
    return False


async def _check_local_cli(
    report: EnvReport, config: ClaudeLocalConfig | CodexLocalConfig, cwd_ok: bool
) -> None:
    runtime_type = report.runtime_type
    try:
        binary = resolve_command(config.command)
    except RuntimeError_:
        report.add(
            "binary", Level.FAIL, f"{config.command!r} is not on PATH", _INSTALL_HINTS[runtime_type]
        )
        return
    report.add("binary", Level.PASS, binary)
    # Only plain values: a probe needs no credentials and must not see them.
    plain = {k: v for k, v in config.env.items() if isinstance(v, str)}
    env = child_env(plain, drop=_NESTING_ENV)
    cwd = config.cwd if cwd_ok else None
    code, out = await _probe([binary, "--version"], env, cwd)
    if code == 0 and out:
        report.add("version", Level.PASS, excerpt(out.splitlines()[0], 80))
    else:
        report.add(
            "version",
            Level.FAIL,
            f"`{config.command} --version` failed ({code}): {excerpt(out or 'no output')}",
            "reinstall the CLI; it does not start",
        )
        return
    key_vars = [k for k in _KEY_VARS[runtime_type] if k in config.env or os.environ.get(k)]
    if key_vars:
        report.add("login", Level.PASS, f"uses {key_vars[0]} from the environment")
    elif runtime_type == "codex_local":
        code, out = await _probe([binary, "login", "status"], env, cwd)
        if code == 0:
            report.add("login", Level.PASS, excerpt(out or "logged in", 80))
        else:
            report.add(
                "login",
                Level.FAIL,
                excerpt(out or "not logged in", 80),
                "run `codex login` as the user Rudder runs as, or put CODEX_API_KEY in the "
                "agent's env as a secret reference",
            )
    else:
        # Claude Code has no stable non-interactive status command; its credentials file is
        # the signal on Linux (macOS keeps them in the keychain, which we cannot read).
        home = Path(os.environ.get("CLAUDE_CONFIG_DIR") or Path.home() / ".claude")
        if (home / ".credentials.json").is_file():
            report.add("login", Level.PASS, f"credentials in {home}")
        else:
            report.add(
                "login",
                Level.WARN,
                "no login found (none in the environment or in ~/.claude)",
                "run `claude` once in a terminal and /login as the user Rudder runs as, or put "
                "ANTHROPIC_API_KEY in the agent's env as a secret reference",
            )


def _check_process(report: EnvReport, config: ProcessConfig) -> None:
    try:
        binary = resolve_command(config.command)
    except RuntimeError_ as exc:
        report.add("binary", Level.FAIL, str(exc), "install it, or set `command` to a full path")
        return
    report.add("binary", Level.PASS, binary)
    if config.command == "python":
        report.add("version", Level.PASS, f"Python {sys.version.split()[0]} (Rudder's own)")
    else:
        # An arbitrary program may not treat --version as harmless; the test run covers it.
        report.add("version", Level.SKIP, "not asked (any program may run here)")


async def _dry_run(report: EnvReport, ctx: RunContext) -> None:
    from . import get_runtime

    started = time.monotonic()
    text: list[str] = []
    try:
        stream = cast(AsyncGenerator[RunEvent, None], get_runtime(report.runtime_type).stream(ctx))
        # aclosing: a timeout here must end the agent's process now, not at garbage collection.
        async with asyncio.timeout(DRY_RUN_TIMEOUT_S), contextlib.aclosing(stream):
            async for event in stream:
                if event.kind is RunEventKind.TEXT:
                    text.append(event.text)
    except TimeoutError:
        report.add("test run", Level.FAIL, f"no end within {DRY_RUN_TIMEOUT_S:g} s")
        return
    except RuntimeError_ as exc:
        report.add("test run", Level.FAIL, excerpt(str(exc), 200))
        return
    elapsed = time.monotonic() - started
    answer = excerpt("".join(text), 60) or "(no text)"
    report.add("test run", Level.PASS, f'answered "{answer}" in {elapsed:.1f} s')


async def check_environment(
    runtime_type: str,
    config: Mapping[str, Any],
    resolve_secret: SecretResolver,
    *,
    dry_run: RunContext | None = None,
) -> EnvReport:
    """Check what a run of this runtime needs. With `dry_run`, also run that context once
    (the caller decides whether that is safe: it may spend tokens)."""
    report = EnvReport(runtime_type)
    model = CONFIG_MODELS.get(runtime_type)
    if model is None:
        report.add("config", Level.FAIL, f"unknown runtime type {runtime_type!r}")
        return report
    try:
        parsed = parse_config(model, dict(config))
    except RuntimeConfigError as exc:
        report.add("config", Level.FAIL, str(exc), "fix it in the agent's Configuration")
        return report
    report.add("config", Level.PASS, "valid")
    if isinstance(parsed, ClaudeLocalConfig | CodexLocalConfig):
        await _check_local_cli(report, parsed, _check_cwd(report, parsed.cwd))
    elif isinstance(parsed, ProcessConfig):
        _check_cwd(report, parsed.cwd)
        _check_process(report, parsed)
    elif isinstance(parsed, HttpConfig | OpenAIConfig):
        url = parsed.url if isinstance(parsed, HttpConfig) else parsed.base_url
        report.add("endpoint", Level.PASS, url)
    await _check_secrets(report, _secret_names(parsed), resolve_secret)
    if dry_run is None:
        report.add("test run", Level.SKIP, "not run (it may spend tokens; use --run)")
    elif report.status is Level.FAIL:
        report.add("test run", Level.SKIP, "not run: fix the failures above first")
    else:
        await _dry_run(report, dry_run)
    return report
