"""One run's page in words: how it ended (and why), and its events as one line each."""

from __future__ import annotations

import json
from typing import Any

from rudder import texts
from rudder.db.models import Run

SUMMARY_CHARS = 240


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SUMMARY_CHARS else text[: SUMMARY_CHARS - 1] + "…"


def run_outcome(run: Run) -> str:
    """What happened to the run, with the reason when it did not simply succeed."""
    if run.status == "cancelled":
        if run.error:  # a timeout stops the run and says why
            return texts.RUN_PAGE_STOPPED_BECAUSE.format(reason=run.error)
        return texts.RUN_PAGE_STOPPED_ON_REQUEST
    if run.status == "failed":
        return texts.RUN_PAGE_FAILED.format(reason=run.error or "no reason was given")
    if run.status == "succeeded":
        return texts.RUN_PAGE_SUCCEEDED
    if run.cancel_requested_at is not None:
        return texts.RUN_PAGE_STOPPING
    return texts.RUN_PAGE_ACTIVE.get(run.status, run.status)


def run_event_summary(kind: str, payload: dict[str, Any]) -> str:
    """One line for a non-text event; the raw payload stays available beside it."""
    text = str(payload.get("text") or "")
    if kind == "status":
        status = str(payload.get("status") or "")
        error = payload.get("error")
        return _clip(f"{status}: {error}" if error else status)
    if kind == "tool_call":
        args = {k: v for k, v in payload.items() if k not in ("text", "name")}
        name = text or str(payload.get("name") or "tool")
        return _clip(f"{name}({json.dumps(args, ensure_ascii=False)})" if args else f"{name}()")
    if kind == "usage":
        parts = [f"{k} {v}" for k, v in payload.items() if isinstance(v, int | float)]
        return _clip(", ".join(parts) or "—")
    if kind == "session":
        return _clip(f"session {payload.get('session_id', '')}")
    if text:
        return _clip(text)
    return _clip(json.dumps(payload, ensure_ascii=False))
