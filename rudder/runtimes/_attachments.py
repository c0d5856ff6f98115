"""The files of the message a run answers, in the form each runtime takes them (docs/media.md).

- process: `attachments[]` in the context JSON with absolute `path`s in the run's directory;
- http: the same list with the bytes inline (`data_base64`) up to `HTTP_INLINE_MAX` in total
  (the agent may run elsewhere); larger files are listed with `omitted` and a signed, expiring
  download `url` (media/links.py) instead of their bytes;
- claude_local / codex_local: named in the prompt (`prompt_section`);
- openai: images as `image_url` data-URL parts for vision models, small text files inlined
  into the message (`openai_content`).
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from .base import AttachmentFile, RunContext

HTTP_INLINE_MAX = 8 * 1024 * 1024
OPENAI_IMAGE_MAX = 5 * 1024 * 1024
OPENAI_TEXT_MAX = 64 * 1024
VISION_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
INLINE_TOO_LARGE = "too large to inline; ask the person for a smaller file"
INLINE_BY_URL = "too large to inline; GET `url` (no other credentials) before `url_expires_at`"


def _meta(a: AttachmentFile) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": a.id,
        "kind": a.kind,
        "name": a.name,
        "mime_type": a.mime_type,
        "size": a.size,
        "sha256": a.sha256,
    }
    if a.transcript:
        item["transcript"] = a.transcript
    if a.path is None:
        item["missing"] = a.reason or "not available"
    return item


def payload_items(ctx: RunContext, *, inline: bool) -> list[dict[str, Any]]:
    items = []
    budget = HTTP_INLINE_MAX
    for a in ctx.attachments:
        item = _meta(a)
        if a.path is not None and not inline:
            item["path"] = a.path
        elif a.path is not None:
            if a.size <= budget:
                item["data_base64"] = base64.b64encode(Path(a.path).read_bytes()).decode()
                budget -= a.size
            elif a.url is not None:
                item["omitted"] = INLINE_BY_URL
                item["url"], item["url_expires_at"] = a.url, a.url_expires_at
            else:
                item["omitted"] = INLINE_TOO_LARGE
        items.append(item)
    return items


def prompt_section(ctx: RunContext) -> str | None:
    from rudder import texts

    lines = [
        texts.MEDIA_PROMPT_LINE.format(path=a.path, mime_type=a.mime_type, size=a.size)
        for a in ctx.attachments
        if a.path is not None
    ]
    return texts.MEDIA_PROMPT_FILES.format(lines="\n".join(lines)) if lines else None


def _text_of(a: AttachmentFile) -> str | None:
    if a.path is None or a.size > OPENAI_TEXT_MAX:
        return None
    if not (a.mime_type.startswith("text/") or a.mime_type == "application/json"):
        return None
    try:
        return Path(a.path).read_text("utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def openai_content(ctx: RunContext, body: str) -> str | list[dict[str, Any]]:
    """The newest user message's `content`: plain text, or parts with its images."""
    if not ctx.attachments:
        return body
    text_parts = [body] if body else []
    images: list[dict[str, Any]] = []
    for a in ctx.attachments:
        inlined = _text_of(a)
        if inlined is not None:
            text_parts.append(f'<file name="{a.name}">\n{inlined}\n</file>')
        elif a.path is not None and a.mime_type in VISION_TYPES and a.size <= OPENAI_IMAGE_MAX:
            data = base64.b64encode(Path(a.path).read_bytes()).decode()
            images.append(
                {"type": "image_url", "image_url": {"url": f"data:{a.mime_type};base64,{data}"}}
            )
        elif a.path is not None:
            text_parts.append(f"(Attached file {a.name}, {a.mime_type}, {a.size} bytes: not shown)")
    text = "\n\n".join(text_parts)
    if not images:
        return text
    return [{"type": "text", "text": text}, *images]
