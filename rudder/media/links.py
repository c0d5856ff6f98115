"""Download links for `http` agents: an attachment too large to inline, fetched by the agent.

An `http` agent may run on another machine, so a path means nothing to it, and inlining is
capped (8 MB per run). For the rest it gets a URL,
`<public URL>/api/runs/<run id>/attachments/<attachment id>?token=<expiry>.<signature>`,
that needs no other credential. The signature is HMAC-SHA256 over run id, attachment id and
expiry, keyed by a key derived from RUDDER_SECRETS_KEY (every instance and worker has it, so
any of them can check a link another made; links signed before a key rotation still verify
while the old key is configured). The route (api/routes_media.py) refuses a link that is
forged, expired, for another run or attachment, or whose run has finished; the attachment must
be a file of the message that run answers. Nothing is stored: a link is checked, not looked up.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from rudder.domain.secrets import SecretBox

URL_TTL_S = 3600  # at most an hour, and never past the end of the run
_PURPOSE = b"rudder/attachment-download-url/v1"


@dataclass(frozen=True, slots=True)
class Link:
    url: str
    expires_at: str  # ISO 8601, UTC


def _key(secret: bytes) -> bytes:
    return hmac.new(secret, _PURPOSE, hashlib.sha256).digest()


def _signature(secret: bytes, run_id: str, attachment_id: str, expires: int) -> str:
    message = f"{run_id}\n{attachment_id}\n{expires}".encode()
    digest = hmac.new(_key(secret), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def token(box: SecretBox, run_id: str, attachment_id: str, expires: int) -> str:
    return f"{expires}.{_signature(box.key, run_id, attachment_id, expires)}"


def link(
    box: SecretBox,
    public_url: str,
    run_id: str,
    attachment_id: str,
    *,
    ttl_s: int = URL_TTL_S,
    now: float | None = None,
) -> Link:
    expires = int(now if now is not None else time.time()) + ttl_s
    url = (
        f"{public_url.rstrip('/')}/api/runs/{run_id}/attachments/{attachment_id}"
        f"?token={token(box, run_id, attachment_id, expires)}"
    )
    when = datetime.fromtimestamp(expires, UTC).isoformat().replace("+00:00", "Z")
    return Link(url, when)


def valid(
    box: SecretBox, run_id: str, attachment_id: str, given: str, *, now: float | None = None
) -> bool:
    """Whether `given` is a live token for exactly this run and attachment."""
    expiry, dot, signature = given.partition(".")
    if not dot or not expiry.isdigit() or len(expiry) > 12 or not signature:
        return False
    expires = int(expiry)
    if expires <= (now if now is not None else time.time()):
        return False
    for secret in (box.key, *box.old_keys):
        wanted = _signature(secret, run_id, attachment_id, expires)
        if hmac.compare_digest(wanted.encode(), signature.encode("utf-8", "replace")):
            return True
    return False
