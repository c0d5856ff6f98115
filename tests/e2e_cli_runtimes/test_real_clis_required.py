"""Without the real CLIs their tests skip with the reason, unless CI requires them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e_cli_runtimes import real_clis


def test_a_missing_cli_skips_or_fails_when_required(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(real_clis, "BIN", real_clis.ROOT / "tests" / "no-such-dir")
    monkeypatch.delenv("RUDDER_REQUIRE_REAL_CLIS", raising=False)
    with pytest.raises(pytest.skip.Exception, match="`make test` installs it with npm"):
        real_clis.real_cli("claude")
    monkeypatch.setenv("RUDDER_REQUIRE_REAL_CLIS", "1")
    with pytest.raises(pytest.fail.Exception, match="RUDDER_REQUIRE_REAL_CLIS=1 but the real"):
        real_clis.real_cli("codex")
