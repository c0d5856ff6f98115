"""An agent's status and every transition between statuses, in one place.

    active ──pause(reason)──▶ paused ──resume──▶ active
       │                        │
       └──────archive───────────┴──────▶ terminated (final: no runs, bot disconnected,
                                                      history kept)

A paused agent may be paused again with another reason (a manual pause of an agent the budget
paused becomes manual, so raising the budget does not resume it behind the admin's back).
"""

from __future__ import annotations

from enum import StrEnum

from rudder.db.models import Agent, utcnow
from rudder.domain.errors import Conflict, Invalid


class AgentStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    TERMINATED = "terminated"


class PauseReason(StrEnum):
    MANUAL = "manual"
    BUDGET = "budget"
    SYSTEM = "system"


TRANSITIONS: dict[AgentStatus, frozenset[AgentStatus]] = {
    AgentStatus.ACTIVE: frozenset({AgentStatus.PAUSED, AgentStatus.TERMINATED}),
    AgentStatus.PAUSED: frozenset({AgentStatus.ACTIVE, AgentStatus.PAUSED, AgentStatus.TERMINATED}),
    AgentStatus.TERMINATED: frozenset(),
}


def parse_status(value: str) -> AgentStatus:
    try:
        return AgentStatus(value)
    except ValueError:
        raise Invalid(f"status: must be one of {', '.join(s.value for s in AgentStatus)}") from None


def parse_reason(value: str | None) -> PauseReason:
    if value is None:
        return PauseReason.MANUAL
    try:
        return PauseReason(value)
    except ValueError:
        raise Invalid(
            f"pause_reason: must be one of {', '.join(r.value for r in PauseReason)}"
        ) from None


def can_run(agent: Agent) -> bool:
    return agent.status == AgentStatus.ACTIVE


def transition(agent: Agent, to: AgentStatus, reason: PauseReason | None = None) -> bool:
    """Move `agent` to `to`; False when it is already there (nothing changed).

    Raises Conflict for a transition the table does not allow (anything out of terminated).
    """
    current = parse_status(agent.status)
    if current == to and (to != AgentStatus.PAUSED or agent.pause_reason == (reason or "manual")):
        return False
    if to not in TRANSITIONS[current]:
        raise Conflict(f"the agent is {current.value}; it cannot become {to.value}")
    agent.status = to.value
    if to == AgentStatus.PAUSED:
        agent.pause_reason = (reason or PauseReason.MANUAL).value
        agent.paused_at = agent.paused_at or utcnow()
    else:
        agent.pause_reason = None
        agent.paused_at = None
    if to == AgentStatus.TERMINATED:
        agent.terminated_at = utcnow()
    return True
