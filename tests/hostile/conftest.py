"""Figures of the hostile-input suite: what was tried and what held.

Each test adds to ``FIGURES``; the totals are printed at the end of the run and, when
``RUDDER_SECURITY_FIGURES`` names a file, written there as JSON (docs/security.md quotes them;
``scripts/reliability-figures`` turns them into docs/reliability.md). The outcome of every test of
this suite is written too (``tests <outcome>: <module>``), so a figure is only called held when
the tests behind it passed.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest

FIGURES: Counter[str] = Counter()


def count(name: str, n: int = 1) -> None:
    FIGURES[name] += n


OUTCOMES = ("passed", "failed", "error", "skipped", "xfailed", "xpassed")


def _count_outcomes(terminalreporter: pytest.TerminalReporter) -> None:
    here = Path(__file__).parent.name
    for outcome in OUTCOMES:
        for report in terminalreporter.stats.get(outcome, []):
            nodeid = getattr(report, "nodeid", "")
            path = nodeid.split("::", 1)[0]
            if f"/{here}/" not in f"/{path}":
                continue
            module = Path(path).stem
            FIGURES[f"tests {outcome}: {module}"] += 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not FIGURES:
        return
    _count_outcomes(terminalreporter)
    terminalreporter.section("hostile input: figures")
    for name, value in sorted(FIGURES.items()):
        terminalreporter.write_line(f"{name}: {value}")
    target = os.environ.get("RUDDER_SECURITY_FIGURES")
    if target:
        Path(target).write_text(json.dumps(dict(sorted(FIGURES.items())), indent=2) + "\n")
