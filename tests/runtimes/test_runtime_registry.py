from __future__ import annotations

import pytest

from rudder.runtimes import (
    DEFAULT_AGENT_RUNTIME,
    RUNTIME_LABELS,
    RUNTIME_TYPES,
    RuntimeConfigError,
    UnknownRuntimeError,
    get_runtime,
    validate_runtime_config,
)


def test_every_runtime_type_resolves_to_its_runtime() -> None:
    assert RUNTIME_TYPES[:3] == ("process", "http", "openai")
    for name in RUNTIME_TYPES:
        assert get_runtime(name).type_name == name
        assert name in RUNTIME_LABELS


def test_an_unknown_type_is_a_clear_key_error() -> None:
    with pytest.raises(KeyError) as failure:
        get_runtime("telepathy")
    assert isinstance(failure.value, UnknownRuntimeError)
    assert str(failure.value).startswith(
        "unknown runtime type 'telepathy'; expected one of process"
    )


def test_the_default_agent_runtime_is_valid() -> None:
    runtime_type, config = DEFAULT_AGENT_RUNTIME
    assert validate_runtime_config(runtime_type, config) == config


def test_valid_configs_come_back_normalised_without_defaults() -> None:
    config = {
        "command": "agent",
        "env": {"KEY": {"secret": "K"}, "MODE": "fast"},
        "timeout_sec": "30",
    }
    assert validate_runtime_config("process", config) == {
        "command": "agent",
        "env": {"KEY": {"secret": "K"}, "MODE": "fast"},
        "timeout_sec": 30.0,
    }
    assert validate_runtime_config("claude_local", {}) == {}


@pytest.mark.parametrize(
    ("runtime_type", "config", "field"),
    [
        ("process", {}, "runtime_config.command"),
        ("process", {"command": "x", "timeout_sec": 0}, "runtime_config.timeout_sec"),
        ("process", {"command": "x", "timout_sec": 5}, "runtime_config.timout_sec"),
        ("process", {"command": "x", "env": {"A": {"secrt": "B"}}}, "runtime_config.env.A"),
        ("http", {"url": "ftp://example.com"}, "runtime_config.url"),
        ("openai", {"base_url": "https://api.example.com/v1"}, "runtime_config.model"),
        ("claude_local", {"max_turns": 0}, "runtime_config.max_turns"),
        ("process", "not an object", "runtime_config"),
        ("telepathy", {}, "runtime_type"),
    ],
)
def test_a_wrong_field_is_named(runtime_type: str, config: object, field: str) -> None:
    with pytest.raises(ValueError) as failure:
        validate_runtime_config(runtime_type, config)
    assert isinstance(failure.value, RuntimeConfigError)
    assert failure.value.field.startswith(field)
    assert field in str(failure.value)
