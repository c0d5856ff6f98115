"""A form per runtime type: its fields, help and an example, and the form ↔ config mapping.

Fields are named `rt.<runtime>.<key>` so every runtime's section can sit in one form (the page
script shows only the chosen one; without the script all are shown and only the chosen one is
read). Environment variables and headers are rows of name, value and an optional secret of the
organization (`{"secret": NAME}`), so no raw JSON is needed; an Advanced JSON field still is.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rudder import texts
from rudder.runtimes import RUNTIME_LABELS, RUNTIME_TYPES

MAP_ROWS = 4  # empty name/value rows offered for env / headers


@dataclass(frozen=True, slots=True)
class FieldSpec:
    key: str
    label: str
    kind: str  # text | textarea | number | lines | map | secret | bool
    help: str = ""
    example: str = ""
    required: bool = False


@dataclass(frozen=True, slots=True)
class RuntimeForm:
    type: str
    label: str
    summary: str
    example: dict[str, Any]
    fields: tuple[FieldSpec, ...]


_ENV = FieldSpec(
    "env",
    "Environment variables",
    "map",
    "Passed to the program; pick a secret for credentials instead of typing them.",
)
_TIMEOUT = FieldSpec("timeout_sec", "Timeout (seconds)", "number", "The run is stopped after this.")
_CWD = FieldSpec(
    "cwd", "Working directory", "text", "Where it runs (a repository, often).", "/srv/project"
)

FORMS: dict[str, RuntimeForm] = {
    "process": RuntimeForm(
        "process",
        RUNTIME_LABELS.get("process", "process"),
        "Any program on this server: it reads the run as JSON on stdin and answers on stdout.",
        {"command": "python3", "args": ["my_agent.py"]},
        (
            FieldSpec("command", "Command", "text", "The program to run.", "python3", True),
            FieldSpec("args", "Arguments", "lines", "One per line.", "my_agent.py"),
            _CWD,
            _ENV,
            _TIMEOUT,
        ),
    ),
    "http": RuntimeForm(
        "http",
        RUNTIME_LABELS.get("http", "http"),
        "Rudder POSTs the run as JSON to your URL and streams the answer back.",
        {"url": "https://agents.example.com/reply"},
        (
            FieldSpec(
                "url",
                "URL",
                "text",
                "http:// or https://",
                "https://agents.example.com/reply",
                True,
            ),
            FieldSpec(
                "headers", "Headers", "map", "Sent with every request; use a secret for tokens."
            ),
            _TIMEOUT,
        ),
    ),
    "openai": RuntimeForm(
        "openai",
        RUNTIME_LABELS.get("openai", "openai"),
        "An OpenAI-compatible chat API (OpenAI, Ollama, vLLM, LM Studio).",
        {
            "base_url": "https://api.openai.com/v1",
            "model": "gpt-4o-mini",
            "api_key_secret": "OPENAI_API_KEY",
        },
        (
            FieldSpec(
                "base_url",
                "Base URL",
                "text",
                "The API's base URL.",
                "https://api.openai.com/v1",
                True,
            ),
            FieldSpec("model", "Model", "text", "", "gpt-4o-mini", True),
            FieldSpec("api_key_secret", "API key", "secret", "A secret of this organization."),
            FieldSpec(
                "system_prompt",
                "System prompt",
                "textarea",
                "Added after the agent's instructions.",
            ),
            FieldSpec("temperature", "Temperature", "number", "0 to 2."),
            FieldSpec("max_tokens", "Max tokens", "number"),
            _TIMEOUT,
        ),
    ),
    "claude_local": RuntimeForm(
        "claude_local",
        RUNTIME_LABELS.get("claude_local", "claude_local"),
        "The Claude Code CLI on this server, signed in; skills reach it as .claude/skills.",
        {"command": "claude", "model": "claude-sonnet-4-5", "cwd": "/srv/project"},
        (
            FieldSpec("command", "Command", "text", "The CLI on PATH.", "claude"),
            FieldSpec(
                "model", "Model", "text", "Leave empty for the CLI's default.", "claude-sonnet-4-5"
            ),
            _CWD,
            FieldSpec("max_turns", "Max turns", "number"),
            FieldSpec("system_prompt", "Extra system prompt", "textarea"),
            FieldSpec("extra_args", "Extra arguments", "lines", "One per line."),
            _ENV,
            _TIMEOUT,
        ),
    ),
    "codex_local": RuntimeForm(
        "codex_local",
        RUNTIME_LABELS.get("codex_local", "codex_local"),
        "The Codex CLI on this server, signed in; skills reach it as .agents/skills.",
        {"command": "codex", "model": "gpt-5-codex", "cwd": "/srv/project"},
        (
            FieldSpec("command", "Command", "text", "The CLI on PATH.", "codex"),
            FieldSpec(
                "model", "Model", "text", "Leave empty for the CLI's default.", "gpt-5-codex"
            ),
            _CWD,
            FieldSpec("system_prompt", "Extra instructions", "textarea"),
            FieldSpec("extra_args", "Extra arguments", "lines", "One per line."),
            FieldSpec("skip_git_repo_check", "Allow outside a git repository", "bool"),
            _ENV,
            _TIMEOUT,
        ),
    ),
}


def forms() -> list[RuntimeForm]:
    return [FORMS[t] for t in RUNTIME_TYPES if t in FORMS]


def values_for(runtime_type: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """What each field of `runtime_type`'s form shows for `config`."""
    out: dict[str, Any] = {}
    form = FORMS.get(runtime_type)
    if form is None:
        return out
    for spec in form.fields:
        value = config.get(spec.key)
        if spec.kind == "lines":
            out[spec.key] = "\n".join(str(v) for v in value or [])
        elif spec.kind == "map":
            rows = []
            for name, item in dict(value or {}).items():
                if isinstance(item, dict) and "secret" in item:
                    rows.append((name, "", str(item["secret"])))
                else:
                    rows.append((name, str(item), ""))
            out[spec.key] = rows + [("", "", "")] * MAP_ROWS
        elif spec.kind == "bool":
            out[spec.key] = bool(value) if value is not None else spec.key == "skip_git_repo_check"
        else:
            out[spec.key] = "" if value is None else str(value)
    return out


