"""Schemathesis against /openapi.json of a running server: no 500s, every answer as documented.

Each operation gets a bounded number of generated requests; about half of them use ids that
exist (the seeded org, agent, conversation, run) so the happy paths are fuzzed too, not only
the 404s.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import positive_data_acceptance

from rudder.config import Settings
from rudder.runtimes import DEFAULT_AGENT_RUNTIME
from rudder.server import create_app
from tests.conftest import _truncate_all
from tests.hostile.conftest import count
from tests.hostile.live import Live, live_rudder, seed

EXAMPLES_PER_OPERATION = 20
# positive_data_acceptance is left out: a schema-valid body may still be refused with 422 by
# rules JSON Schema cannot state (runtime_config depends on runtime_type; a name of only
# whitespace). Every other check runs: no 5xx, documented statuses, bodies and headers.
# Streams forever; fuzzed with unknown ids only (the live stream itself is tested elsewhere).
STREAMING = {"GET /api/conversations/{conversation_id}/events"}
# Bugs in routes owned elsewhere: each is a strict xfail, so fixing it turns the run red
# until the mark is removed.
KNOWN_BAD: dict[str, str] = {}


def _operations() -> list[str]:
    with tempfile.TemporaryDirectory() as home:
        app = create_app(
            Settings(home=Path(home), database_url="sqlite+aiosqlite://", secrets_key="0" * 64)
        )
        paths = app.openapi()["paths"]
    return [f"{method.upper()} {path}" for path, ops in paths.items() for method in ops]


OPERATIONS = _operations()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Live]:
    home = tmp_path_factory.mktemp("fuzz")
    if request.param == "sqlite":
        db_url = f"sqlite+aiosqlite:///{home / 'rudder.db'}"
    else:
        db_url = request.getfixturevalue("pg_database")
        if db_url is None:
            pytest.skip("RUDDER_TEST_POSTGRES_URL is not set")
        _truncate_all(db_url)
    with live_rudder(db_url, home / "home") as server:
        seed(server)
        yield server


@pytest.fixture(scope="module")
def api(live: Live) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(live.url + "/openapi.json")


def _harmless(case: Any) -> None:
    # Fuzzed agents keep the bundled example agent: a generated process command or HTTP target
    # would run, or call out, for real.
    if isinstance(case.body, dict) and (
        "runtime_type" in case.body or "runtime_config" in case.body
    ):
        runtime_type, runtime_config = DEFAULT_AGENT_RUNTIME
        case.body["runtime_type"] = runtime_type
        case.body["runtime_config"] = dict(runtime_config)


@pytest.mark.parametrize(
    "label",
    [
        pytest.param(op, marks=pytest.mark.xfail(strict=True, reason=KNOWN_BAD[op]))
        if op in KNOWN_BAD
        else op
        for op in OPERATIONS
    ],
)
def test_operation_answers_as_documented(
    api: schemathesis.BaseSchema, live: Live, label: str
) -> None:
    method, path = label.split(" ", 1)
    operation = api[path][method]
    failures: list[str] = []

    @given(case=operation.as_strategy(), real_ids=st.booleans())
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case: Any, real_ids: bool) -> None:
        if real_ids and label not in STREAMING:
            for name in case.path_parameters or {}:
                if live.ids.get(name):
                    case.path_parameters[name] = live.ids[name]
        _harmless(case)
        count("API requests fuzzed")
        try:
            response = case.call(base_url=live.url, timeout=15)
        except requests.Timeout:
            failures.append(f"{label}: no answer within 15 s")
            return
        try:
            case.validate_response(response, excluded_checks=[positive_data_acceptance])
        except BaseException as exc:  # schemathesis raises a FailureGroup (an exception group)
            for failure in getattr(exc, "exceptions", [exc]):
                failures.append(
                    f"{label}: {str(failure).splitlines()[0]}\n{case.as_curl_command()}"
                )

    fuzz()
    count("API operations fuzzed")
    assert not failures, "\n".join(sorted(set(failures))[:10])
