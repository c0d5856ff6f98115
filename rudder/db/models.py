"""Every table, importable from one place."""

from rudder.db.base import Base, new_id, utcnow
from rudder.db.models_budgets import BudgetIncident, ModelPrice, Skill
from rudder.db.models_chat import Conversation, Message, Run, RunEventRow
from rudder.db.models_core import (
    ActivityLog,
    Agent,
    AgentConfigRevision,
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
from rudder.db.models_media import Attachment, BlobChunk
from rudder.db.models_policy import ChatPolicy, GroupContext
from rudder.db.models_reads import ConversationRead

__all__ = [
    "ActivityLog",
    "Agent",
    "AgentConfigRevision",
    "ApiToken",
    "Attachment",
    "Base",
    "BindingCode",
    "BlobChunk",
    "BotLease",
    "BudgetIncident",
    "ChatBinding",
    "ChatPolicy",
    "Conversation",
    "ConversationRead",
    "FeishuUserBinding",
    "GroupContext",
    "InboundEvent",
    "Instance",
    "Integration",
    "Membership",
    "Message",
    "ModelPrice",
    "Organization",
    "OutboxItem",
    "Run",
    "RunEventRow",
    "Secret",
    "SetupSession",
    "Skill",
    "User",
    "new_id",
    "utcnow",
]
