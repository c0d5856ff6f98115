"""What a person would read: the visible text of text, post and card messages."""

from __future__ import annotations

import json
import re
from typing import Any

_AT_TAG = re.compile(r'<at\s+(?:user_id|open_id|id)="([^"]*)"\s*>(.*?)</at>', re.DOTALL)
_TEXT_TAGS = {"markdown", "lark_md", "plain_text", "md"}
# Any send-side mention, quoted or not: `<at user_id="ou_x">Name</at>`, a card's `<at id=ou_x>`.
_AT_ANY = re.compile(
    r"""<at\s+(?:user_id|open_id|id)\s*=\s*["']?([A-Za-z0-9_-]+)["']?\s*>(.*?)</at>"""
)


def at_ids(raw: str) -> list[str]:
    """The ids a sent message's mentions name, in order (JSON-escaped quotes included)."""
    return [m.group(1) for m in _AT_ANY.finditer(raw.replace('\\"', '"'))]


def resolve_at_tags(text: str, names: dict[str, str]) -> str:
    """Card text as a person reads it: each mention shows as @ and the name it names."""
    return _AT_ANY.sub(lambda m: "@" + (m.group(2) or names.get(m.group(1), m.group(1))), text)


def parse_content(content: str) -> dict[str, Any]:
    try:
        value = json.loads(content)
    except (ValueError, TypeError):
        return {}
    return value if isinstance(value, dict) else {}


def text_of_text(content: dict[str, Any], mention_names: dict[str, str]) -> str:
    text = content.get("text")
    if not isinstance(text, str):
        return ""
    # Send side: <at user_id="ou_x">Name</at>; receive side: @_user_N placeholders.
    text = _AT_TAG.sub(lambda m: "@" + (m.group(2) or ("all" if m.group(1) == "all" else "")), text)
    for key in sorted(mention_names, key=len, reverse=True):
        text = text.replace(key, "@" + mention_names[key])
    return text


def text_of_post(content: dict[str, Any], mention_names: dict[str, str]) -> str:
    post = content
    if "content" not in post:
        # Send-side posts are locale-wrapped: {"zh_cn": {"title": ..., "content": [[...]]}}.
        for value in content.values():
            if isinstance(value, dict) and "content" in value:
                post = value
                break
    lines: list[str] = []
    title = post.get("title")
    if isinstance(title, str) and title:
        lines.append(title)
    paragraphs = post.get("content")
    if isinstance(paragraphs, list):
        for paragraph in paragraphs:
            if isinstance(paragraph, list):
                lines.append("".join(_post_element(e, mention_names) for e in paragraph))
    return "\n".join(lines)


def _post_element(element: object, mention_names: dict[str, str]) -> str:
    if not isinstance(element, dict):
        return ""
    tag = element.get("tag")
    if tag in ("text", "md", "a", "code_block"):
        text = element.get("text")
        return text if isinstance(text, str) else ""
    if tag == "at":
        uid = str(element.get("user_id", ""))
        name = element.get("user_name") or mention_names.get(uid) or uid
        return f"@{name}"
    return ""


def text_of_card(card: object) -> str:
    """Readable text of a card (JSON 1.0 or 2.0): its title and every text-bearing element."""
    parts: list[str] = []
    _walk_card(card, parts)
    return "\n".join(p for p in parts if p)


def _walk_card(node: object, parts: list[str]) -> None:
    if isinstance(node, list):
        for item in node:
            _walk_card(item, parts)
        return
    if not isinstance(node, dict):
        return
    tag = node.get("tag")
    if tag == "button":
        return  # a control, not text to read (the page shows it as a button)
    if tag in _TEXT_TAGS and isinstance(node.get("content"), str):
        parts.append(node["content"])
    for key, value in node.items():
        if key in ("config", "i18n_elements", "i18n_header"):
            continue
        if isinstance(value, dict | list):
            _walk_card(value, parts)
