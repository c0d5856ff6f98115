"""Request and response shapes of the JSON API (snake_case, a contract)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Budgets are 32-bit integers in the database: at most $20,000,000.00 a month.
MAX_BUDGET_CENTS = 2_000_000_000


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


SkillNames = list[Annotated[str, Field(min_length=1, max_length=64)]]


class AgentIn(Input):
    name: str = Field(min_length=1, max_length=200)
    runtime_type: str = Field(default="process", min_length=1, max_length=50)
    runtime_config: dict[str, Any] = Field(default_factory=dict)
    role: str = Field(default="general", max_length=100)
    title: str | None = Field(default=None, max_length=200)
    capabilities: str | None = Field(default=None, max_length=10_000)
    instructions: str | None = Field(default=None, max_length=100_000)
    skills: SkillNames = Field(default_factory=list, max_length=100)
    budget_monthly_cents: int = Field(default=0, ge=0, le=MAX_BUDGET_CENTS)
    budget_warn_percent: int = Field(default=80, ge=1, le=100)
    budget_hard_stop: bool = True


class AgentPatch(Input):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    runtime_type: str | None = Field(default=None, min_length=1, max_length=50)
    runtime_config: dict[str, Any] | None = None
    role: str | None = Field(default=None, max_length=100)
    title: str | None = Field(default=None, max_length=200)
    capabilities: str | None = Field(default=None, max_length=10_000)
    instructions: str | None = Field(default=None, max_length=100_000)
    skills: SkillNames | None = Field(default=None, max_length=100)
    budget_monthly_cents: int | None = Field(default=None, ge=0, le=MAX_BUDGET_CENTS)
    budget_warn_percent: int | None = Field(default=None, ge=1, le=100)
    budget_hard_stop: bool | None = None
    # Kept for compatibility; POST /agents/{id}/pause|resume|archive say more.
    status: Literal["active", "paused", "terminated"] | None = None
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
            "skills",
            "budget_monthly_cents",
            "budget_warn_percent",
            "budget_hard_stop",
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
    capabilities: str | None
    status: str
    pause_reason: str | None
    paused_at: datetime | None
    terminated_at: datetime | None
    runtime_type: str
    runtime_config: dict[str, Any]
    instructions: str | None
    skills: list[str]
    budget_monthly_cents: int
    budget_warn_percent: int
    budget_hard_stop: bool
    # This calendar month's spend (UTC), from the runs' own costs.
    spent_monthly_cents: int = 0
    is_example: bool
    rerun_interrupted: bool = True
    created_at: datetime


class PauseIn(Input):
    reason: Literal["manual", "system"] = "manual"


class RevisionOut(Model):
    rev: int
    actor: str
    source: str
    changed_keys: list[str]
    before_config: dict[str, Any]
    after_config: dict[str, Any]
    created_at: datetime


class ActivityOut(BaseModel):
    id: str
    created_at: datetime
    actor: str
    actor_name: str | None
    action: str
    entity_type: str
    entity_id: str | None
    agent_id: str | None
    details: dict[str, Any]


class OrgBudgetIn(Input):
    budget_monthly_cents: int | None = Field(default=None, ge=0, le=MAX_BUDGET_CENTS)
    budget_warn_percent: int | None = Field(default=None, ge=1, le=100)
    budget_hard_stop: bool | None = None


class OrgBudgetOut(BaseModel):
    budget_monthly_cents: int
    budget_warn_percent: int
    budget_hard_stop: bool
    spent_monthly_cents: int
    month: str


class IncidentOut(Model):
    id: str
    scope_type: str
    scope_id: str
    agent_id: str | None
    kind: str
    month: str
    amount_cents: int
    spent_cents: int
    status: str
    created_at: datetime
    resolved_at: datetime | None


class CostRowOut(BaseModel):
    month: str
    agent_id: str
    agent_name: str
    runs: int
    input_tokens: int
    output_tokens: int
    cost_cents: int


class CostsOut(BaseModel):
    months: list[str]
    rows: list[CostRowOut]
    total_cents_by_month: dict[str, int]


class ModelPriceIn(Input):
    input_usd_per_mtok: float = Field(ge=0, le=10_000)
    output_usd_per_mtok: float = Field(ge=0, le=10_000)
    cached_input_usd_per_mtok: float = Field(default=0.0, ge=0, le=10_000)


class ModelPriceOut(BaseModel):
    model: str
    input_usd_per_mtok: float
    output_usd_per_mtok: float
    cached_input_usd_per_mtok: float
    source: Literal["organization", "default"]


class SkillIn(Input):
    """A skill: either the whole `skill_md`, or `name` + `description` + `instructions`."""

    skill_md: str | None = Field(default=None, max_length=200_000)
    name: str | None = Field(default=None, max_length=64)
    description: str | None = Field(default=None, max_length=1024)
    instructions: str | None = Field(default=None, max_length=200_000)
    files: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_form(self) -> SkillIn:
        if self.skill_md is None and (self.name is None or self.description is None):
            raise ValueError("skill_md: give the SKILL.md text, or name and description")
        return self


class SkillOut(BaseModel):
    id: str
    name: str
    description: str
    skill_md: str
    files: list[str]
    updated_at: datetime | None
    agents: list[str]


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
    # The topic (thread) of the chat this conversation is bound to; None for the chat itself.
    external_thread_id: str | None = None
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
    # Images and files of the message (docs/media.md): id, direction, kind, name, mime_type,
    # size, sha256, status, reason, url (the bytes, behind the conversation's authorisation).
    attachments: list[dict[str, Any]] = []


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
    cost_usd: float | None = None
    skills: list[str] = []
    created_at: datetime
    # Hand-offs (docs/agent-teams.md): the run that handed the turn to this one, the chain's
    # first run, and the number of hand-offs that led here (0: a person's message).
    handed_from_run_id: str | None = None
    handoff_root_id: str | None = None
    handoff_hop: int = 0


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
