"""Feishu CN and Lark Global: which hosts each product answers on.

Feishu and Lark are separate clouds: an app of one does not exist on the other, so choosing the
wrong product fails visibly instead of half-working.

With `RUDDER_FEISHU_BASE_URL` set (the sandbox, or a proxy), every call goes to that origin and
names the host it would have used in `X-Rudder-Original-Host`; the sandbox uses the header to
answer only for apps of the matching brand, exactly as the real clouds do. A link for a person's
browser cannot carry a header, so it names the host in its path: `<origin>/_hosts/<host>/...`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

ORIGINAL_HOST_HEADER = "X-Rudder-Original-Host"


class Region(StrEnum):
    FEISHU = "feishu"  # Feishu CN
    LARK = "lark"  # Lark Global

    @property
    def label(self) -> str:
        return "Feishu CN" if self is Region.FEISHU else "Lark Global"

    @property
    def suffix(self) -> str:
        return "feishu.cn" if self is Region.FEISHU else "larksuite.com"


class HostKind(StrEnum):
    OPEN = "open"  # OpenAPI, long-connection discovery, developer pages
    ACCOUNTS = "accounts"  # app registration (one-click create)
    APPLINK = "applink"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where to send a request for one host, and the headers that go with it."""

    base_url: str  # scheme://host[:port], no trailing slash
    headers: dict[str, str]
    public_base_url: str  # what a person's browser should open (the real host, or the override)

    def url(self, path: str) -> str:
        return self.base_url + path


def host(region: Region, kind: HostKind) -> str:
    return f"{kind.value}.{region.suffix}"


def endpoint(region: Region, kind: HostKind, base_url_override: str | None = None) -> Endpoint:
    real = f"https://{host(region, kind)}"
    if base_url_override:
        base = base_url_override.rstrip("/")
        named = host(region, kind)
        return Endpoint(base, {ORIGINAL_HOST_HEADER: named}, f"{base}/_hosts/{named}")
    return Endpoint(real, {}, real)


def parse_region(value: str) -> Region:
    try:
        return Region(value.strip().lower())
    except ValueError:
        raise ValueError(
            f"region must be 'feishu' (Feishu CN) or 'lark' (Lark Global), not {value!r}"
        ) from None
