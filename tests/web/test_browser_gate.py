"""Without Chromium the browser tests skip with how to enable them, except where they are
required (RUDDER_REQUIRE_BROWSER=1, set by .ci/run, or CI): there they fail."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.web import test_browser


@pytest.fixture
def no_chromium(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(test_browser, "CHROMIUM", tmp_path / "no-chromium")
    monkeypatch.delenv("RUDDER_REQUIRE_BROWSER", raising=False)
    monkeypatch.delenv("CI", raising=False)


@pytest.mark.usefixtures("no_chromium")
def test_skips_with_how_to_enable() -> None:
    with pytest.raises(pytest.skip.Exception, match="apt-get install chromium"):
        test_browser._require_chromium()


@pytest.mark.usefixtures("no_chromium")
@pytest.mark.parametrize(("name", "value"), [("RUDDER_REQUIRE_BROWSER", "1"), ("CI", "true")])
def test_fails_where_required(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(pytest.fail.Exception, match="apt-get install chromium"):
        test_browser._require_chromium()


@pytest.mark.usefixtures("no_chromium")
def test_ci_false_still_skips(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception):
        test_browser._require_chromium()


def test_runs_when_present(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    present = tmp_path / "chromium"
    present.touch()
    monkeypatch.setattr(test_browser, "CHROMIUM", present)
    monkeypatch.setenv("RUDDER_REQUIRE_BROWSER", "1")
    test_browser._require_chromium()  # neither skips nor fails
