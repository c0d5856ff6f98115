"""`rudder agent check`: the runtime environment check, and the command around it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from rudder.cli import app as cli_app
from rudder.cli_agents import register
from rudder.runtimes.envcheck import EnvReport, Level, check_environment

from .runtime_helpers import install_fake_clis, make_context

KEY_VARS = ("ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_AUTH_TOKEN")


@pytest.fixture(autouse=True)
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Fake CLIs on PATH; no credentials from the machine running the tests."""
    install_fake_clis(tmp_path / "bin", monkeypatch)
    for name in (*KEY_VARS, "CODEX_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    claude_home = tmp_path / "claude-home"
    claude_home.mkdir()
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(claude_home))
    return claude_home


async def resolve(name: str) -> str:
    if name == "KNOWN":
        return "s3cret-value"
    raise KeyError(name)


def levels(report: EnvReport) -> dict[str, Level]:
    return {c.name: c.level for c in report.checks}


def check_named(report: EnvReport, name: str) -> Any:
    return next(c for c in report.checks if c.name == name)


async def test_claude_ready(clean_env: Path, tmp_path: Path) -> None:
    (clean_env / ".credentials.json").write_text("{}")
    config = {"cwd": str(tmp_path), "env": {"TOKEN": {"secret": "KNOWN"}}}
    report = await check_environment("claude_local", config, resolve)
    assert levels(report) == {
        "config": Level.PASS,
        "working directory": Level.PASS,
        "binary": Level.PASS,
        "version": Level.PASS,
        "login": Level.PASS,
        "secrets": Level.PASS,
        "test run": Level.SKIP,
    }
    assert check_named(report, "version").message == "9.9.9 (fake CLI)"
    assert check_named(report, "binary").message.endswith("/bin/claude")
    assert report.status is Level.PASS
    # The JSON form is what a Configuration page shows.
    assert json.loads(json.dumps(report.as_dict()))["status"] == "pass"


async def test_claude_without_a_login_is_a_warning_with_a_hint() -> None:
    report = await check_environment("claude_local", {}, resolve)
    login = check_named(report, "login")
    assert login.level is Level.WARN and "/login" in login.hint
    assert report.status is Level.WARN


async def test_an_api_key_in_the_env_counts_as_logged_in() -> None:
    config = {"env": {"ANTHROPIC_API_KEY": {"secret": "KNOWN"}}}
    report = await check_environment("claude_local", config, resolve)
    assert check_named(report, "login").message == "uses ANTHROPIC_API_KEY from the environment"


@pytest.mark.parametrize(("logged_out", "level"), [("", Level.PASS), ("1", Level.FAIL)])
async def test_codex_login_status(logged_out: str, level: Level) -> None:
    config = {"env": {"FAKE_CLI_LOGGED_OUT": logged_out}} if logged_out else {}
    report = await check_environment("codex_local", config, resolve)
    login = check_named(report, "login")
    assert login.level is level
    if level is Level.FAIL:
        assert login.message == "Not logged in" and "codex login" in login.hint


async def test_a_missing_binary_fails_with_how_to_install() -> None:
    report = await check_environment("codex_local", {"command": "codex-nowhere"}, resolve)
    binary = check_named(report, "binary")
    assert binary.level is Level.FAIL and "npm install -g @openai/codex" in binary.hint
    assert "version" not in levels(report)
    assert report.status is Level.FAIL


async def test_missing_directory_and_secrets_fail(tmp_path: Path) -> None:
    config = {
        "command": "python",
        "cwd": str(tmp_path / "nope"),
        "env": {"A": {"secret": "KNOWN"}, "B": {"secret": "MISSING_ONE"}},
    }
    report = await check_environment("process", config, resolve)
    assert check_named(report, "working directory").level is Level.FAIL
    secrets_check = check_named(report, "secrets")
    assert secrets_check.level is Level.FAIL and secrets_check.message == "missing: MISSING_ONE"
    assert "s3cret" not in json.dumps(report.as_dict())


async def test_an_invalid_config_names_the_field() -> None:
    report = await check_environment("http", {"url": "ftp://x"}, resolve)
    assert levels(report) == {"config": Level.FAIL}
    assert "runtime_config.url" in report.checks[0].message


async def test_the_example_agent_answers_a_test_run() -> None:
    config = {"command": "python", "args": ["-m", "rudder.runtimes.example_agent"]}
    report = await check_environment("process", config, resolve, dry_run=make_context(config))
    run = check_named(report, "test run")
    assert run.level is Level.PASS and run.message.startswith('answered "Hi')


async def test_a_failing_test_run_fails_with_the_cli_reason(tmp_path: Path) -> None:
    (Path(str(tmp_path / "claude-home")) / ".credentials.json").write_text("{}")
    config = {"env": {"FAKE_CLI_FIXTURE": "claude_local__failed"}}
    report = await check_environment("claude_local", config, resolve, dry_run=make_context(config))
    run = check_named(report, "test run")
    assert run.level is Level.FAIL and "Claude Code failed" in run.message


async def test_no_test_run_while_something_else_fails() -> None:
    config = {"command": "claude-nowhere"}
    report = await check_environment("claude_local", config, resolve, dry_run=make_context(config))
    assert check_named(report, "test run").level is Level.SKIP


def test_the_command_prints_a_table_and_exits_non_zero_on_problems(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUDDER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()
    # As in `rudder agent`: a command group (a lone command would become the app itself).
    agent_app = typer.Typer()
    agent_app.callback()(lambda: None)
    register(agent_app)

    created = runner.invoke(
        cli_app,
        ["agent", "create", "Coder", "--runtime", "codex_local", "--config", '{"command": "nope"}'],
    )
    assert created.exit_code == 0, created.output
    failed = runner.invoke(agent_app, ["check", "Coder"])
    assert failed.exit_code == 1, failed.output
    assert "'nope' is not on PATH" in failed.output and "not ready" in failed.output

    ok = runner.invoke(agent_app, ["check", "Example Agent", "--json"])
    assert ok.exit_code == 0, ok.output
    report = json.loads(ok.output)
    assert report["agent"] == "Example Agent" and report["status"] == "pass"
    assert report["checks"][-1]["name"] == "test run"
    assert report["checks"][-1]["level"] == "pass"  # the example agent is free to try

    missing = runner.invoke(agent_app, ["check", "Nobody"])
    assert missing.exit_code == 2 and "no agent 'Nobody'" in missing.output
