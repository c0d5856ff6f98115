"""Agents' replies as HTML for the web conversation: Markdown rendered on the server, so a page
never carries HTML of an agent's (or a Feishu user's) making.

markdown-it-py (CommonMark, the parser rich uses) with raw HTML off: `<script>` in a reply is
text, and its link validator refuses `javascript:`, `vbscript:`, `file:` and most `data:` URLs.
Links open in a new tab without the page's referrer or opener.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

# Replies can be long; rendering is cheap but a page of 100 long replies is rendered per view.
CACHE_SIZE = 2048


def _link_open(
    renderer: RendererHTML, tokens: list[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    tokens[idx].attrSet("target", "_blank")
    tokens[idx].attrSet("rel", "noopener noreferrer nofollow")
    return renderer.renderToken(tokens, idx, options, env)


def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "breaks": True})
    md.enable("table").enable("strikethrough")
    md.add_render_rule("link_open", _link_open)
    return md


_MD = _parser()


@lru_cache(maxsize=CACHE_SIZE)
def to_html(text: str) -> str:
    return str(_MD.render(text))


def body_html(message: Any) -> str | None:
    """The rendered body of a finished assistant message; None for others (shown as text)."""
    if message.role != "assistant" or message.status == "streaming" or not message.body:
        return None
    return to_html(message.body)
