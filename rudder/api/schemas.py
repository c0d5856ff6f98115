"""Request and response shapes of the JSON API (snake_case, a contract)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Model(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HealthOut(BaseModel):
    status: Literal["ok"]
    version: str
    database: str


class OrgIn(Input):
    name: str = Field(min_length=1, max_length=200)


class OrgOut(Model):
    id: str
    name: str
    slug: str
    created_at: datetime


class MemberIn(Input):
    email: str = Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    name: str = Field(min_length=1, max_length=200)
    role: Literal["owner", "admin", "member"] = "member"


class MemberOut(BaseModel):
    id: str
    user_id: str
    email: str
    name: str
    role: str
    status: str


class AgentIn(Input):
    name: str = Field(min_length=1, max_length=200)
    runtime_type: str = Field(default="process", min_length=1, max_length=50)
    runtime_config: dict[str, Any] = Field(default_factory=dict)
    role: str = Field(default="general", max_length=100)
    title: str | None = Field(default=None, max_length=200)
    instructions: str | None = Field(default=None, max_length=100_000)


class AgentPatch(Input):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    runtime_type: str | None = Field(default=None, min_length=1, max_length=50)
    runtime_config: dict[str, Any] | None = None
    role: str | None = Field(default=None, max_length=100)
    title: str | None = Field(default=None, max_length=200)
    instructions: str | None = Field(default=None, max_length=100_000)
    status: Literal["active", "paused"] | None = None


class AgentOut(Model):
    id: str
    org_id: str
    name: str
    role: str
    title: str | None
    status: str
    runtime_type: str
    runtime_config: dict[str, Any]
    instructions: str | None
    is_example: bool
    created_at: datetime


class ConversationIn(Input):
    agent_id: str = Field(min_length=1, max_length=64)
    title: str | None = Field(default=None, max_length=300)


class ConversationOut(Model):
    id: str
    org_id: str
    agent_id: str
    title: str
    status: str
    source: str
    bound: bool
    integration_id: str | None
    region: str | None
    external_chat_id: str | None
    external_chat_type: str | None
    external_chat_name: str | None
    forked_from_conversation_id: str | None
    forked_from_message_id: str | None
    last_message_at: datetime | None
    created_at: datetime


class MessageIn(Input):
    body: str = Field(min_length=1, max_length=100_000)


class MessageOut(Model):
    id: str
    conversation_id: str
    seq: int
    role: str
    body: str
    status: str
    author_user_id: str | None
    author_agent_id: str | None
    external_sender_id: str | None
    external_message_id: str | None
    run_id: str | None
    error: str | None
    created_at: datetime


class ForkIn(Input):
    message_id: str | None = Field(default=None, max_length=64)


class RunOut(Model):
    id: str
    agent_id: str
    conversation_id: str
    trigger_message_id: str | None
    reply_message_id: str | None
    source: str
    status: str
    cancel_requested_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    usage: dict[str, Any]
    created_at: datetime


class RunEventOut(Model):
    seq: int
    kind: str
    payload: dict[str, Any]
    created_at: datetime


class StopOut(BaseModel):
    stopped: int
    run_ids: list[str]
    detail: str


class SecretIn(Input):
    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.\-]+$")
    value: str = Field(min_length=1, max_length=100_000)


class SecretOut(BaseModel):
    id: str
    name: str
    updated_at: datetime | None
