"""How an agent's reply mentions another Rudder agent's bot, and how Feishu is shown it.

An agent writes `@<name>` (the other agent's name, or its bot's name, any case) or Feishu's own
`<at user_id="ou_…">…</at>` / `<at id=ou_…></at>` with the bot's open_id. The mentions are
resolved against the bots Rudder knows (the caller passes those in the chat); the reply that
Feishu gets carries a real mention of each one: `<at user_id="ou_…">Name</at>` in a text
message, `<at id=ou_…></at>` in a card's markdown (reference §5, send-side syntax).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Feishu's own tags, as an agent may copy them: `<at user_id="ou_x">Name</at>`, `<at id=ou_x>`.
_AT_TAG = re.compile(
    r"""<at\s+(?:user_id|open_id|id)\s*=\s*["']?([A-Za-z0-9_-]+)["']?\s*>(.*?)</at>""",
    re.DOTALL | re.IGNORECASE,
)
# After `@name` comes anything but a letter, digit or underscore of a Latin name.
_AFTER_NAME = re.compile(r"(?![A-Za-z0-9_])")


@dataclass(frozen=True, slots=True)
class Bot:
    """One Rudder agent's bot, as a mention may name it."""

    integration_id: str
    agent_id: str
    agent_name: str
    bot_name: str | None
    open_id: str

    @property
    def label(self) -> str:
        return self.bot_name or self.agent_name

    def names(self) -> list[str]:
        return [n for n in {self.agent_name, self.bot_name or ""} if n.strip()]


@dataclass(frozen=True, slots=True)
class Span:
    start: int
    end: int
    bot: Bot


def find(text: str, bots: list[Bot]) -> list[Span]:
    """Every mention of one of `bots` in `text`, in order (longest name first at a place)."""
    spans: list[Span] = []
    by_open_id = {b.open_id: b for b in bots}
    taken: list[tuple[int, int]] = []
    for match in _AT_TAG.finditer(text):
        bot = by_open_id.get(match.group(1))
        if bot is not None:
            spans.append(Span(match.start(), match.end(), bot))
        taken.append((match.start(), match.end()))
    names = sorted(((n, b) for b in bots for n in b.names()), key=lambda nb: -len(nb[0]))
    at = text.find("@")
    while at != -1:
        if not any(s <= at < e for s, e in taken):
            for name, bot in names:
                end = at + 1 + len(name)
                # Compared slice by slice: case folding may change a string's length.
                if text[at + 1 : end].casefold() == name.casefold() and _AFTER_NAME.match(
                    text, end
                ):
                    spans.append(Span(at, end, bot))
                    break
        at = text.find("@", at + 1)
    return sorted(spans, key=lambda s: s.start)


def mentioned(text: str, bots: list[Bot]) -> list[Bot]:
    """The bots `text` mentions, each once, in the order of their first mention."""
    seen: dict[str, Bot] = {}
    for span in find(text, bots):
        seen.setdefault(span.bot.integration_id, span.bot)
    return list(seen.values())


def render(text: str, bots: list[Bot], *, card: bool) -> str:
    """`text` with each mention of `bots` turned into Feishu's mention of that bot."""
    out: list[str] = []
    last = 0
    for span in find(text, bots):
        out.append(text[last : span.start])
        if card:
            out.append(f"<at id={span.bot.open_id}></at>")
        else:
            out.append(f'<at user_id="{span.bot.open_id}">{span.bot.label}</at>')
        last = span.end
    out.append(text[last:])
    return "".join(out)
