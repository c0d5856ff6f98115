"""Figures of the hostile-input suite: what was tried and what held.

Each test adds to ``FIGURES``; the totals are printed at the end of the run and, when
``RUDDER_SECURITY_FIGURES`` names a file, written there as JSON (docs/security.md quotes them).
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


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not FIGURES:
        return
    terminalreporter.section("hostile input: figures")
    for name, value in sorted(FIGURES.items()):
        terminalreporter.write_line(f"{name}: {value}")
    target = os.environ.get("RUDDER_SECURITY_FIGURES")
    if target:
        Path(target).write_text(json.dumps(dict(sorted(FIGURES.items())), indent=2) + "\n")
