"""Request and response shapes of the JSON API (snake_case, a contract)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Model(BaseModel):
    model_config = ConfigDict(from_attributes=True)


def _reject_nul(value: Any) -> None:
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("must not contain NUL characters")
    elif isinstance(value, dict):
        for key, item in value.items():
            _reject_nul(key)
            _reject_nul(item)
    elif isinstance(value, list):
        for item in value:
            _reject_nul(item)


class TextInput(BaseModel):
    """A request body whose text ends up in the database.

    PostgreSQL cannot store U+0000 in text or jsonb, so a NUL would fail at the INSERT (a 500);
    it is refused here as invalid input on both databases alike.
    """

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        _reject_nul(value)
        return value


class Input(TextInput):
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
    # Run a reply again once when a crash of Rudder interrupted it (off for side effects).
    rerun_interrupted: bool | None = None

    @model_validator(mode="after")
    def _no_null_for_required_columns(self) -> AgentPatch:
        # Leaving a field out keeps its value; null would clear a column that must have one.
        for name in (
            "name",
            "runtime_type",
            "runtime_config",
            "role",
            "status",
            "rerun_interrupted",
        ):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name}: must not be null (leave it out to keep it)")
        return self


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
    rerun_interrupted: bool = True
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


class FieldErrorOut(BaseModel):
    field: str
    message: str


class ErrorOut(BaseModel):
    """Every error body (`rudder.api.errors`); `fields` only on 422 validation errors."""

    error: str
    detail: str
    fields: list[FieldErrorOut] | None = None


_ERROR_TEXT = {
    400: "Malformed request",
    401: "No valid session or API token",
    403: "Not allowed for this member or token",
    404: "Unknown id, or one of another organization",
    409: "Conflicts with the current state",
    422: "Invalid input",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries for the error statuses a route can answer."""
    return {s: {"model": ErrorOut, "description": _ERROR_TEXT[s]} for s in statuses}
