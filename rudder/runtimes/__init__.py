"""Agent runtimes: the registry of runtime types, their config validation and the default agent's
runtime. Runtime modules are imported on first use, so importing this package stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any, Final

from .base import AgentRuntime, ChatMessage, RunContext, RunEvent, RunEventKind, RuntimeError_
from .config import CONFIG_MODELS, RuntimeConfigError, parse_config

__all__ = [
    "DEFAULT_AGENT_RUNTIME",
    "RUNTIME_LABELS",
    "RUNTIME_TYPES",
    "AgentRuntime",
    "ChatMessage",
    "RunContext",
    "RunEvent",
    "RunEventKind",
    "RuntimeConfigError",
    "RuntimeError_",
    "UnknownRuntimeError",
    "get_runtime",
    "validate_runtime_config",
]

# type name → (module, class); the order is the order a UI offers them in.
_RUNTIMES: Final[dict[str, tuple[str, str]]] = {
    "process": ("rudder.runtimes.process", "ProcessRuntime"),
    "http": ("rudder.runtimes.http", "HttpRuntime"),
    "openai": ("rudder.runtimes.openai", "OpenAIRuntime"),
    "claude_local": ("rudder.runtimes.claude_local", "ClaudeLocalRuntime"),
    "codex_local": ("rudder.runtimes.codex_local", "CodexLocalRuntime"),
}

RUNTIME_TYPES: Final[tuple[str, ...]] = tuple(_RUNTIMES)

RUNTIME_LABELS: Final[dict[str, str]] = {
    "process": "Local process",
    "http": "HTTP endpoint",
    "openai": "OpenAI-compatible API",
    "claude_local": "Claude Code (local)",
    "codex_local": "Codex (local)",
}

# What the first start gives the default agent: the bundled example agent, which needs no
# model, key or network, so a fresh install can hold a conversation at once.
DEFAULT_AGENT_RUNTIME: Final[tuple[str, dict[str, Any]]] = (
    "process",
    {"command": "python", "args": ["-m", "rudder.runtimes.example_agent"]},
)


class UnknownRuntimeError(KeyError):
    def __init__(self, runtime_type: str) -> None:
        super().__init__(runtime_type)
        self.runtime_type = runtime_type

    def __str__(self) -> str:
        return f"unknown runtime type {self.runtime_type!r}; expected one of {', '.join(RUNTIME_TYPES)}"


def get_runtime(runtime_type: str) -> AgentRuntime:
    try:
        module_name, class_name = _RUNTIMES[runtime_type]
    except KeyError:
        raise UnknownRuntimeError(runtime_type) from None
    runtime: AgentRuntime = getattr(importlib.import_module(module_name), class_name)()
    return runtime


def validate_runtime_config(runtime_type: str, config: Any) -> dict[str, Any]:
    """Check a runtime config as a user wrote it; raises `RuntimeConfigError` (a ValueError)
    naming the wrong field. Returns the config normalised, without defaults filled in, so a
    later change of a default reaches existing agents.
    """
    model = CONFIG_MODELS.get(runtime_type)
    if model is None:
        raise RuntimeConfigError(
            "runtime_type", [("runtime_type", str(UnknownRuntimeError(runtime_type)))]
        )
    return parse_config(model, config).model_dump(mode="json", exclude_unset=True)
