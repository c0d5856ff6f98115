"""Which resources a received Feishu message carries (receive-side `content` shapes).

image `{"image_key"}`; file `{"file_key","file_name"}`; audio `{"file_key","duration"}`; media
(video) `{"file_key","image_key"?,"file_name","duration"}` — the image key is its cover;
sticker `{"file_key"}`; post: `img` elements `{"image_key"}` and `media` elements
`{"file_key","image_key"?}` in its paragraphs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MEDIA_MESSAGE_TYPES = frozenset({"image", "file", "audio", "media", "sticker"})
KEY_MAX = 200


@dataclass(frozen=True, slots=True)
class ResourceRef:
    key: str
    download_type: str  # image | file (the `type` query parameter of the download)
    kind: str  # image | file | audio | media | sticker | cover
    name: str | None = None
    duration_ms: int | None = None


def _str(value: object) -> str | None:
    if isinstance(value, str) and 0 < len(value) <= KEY_MAX and value.isprintable():
        return value
    return None


def _duration(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def resources_of(message_type: str, content: dict[str, Any]) -> tuple[ResourceRef, ...]:
    found: list[ResourceRef] = []

    def add(key: object, download_type: str, kind: str, **extra: Any) -> None:
        value = _str(key)
        if value is not None and all(r.key != value for r in found):
            found.append(ResourceRef(value, download_type, kind, **extra))

    name = _str(content.get("file_name"))
    duration = _duration(content.get("duration"))
    if message_type == "image":
        add(content.get("image_key"), "image", "image")
    elif message_type == "file":
        add(content.get("file_key"), "file", "file", name=name)
    elif message_type == "audio":
        add(content.get("file_key"), "file", "audio", name=name, duration_ms=duration)
    elif message_type == "sticker":
        add(content.get("file_key"), "file", "sticker")
    elif message_type == "media":
        add(content.get("file_key"), "file", "media", name=name, duration_ms=duration)
        add(content.get("image_key"), "image", "cover")
    elif message_type == "post":
        for element in post_elements(content):
            if element.get("tag") == "img":
                add(element.get("image_key"), "image", "image")
            elif element.get("tag") == "media":
                add(element.get("file_key"), "file", "media", name=_str(element.get("file_name")))
                add(element.get("image_key"), "image", "cover")
    return tuple(found)


def post_elements(content: dict[str, Any]) -> list[dict[str, Any]]:
    """A post's elements, flat or wrapped in a locale (or in `{"post": {locale: …}}`)."""
    bodies: list[Any]
    if isinstance(content.get("content"), list):
        bodies = [content]
    else:
        wrapped = content.get("post")
        inner = wrapped if isinstance(wrapped, dict) else content
        bodies = list(inner.values())
    elements: list[dict[str, Any]] = []
    for body in bodies:
        paragraphs = body.get("content") if isinstance(body, dict) else None
        if not isinstance(paragraphs, list):
            continue
        for paragraph in paragraphs:
            if isinstance(paragraph, list):
                elements.extend(e for e in paragraph if isinstance(e, dict))
    return elements
