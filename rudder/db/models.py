"""Every table, importable from one place."""

from rudder.db.base import Base, new_id, utcnow
from rudder.db.models_chat import Conversation, Message, Run, RunEventRow
from rudder.db.models_core import (
    ActivityLog,
    Agent,
    ApiToken,
    Membership,
    Organization,
    Secret,
    User,
)
from rudder.db.models_feishu import (
    BindingCode,
    BotLease,
    ChatBinding,
    FeishuUserBinding,
    InboundEvent,
    Instance,
    Integration,
    OutboxItem,
    SetupSession,
)
from rudder.db.models_reads import ConversationRead

__all__ = [
    "ActivityLog",
    "Agent",
    "ApiToken",
    "Base",
    "BindingCode",
    "BotLease",
    "ChatBinding",
    "Conversation",
    "ConversationRead",
    "FeishuUserBinding",
    "InboundEvent",
    "Instance",
    "Integration",
    "Membership",
    "Message",
    "Organization",
    "OutboxItem",
    "Run",
    "RunEventRow",
    "Secret",
    "SetupSession",
    "User",
    "new_id",
    "utcnow",
]
