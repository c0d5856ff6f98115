"""A file's MIME type from its first bytes (never from its name or what the sender claimed)."""

from __future__ import annotations

HEAD_BYTES = 512

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
    (b"BM", "image/bmp"),
    (b"\x00\x00\x01\x00", "image/x-icon"),
    (b"%PDF-", "application/pdf"),
    (b"PK\x03\x04", "application/zip"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "application/x-ole-storage"),  # doc, xls, ppt
    (b"\x1f\x8b", "application/gzip"),
    (b"ID3", "audio/mpeg"),
    (b"#!AMR", "audio/amr"),
    (b"fLaC", "audio/flac"),
    (b"\x1aE\xdf\xa3", "video/webm"),
)
IMAGE_TYPES = frozenset(
    {
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "image/tiff",
        "image/bmp",
        "image/x-icon",
    }
)
# Shown inline in the web conversation; anything else is a download. Never HTML or SVG inline.
INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp"})
# The image types vision models take as data URLs.
VISION_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
OCTET = "application/octet-stream"


def sniff(head: bytes) -> str:
    """The MIME type of content starting with `head` (its first HEAD_BYTES, or all of it)."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio/wav"
    if head[:4] == b"OggS":
        return "audio/ogg" if b"OpusHead" in head[:80] or b"vorbis" in head[:80] else "video/ogg"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        return "audio/mp4" if brand in (b"M4A ", b"M4B ") else "video/mp4"
    for magic, mime in _MAGIC:
        if head.startswith(magic):
            return mime
    if head and _is_text(head):
        return "text/plain"
    return OCTET


def _is_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    # The head may end in the middle of a multi-byte character.
    for cut in range(4):
        try:
            head[: len(head) - cut].decode("utf-8")
            return True
        except UnicodeDecodeError:
            continue
    return False


def is_image(mime: str) -> bool:
    return mime in IMAGE_TYPES


def file_type_for(mime: str, name: str) -> str:
    """Feishu's `file_type` for an upload (file.create): opus, mp4, pdf, doc, xls, ppt or stream."""
    lower = name.lower()
    if mime == "audio/ogg" or lower.endswith(".opus"):
        return "opus"
    if mime == "video/mp4":
        return "mp4"
    if mime == "application/pdf":
        return "pdf"
    for ext, file_type in ((".doc", "doc"), (".xls", "xls"), (".ppt", "ppt")):
        if lower.endswith(ext) or lower.endswith(ext + "x"):
            return file_type
    return "stream"
