from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rudder.runtimes._events import OutputDecoder
from rudder.runtimes._sse import SseDecoder
from rudder.runtimes.base import RunEvent, RunEventKind, RuntimeError_

JSONL = "\n".join(
    json.dumps(e)
    for e in [
        {"type": "session", "session_id": "s1"},
        {"type": "text", "text": "Hé"},
        {"type": "tool_call", "name": "grep", "input": {"q": "x"}},
        {"type": "mystery"},
        {"type": "text", "text": "llo"},
        {"type": "usage", "input_tokens": 1},
    ]
)


def decode(chunks: list[str], mode: str = "auto") -> list[RunEvent]:
    decoder = OutputDecoder("stdout", mode)
    events = [e for chunk in chunks for e in decoder.feed(chunk)]
    return events + list(decoder.finish())


def split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts})
    return [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]


@given(st.lists(st.integers(min_value=0), max_size=12))
def test_jsonl_decodes_the_same_however_it_is_chunked(cuts: list[int]) -> None:
    events = decode(split("\n" + JSONL + "\n", cuts))
    assert [e.kind for e in events] == [
        RunEventKind.SESSION,
        RunEventKind.TEXT,
        RunEventKind.TOOL_CALL,
        RunEventKind.TEXT,
        RunEventKind.USAGE,
    ]
    assert events[0].data == {"session_id": "s1"}
    assert events[2].text == "grep" and events[2].data["input"] == {"q": "x"}


@given(st.text(min_size=1), st.lists(st.integers(min_value=0), max_size=8))
def test_plain_text_passes_through_whole(text: str, cuts: list[int]) -> None:
    events = decode(split(text, cuts))
    if text.strip():
        assert "".join(e.text for e in events) in (text, text.strip())
        assert {e.kind for e in events} == {RunEventKind.TEXT}


def test_text_is_passed_on_before_any_newline() -> None:
    decoder = OutputDecoder("stdout")
    assert [e.text for e in decoder.feed("Hel")] == ["Hel"]
    assert [e.text for e in decoder.feed("lo")] == ["lo"]


def test_json_without_a_type_is_plain_text() -> None:
    assert "".join(e.text for e in decode(['{"answer": 42}\nmore'])) == '{"answer": 42}\nmore'


def test_a_bad_line_fails_after_the_good_ones_were_delivered() -> None:
    decoder = OutputDecoder("stdout")
    delivered = []
    with pytest.raises(RuntimeError_, match="stdout line 2 is not a JSON event"):
        for event in decoder.feed('{"type": "text", "text": "ok"}\nnot json\n'):
            delivered.append(event)
    assert [e.text for e in delivered] == ["ok"]


def test_error_event_fails_with_its_message() -> None:
    with pytest.raises(RuntimeError_, match="the agent reported an error: nope"):
        decode(['{"type": "error", "message": "nope"}\n'])


SSE = 'event: ping\n\n: keep-alive\ndata: one\ndata: two\n\r\nid: 7\ndata: {"a": 1}\n\ndata:tail'


@given(st.lists(st.integers(min_value=0), max_size=10))
def test_sse_decodes_the_same_however_it_is_chunked(cuts: list[int]) -> None:
    decoder = SseDecoder()
    messages = [m for chunk in split(SSE, cuts) for m in decoder.feed(chunk)]
    messages += list(decoder.finish())
    assert [m.data for m in messages] == ["one\ntwo", '{"a": 1}', "tail"]
    assert messages[1].id == "7"
