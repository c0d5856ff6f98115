"""Splitting long replies: nothing lost, boundaries preferred, every part within its budget."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from rudder.feishu.chunking import cost, split_text


def test_short_text_is_one_part() -> None:
    assert split_text("hello", 100) == ["hello"]
    assert split_text("", 100) == [""]


def test_prefers_paragraph_then_line_boundaries() -> None:
    text = "a" * 40 + "\n\n" + "b" * 40 + "\n" + "c" * 40
    parts = split_text(text, 90)
    assert parts[0] == "a" * 40 + "\n\n" + "b" * 40 + "\n"
    assert "".join(parts) == text


def test_multibyte_characters_are_never_cut() -> None:
    text = "汉字" * 100
    parts = split_text(text, 31)
    assert "".join(parts) == text
    assert all(cost(p) <= 31 for p in parts)


def test_escapes_count_toward_the_budget() -> None:
    parts = split_text('"\n' * 50, 20)
    assert all(cost(p) <= 20 for p in parts)


@given(st.text(min_size=0, max_size=400), st.integers(min_value=8, max_value=120))
def test_nothing_lost_and_within_budget(text: str, budget: int) -> None:
    parts = split_text(text, budget)
    assert "".join(parts) == text
    assert all(cost(p) <= budget for p in parts)
    assert all(parts[:-1])


@given(st.text(min_size=50, max_size=300), st.text(max_size=100))
def test_an_overflowed_first_part_never_changes_as_text_grows(text: str, more: str) -> None:
    first = split_text(text, 40)
    if len(first) > 1:
        assert split_text(text + more, 40)[0] == first[0]
