"""An agent runtime's environment check: is everything a run needs in place on this machine?

Answers before anyone finds out from Feishu: the config is valid, the program is on PATH and
starts (its `--version`), the CLI is logged in, the working directory exists, the secrets the
config names exist, and, where that costs nothing, a one-line test run answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
import time
import tomllib
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
# Where each CLI finds credentials without an interactive login. (Codex ≥ 0.169 reads
# CODEX_API_KEY for OpenAI; OPENAI_API_KEY alone sends no key, so it does not count.)
_KEY_VARS = {
    "claude_local": ("ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_AUTH_TOKEN"),
    "codex_local": ("CODEX_API_KEY",),
}
_VERSION = re.compile(r"\d+\.\d+")
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
    code, out, err = await _probe_split(argv, env, cwd)
    return code, "\n".join(part for part in (out, err) if part)


async def _probe_split(
    argv: list[str], env: dict[str, str], cwd: str | None
) -> tuple[int, str, str]:
    """`_probe` with stdout and stderr apart (a CLI may warn on stderr before its answer)."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=cwd,
        start_new_session=True,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), PROBE_TIMEOUT_S)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)
        await proc.wait()
        return -1, "", f"no answer within {PROBE_TIMEOUT_S:g} s"

    def text(data: bytes) -> str:
        return data.decode("utf-8", errors="replace").strip()

    return proc.returncode or 0, text(out), text(err)


def _version_line(out: str, err: str) -> str:
    """The line that names the version: stdout's first, else the first with a number on stderr."""
    for line in [*out.splitlines(), *err.splitlines()]:
        if _VERSION.search(line) and not line.lstrip().upper().startswith("WARNING"):
            return line.strip()
    return (out or err).splitlines()[0].strip() if (out or err) else ""


def codex_provider_key(config: CodexLocalConfig) -> tuple[str, str] | None:
    """(provider id, env_key) of a custom Codex model provider the agent uses, if any.

    Read from `$CODEX_HOME/config.toml` (CODEX_HOME from the agent's env or Rudder's, else
    ~/.codex) and `-c model_provider=…` / `-c model_providers.ID.env_key=…` in `extra_args`.
    """
    home_value = config.env.get("CODEX_HOME")
    home = home_value if isinstance(home_value, str) else os.environ.get("CODEX_HOME")
    path = Path(home) if home else Path.home() / ".codex"
    settings: dict[str, Any] = {}
    with contextlib.suppress(OSError, tomllib.TOMLDecodeError):
        settings = tomllib.loads((path / "config.toml").read_text())
    provider = settings.get("model_provider")
    providers = settings.get("model_providers") or {}
    overrides: dict[str, str] = {}
    args = config.extra_args
    for flag, value in zip(args, args[1:], strict=False):
        if flag in ("-c", "--config") and "=" in value:
            key, _, raw = value.partition("=")
            try:
                overrides[key.strip()] = str(tomllib.loads(f"v = {raw}")["v"])
            except tomllib.TOMLDecodeError:
                overrides[key.strip()] = raw.strip()
    provider = overrides.get("model_provider", provider)
    if not isinstance(provider, str) or provider == "openai":
        return None
    entry = providers.get(provider) if isinstance(providers, dict) else None
    env_key = overrides.get(f"model_providers.{provider}.env_key")
    if env_key is None and isinstance(entry, dict):
        env_key = entry.get("env_key")
    return (provider, env_key) if isinstance(env_key, str) and env_key else None


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
    code, out, err = await _probe_split([binary, "--version"], env, cwd)
    if code == 0 and (version := _version_line(out, err)):
        report.add("version", Level.PASS, excerpt(version, 80))
    else:
        out = "\n".join(part for part in (out, err) if part)
        report.add(
            "version",
            Level.FAIL,
            f"`{config.command} --version` failed ({code}): {excerpt(out or 'no output')}",
            "reinstall the CLI; it does not start",
        )
        return

    def has(var: str) -> bool:
        return var in config.env or bool(os.environ.get(var))

    key_vars = [k for k in _KEY_VARS[runtime_type] if has(k)]
    custom = codex_provider_key(config) if isinstance(config, CodexLocalConfig) else None
    if custom is not None:
        provider, env_key = custom
        if has(env_key):
            report.add("login", Level.PASS, f"provider {provider!r} uses {env_key}")
        else:
            report.add(
                "login",
                Level.FAIL,
                f"provider {provider!r} reads its key from {env_key}, which is not set",
                f"put {env_key} in the agent's env as a secret reference",
            )
    elif key_vars:
        report.add("login", Level.PASS, f"uses {key_vars[0]} from the environment")
    elif runtime_type == "codex_local":
        code, out, err = await _probe_split([binary, "login", "status"], env, cwd)
        lines = [ln for ln in f"{out}\n{err}".splitlines() if ln.strip()]
        said = next((ln for ln in lines if not ln.upper().startswith("WARNING")), "")
        hint = (
            "run `codex login` as the user Rudder runs as, or put CODEX_API_KEY in the "
            "agent's env as a secret reference"
        )
        if has("OPENAI_API_KEY"):
            hint = "Codex does not read OPENAI_API_KEY; name the same key CODEX_API_KEY"
        if code == 0:
            report.add("login", Level.PASS, excerpt(said or "logged in", 80))
        else:
            report.add("login", Level.FAIL, excerpt(said or "not logged in", 80), hint)
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
