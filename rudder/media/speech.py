"""Voice transcripts: a voice message's PCM (media/voice.py) through Feishu's speech-to-text.

Called by routing after the message's resources were fetched (after the ack, outside any
transaction), before the message is posted, so the transcript is in the message the agent
reads and on the attachment. A transcript is a bonus, never a condition: whatever happens the
audio file is still handed over, and the message still reaches the agent.

Without the app's `speech_to_text:speech` permission Feishu answers 99991672. That is noted
once in the activity log (`media.speech_denied`; the Integrations tab shows it with the
permission to add) and the call is not repeated for every voice message: for ten minutes this
process skips it, then asks again (permissions get added). The first transcript after a denial
logs `media.speech_allowed`, which clears the tab's notice.
"""

from __future__ import annotations

import logging
import time

from sqlalchemy import select

from rudder import texts
from rudder.db.models import ActivityLog, Integration
from rudder.domain import activity
from rudder.feishu import speech as feishu_speech
from rudder.feishu.client import BotClient
from rudder.feishu.errors import PERMISSION_DENIED, FeishuError
from rudder.media.inbound import Fetched
from rudder.services import Services

log = logging.getLogger(__name__)

RETRY_DENIED_S = 600.0
DENIED = "media.speech_denied"
ALLOWED = "media.speech_allowed"
_denied_at: dict[str, float] = {}  # integration id → when Feishu last said "no permission"


def should_try(integration_id: str) -> bool:
    """False while a recent denial stands (then voice is neither decoded nor sent)."""
    since = _denied_at.get(integration_id)
    return since is None or time.monotonic() - since >= RETRY_DENIED_S


async def transcribe(
    services: Services, integration: Integration, bot: BotClient, fetched: list[Fetched]
) -> None:
    """Fill in `transcript` or `transcript_note` of each decoded voice message."""
    denied = allowed = False
    for f in fetched:
        pcm, f.pcm = f.pcm, None
        if pcm is None:
            skipped = f.stored and f.ref.kind == "audio" and f.transcript_note is None
            if skipped and not should_try(integration.id):
                f.transcript_note = texts.MEDIA_SPEECH_NO_PERMISSION
            continue
        if denied:
            f.transcript_note = texts.MEDIA_SPEECH_NO_PERMISSION
            continue
        try:
            text = await feishu_speech.recognize(bot, pcm)
        except FeishuError as exc:
            if exc.code == PERMISSION_DENIED:
                denied = True
                f.transcript_note = texts.MEDIA_SPEECH_NO_PERMISSION
                continue
            log.info("speech-to-text for %s failed: %s", f.ref.key, exc)
            detail = f"code {exc.code}" if exc.code != -1 else "no answer from Feishu"
            f.transcript_note = texts.MEDIA_SPEECH_FAILED.format(detail=detail)
            continue
        allowed = True
        if text:
            f.transcript = text
        else:
            f.transcript_note = texts.MEDIA_SPEECH_EMPTY
    if denied:
        _denied_at[integration.id] = time.monotonic()
        log.warning(
            "bot %s lacks the %s permission: voice messages are not transcribed",
            integration.app_id,
            feishu_speech.SCOPE,
        )
        await _note(services, integration, DENIED)
    elif allowed:
        _denied_at.pop(integration.id, None)
        await _note(services, integration, ALLOWED)


async def _last(services: Services, integration: Integration) -> str | None:
    async with services.sessions() as session:
        found = await session.scalar(
            select(ActivityLog.action)
            .where(
                ActivityLog.agent_id == integration.agent_id,
                ActivityLog.entity_id == integration.id,
                ActivityLog.action.in_((DENIED, ALLOWED)),
            )
            .order_by(ActivityLog.created_at.desc(), ActivityLog.id.desc())
            .limit(1)
        )
    return found


async def _note(services: Services, integration: Integration, action: str) -> None:
    """Log a change of the permission's state, once: not again while it stays the same (and
    nothing at all for a bot that always had it)."""
    last = await _last(services, integration)
    if last == action or (action == ALLOWED and last is None):
        return
    async with services.sessions() as session, session.begin():
        activity.record(
            session,
            org_id=integration.org_id,
            actor="system",
            action=action,
            entity_type="integration",
            entity_id=integration.id,
            details={"scope": feishu_speech.SCOPE, "app_id": integration.app_id},
            agent_id=integration.agent_id,
        )


async def missing_scope(services: Services, integration: Integration) -> str | None:
    """The permission to add, when the last word from Feishu was a denial (the tab's notice)."""
    return feishu_speech.SCOPE if await _last(services, integration) == DENIED else None