def empty_values() -> dict[str, dict[str, Any]]:
    return {t: values_for(t, {}) for t in FORMS}


class FormError(ValueError):
    pass


def config_from_form(runtime_type: str, form: Mapping[str, Any]) -> dict[str, Any]:
    """The runtime config the form describes; the Advanced JSON field wins when filled in."""
    # `runtime_config`: the JSON field's name before the per-runtime forms (kept for scripts).
    raw = str(form.get("runtime_config_json") or form.get("runtime_config") or "").strip()
    if raw:
        try:
            parsed = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise FormError(
                texts.WEB_CONFIG_NOT_JSON.format(detail=exc.msg, line=exc.lineno)
            ) from None
        if not isinstance(parsed, dict):
            raise FormError(texts.WEB_CONFIG_NOT_OBJECT)
        return parsed
    spec_form = FORMS.get(runtime_type)
    if spec_form is None:
        raise FormError(f"runtime_type: unknown runtime {runtime_type!r}")
    prefix = f"rt.{runtime_type}."
    config: dict[str, Any] = {}
    for spec in spec_form.fields:
        name = prefix + spec.key
        if spec.kind == "map":
            rows: dict[str, Any] = {}
            for i in range(64):
                key = str(form.get(f"{name}.{i}.name") or "").strip()
                if not key and f"{name}.{i}.name" not in form:
                    break
                if not key:
                    continue
                secret = str(form.get(f"{name}.{i}.secret") or "").strip()
                value = str(form.get(f"{name}.{i}.value") or "")
                rows[key] = {"secret": secret} if secret else value
            if rows:
                config[spec.key] = rows
            continue
        if spec.kind == "bool":
            config[spec.key] = form.get(name) in ("on", "true", "1")
            continue
        value = (
            str(form.get(name) or "").strip()
            if spec.kind != "textarea"
            else str(form.get(name) or "")
        )
        if not value.strip():
            continue
        if spec.kind == "lines":
            config[spec.key] = [line.strip() for line in value.splitlines() if line.strip()]
        elif spec.kind == "number":
            try:
                number = float(value)
            except ValueError:
                raise FormError(f"runtime_config.{spec.key}: must be a number") from None
            if not math.isfinite(number):
                raise FormError(f"runtime_config.{spec.key}: must be a finite number")
            config[spec.key] = (
                int(number)
                if number.is_integer() and spec.key in ("max_turns", "max_tokens")
                else number
            )
        else:
            config[spec.key] = value
    return config
