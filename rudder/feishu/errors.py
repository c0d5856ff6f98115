"""Errors from the Feishu / Lark Open Platform, classified by what a caller should do."""

from __future__ import annotations

# Token invalid or expired: mint a new tenant token and retry once (reference §3.5).
TOKEN_INVALID_CODES = frozenset({99991663, 99991664, 99991665, 99991666, 99991668})
MISSING_TOKEN = 99991661
APP_CREDENTIALS_INVALID = 10014  # "app secret invalid" / "app id not exists"
RATE_LIMITED_API = 99991400  # HTTP 429, honour x-ogw-ratelimit-reset
RATE_LIMITED_TARGET = 230020  # 5 QPS per chat / user; retryable
MESSAGE_RECALLED = 230011
TOO_LONG = 230025
EDIT_LIMIT = 230072
CARD_SEQUENCE = 300317
PERMISSION_DENIED = 99991672
COMMAND_EXISTS = 40000000
BOT_NOT_IN_CHAT = 230002  # im.v1.chat.get (and the history API) by a bot that is not a member


class FeishuError(Exception):
    """A non-zero `code` (or a transport failure) from Feishu/Lark."""

    def __init__(
        self,
        code: int,
        msg: str,
        *,
        http_status: int | None = None,
        retry_after_s: float | None = None,
        path: str = "",
    ) -> None:
        super().__init__(
            f"{msg} (code {code}{', HTTP ' + str(http_status) if http_status else ''})"
        )
        self.code = code
        self.msg = msg
        self.http_status = http_status
        self.retry_after_s = retry_after_s
        self.path = path

    @property
    def token_invalid(self) -> bool:
        return self.code in TOKEN_INVALID_CODES

    @property
    def retryable(self) -> bool:
        if self.code in (RATE_LIMITED_API, RATE_LIMITED_TARGET, -1):
            return True
        return self.http_status is not None and self.http_status >= 500


class FeishuTransportError(FeishuError):
    """The request never got a Feishu answer (timeout, refused connection, non-JSON reply)."""

    def __init__(self, msg: str, *, path: str = "") -> None:
        super().__init__(-1, msg, path=path)


class FeishuUnreachable(FeishuTransportError):
    """No connection to the Feishu/Lark host at all (name lookup, refused, timed out, proxy)."""
