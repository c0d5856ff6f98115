"""`rudder agent check NAME --run` with the real Claude Code and Codex CLIs: ready when the
configuration works, not ready with the right reason when it does not."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from rudder.cli import app as cli_app
from rudder.cli_agents import register
from tests.e2e_cli_runtimes.fake_model import FakeModel, ModelServer
from tests.e2e_cli_runtimes.real_clis import claude_config, codex_config, real_cli

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("RUDDER_HOME", str(tmp_path / "rudder-home"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    return CliRunner()


def check(runner: CliRunner, name: str, config: dict[str, Any], runtime: str) -> tuple[int, Any]:
    created = runner.invoke(
        cli_app, ["agent", "create", name, "--runtime", runtime, "--config", json.dumps(config)]
    )
    assert created.exit_code == 0, created.output
    # As in `rudder agent`: a command group (a lone command would become the app itself).
    agent_app = typer.Typer()
    agent_app.callback()(lambda: None)
    register(agent_app)
    result = runner.invoke(agent_app, ["check", name, "--run", "--json"])
    return result.exit_code, json.loads(result.output)


def rows(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in report["checks"]}


def test_claude_code(runner: CliRunner, tmp_path: Path) -> None:
    claude = real_cli("claude")
    with ModelServer(FakeModel(reply="ok")) as model:
        code, report = check(
            runner, "Claude", claude_config(claude, model, tmp_path / "a"), "claude_local"
        )
    assert code == 0 and report["status"] == "pass", report
    assert rows(report)["test run"]["message"].startswith('answered "ok"')

    with ModelServer(FakeModel(status=401)) as model:
        code, report = check(
            runner, "Claude bad key", claude_config(claude, model, tmp_path / "b"), "claude_local"
        )
    assert code == 1 and report["status"] == "fail", report
    test_run = rows(report)["test run"]
    assert test_run["level"] == "fail" and "Invalid API key" in test_run["message"], test_run


def test_codex(runner: CliRunner, tmp_path: Path) -> None:
    codex = real_cli("codex")
    with ModelServer(FakeModel(reply="ok")) as model:
        code, report = check(
            runner, "Codex", codex_config(codex, model, tmp_path / "a"), "codex_local"
        )
        assert code == 0 and report["status"] == "pass", report
        assert rows(report)["version"]["message"] == "codex-cli 0.169.0"

        broken = codex_config(codex, model, tmp_path / "b")
        del broken["env"]["FAKE_MODEL_KEY"]
        code, report = check(runner, "Codex no key", broken, "codex_local")
    assert code == 1 and report["status"] == "fail", report
    login = rows(report)["login"]
    assert login["level"] == "fail" and "FAKE_MODEL_KEY" in login["message"], login
