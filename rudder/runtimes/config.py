"""The shape of each runtime's `runtime_config`, validated at the edge (API, CLI) and at run time.

A value that may hold a credential is written as a secret reference, `{"secret": "NAME"}`, naming a
secret of the agent's organization; the plain value never sits in the agent row.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .base import RuntimeError_


class _Config(BaseModel):
    # Unknown keys are refused so a typo ("timeout" for "timeout_sec") is reported, not ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretRef(_Config):
    secret: str = Field(min_length=1)


SecretOrStr = str | SecretRef


class ProcessConfig(_Config):
    command: str = Field(min_length=1)
    args: list[str] = Field(default_factory=list)
    env: dict[str, SecretOrStr] = Field(default_factory=dict)
    cwd: str | None = None
    timeout_sec: float = Field(default=600, gt=0)
    grace_sec: float = Field(default=5, ge=0)


class HttpConfig(_Config):
    url: str = Field(pattern=r"^https?://", min_length=8)
    headers: dict[str, SecretOrStr] = Field(default_factory=dict)
    timeout_sec: float = Field(default=600, gt=0)


class OpenAIConfig(_Config):
    base_url: str = Field(pattern=r"^https?://", min_length=8)
    model: str = Field(min_length=1)
    # Optional: local OpenAI-compatible servers (Ollama, vLLM, LM Studio) often need no key.
    api_key_secret: str | None = Field(default=None, min_length=1)
    system_prompt: str | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, gt=0)
    timeout_sec: float = Field(default=300, gt=0)


class _LocalCliConfig(_Config):
    model: str | None = None
    system_prompt: str | None = None
    cwd: str | None = None
    extra_args: list[str] = Field(default_factory=list)
    env: dict[str, SecretOrStr] = Field(default_factory=dict)
    # Coding agents take minutes, not seconds; the run still ends within this bound.
    timeout_sec: float = Field(default=1800, gt=0)
    grace_sec: float = Field(default=5, ge=0)
    # The no-progress watchdog: a CLI that only retries, warns or stays silent this long fails.
    idle_timeout_sec: float = Field(default=120, gt=0)


class ClaudeLocalConfig(_LocalCliConfig):
    command: str = Field(default="claude", min_length=1)
    max_turns: int | None = Field(default=None, gt=0)
    # `--system-prompt-snapshot off`: changed instructions reach a resumed session (Claude Code
    # ≥ 2.1 otherwise keeps the first run's system prompt for the whole session).
    fresh_system_prompt: bool = True


class CodexLocalConfig(_LocalCliConfig):
    command: str = Field(default="codex", min_length=1)
    # `codex exec` refuses to start outside a git repository unless told otherwise.
    skip_git_repo_check: bool = True


CONFIG_MODELS: dict[str, type[_Config]] = {
    "process": ProcessConfig,
    "http": HttpConfig,
    "openai": OpenAIConfig,
    "claude_local": ClaudeLocalConfig,
    "codex_local": CodexLocalConfig,
}


class RuntimeConfigError(ValueError):
    """A runtime config is wrong; `field` names the first wrong field (e.g. `runtime_config.url`)."""

    def __init__(self, field: str, problems: list[tuple[str, str]]) -> None:
        self.field = field
        self.problems = problems
        super().__init__("; ".join(f"{where}: {what}" for where, what in problems))


def _location(loc: tuple[int | str, ...]) -> str:
    return ".".join(["runtime_config", *(str(part) for part in loc)])


M = TypeVar("M", bound=_Config)


def parse_config(model: type[M], config: Any) -> M:
    try:
        return model.model_validate(config)
    except ValidationError as exc:
        # Only the location and pydantic's message: the input may hold a value the user typed.
        problems = [(_location(err["loc"]), err["msg"]) for err in exc.errors(include_input=False)]
        raise RuntimeConfigError(problems[0][0], problems) from None


def run_config(model: type[M], config: Any) -> M:
    """Parse a stored config at run time, where a bad one fails the run with the reason."""
    try:
        return parse_config(model, dict(config) if isinstance(config, Mapping) else config)
    except RuntimeConfigError as exc:
        raise RuntimeError_(f"invalid runtime config: {exc}") from None
