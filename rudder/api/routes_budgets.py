"""Budgets, costs, the model price table and the activity log of an organization."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import delete, select

from rudder import agent_control
from rudder.api.deps import ActorDep, ServicesDep, SessionDep, require_org
from rudder.api.schemas import (
    ActivityOut,
    CostsOut,
    IncidentOut,
    ModelPriceIn,
    ModelPriceOut,
    OrgBudgetIn,
    OrgBudgetOut,
    error_responses,
)
from rudder.db.models import ModelPrice, Organization
from rudder.domain import activity, agents, budgets, costs
from rudder.domain.errors import Invalid, NotFound

router = APIRouter()
ORG_BUDGET_ADMINS_ONLY = "only owners and admins can change the organization's budget"
PRICES_ADMINS_ONLY = "only owners and admins can change the model price table"


@router.get(
    "/orgs/{org_id}/activity", response_model=list[ActivityOut], responses=error_responses(404)
)
async def list_activity(
    org_id: str,
    actor: ActorDep,
    session: SessionDep,
    actor_filter: Annotated[
        str | None, Query(alias="actor", description="user:<id>, agent:<id>, an email, system")
    ] = None,
    agent: Annotated[str | None, Query(description="An agent's id")] = None,
    action: Annotated[
        str | None, Query(description="An action (agent.updated) or a prefix (agent.)")
    ] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=activity.MAX_LIMIT)] = 100,
) -> list[ActivityOut]:
    """Who changed what, newest first: names and ids, never secret values."""
    await require_org(session, actor, org_id)
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise Invalid(f"{name}: give a time zone (e.g. 2026-12-01T00:00:00Z)")
    rows = await activity.query(
        session,
        org_id,
        actor=actor_filter,
        agent_id=agent,
        action=action,
        since=since,
        until=until,
        limit=limit,
    )
    names = await activity.actor_names(session, rows)
    return [
        ActivityOut(
            id=r.id,
            created_at=r.created_at,
            actor=r.actor,
            actor_name=names.get(r.actor),
            action=r.action,
            entity_type=r.entity_type,
            entity_id=r.entity_id,
            agent_id=r.agent_id,
            details=r.details,
        )
        for r in rows
    ]


async def _org_budget(session: SessionDep, org: Organization) -> OrgBudgetOut:
    return OrgBudgetOut(
        budget_monthly_cents=org.budget_monthly_cents,
        budget_warn_percent=org.budget_warn_percent,
        budget_hard_stop=org.budget_hard_stop,
        spent_monthly_cents=await budgets.spent_cents(session, org.id),
        month=budgets.month_of(),
    )


async def _org(session: SessionDep, org_id: str) -> Organization:
    org = await session.get(Organization, org_id)
    if org is None:
        raise NotFound("organization not found")
    return org


@router.get("/orgs/{org_id}/budget", response_model=OrgBudgetOut, responses=error_responses(404))
async def get_org_budget(org_id: str, actor: ActorDep, session: SessionDep) -> OrgBudgetOut:
    await require_org(session, actor, org_id)
    return await _org_budget(session, await _org(session, org_id))


@router.patch(
    "/orgs/{org_id}/budget", response_model=OrgBudgetOut, responses=error_responses(403, 404, 422)
)
async def patch_org_budget(
    org_id: str, body: OrgBudgetIn, actor: ActorDep, session: SessionDep, services: ServicesDep
) -> OrgBudgetOut:
    await require_org(session, actor, org_id)
    await agents.require_runtime_admin(session, actor.label, org_id, ORG_BUDGET_ADMINS_ONLY)
    org = await _org(session, org_id)
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    for key, value in changes.items():
        setattr(org, key, value)
    activity.record(
        session,
        org_id=org_id,
        actor=actor.label,
        action="budget.updated",
        entity_type="org",
        entity_id=org_id,
        details={"fields": sorted(changes), **changes},
    )
    await session.commit()
    await agent_control.release_budgets(services, org_id, actor.label)
    return await _org_budget(session, org)


@router.get(
    "/orgs/{org_id}/budget-incidents",
    response_model=list[IncidentOut],
    responses=error_responses(404),
)
async def list_incidents(
    org_id: str,
    actor: ActorDep,
    session: SessionDep,
    include_resolved: bool = False,
) -> list[IncidentOut]:
    await require_org(session, actor, org_id)
    if include_resolved:
        rows = await costs.all_incidents(session, org_id)
    else:
        rows = await budgets.open_incidents(session, org_id)
    return [IncidentOut.model_validate(i) for i in rows]


@router.get("/orgs/{org_id}/costs", response_model=CostsOut, responses=error_responses(404))
async def get_costs(
    org_id: str,
    actor: ActorDep,
    session: SessionDep,
    months: Annotated[int, Query(ge=1, le=24)] = 6,
) -> CostsOut:
    """Spend per agent and per calendar month (UTC): cost, tokens and runs."""
    await require_org(session, actor, org_id)
    return CostsOut.model_validate(asdict(await costs.report(session, org_id, months)))


@router.get(
    "/orgs/{org_id}/model-prices",
    response_model=list[ModelPriceOut],
    responses=error_responses(404),
)
async def list_prices(org_id: str, actor: ActorDep, session: SessionDep) -> list[ModelPriceOut]:
    """The price table used for runs that report tokens but no cost (USD per million tokens)."""
    await require_org(session, actor, org_id)
    return [
        ModelPriceOut.model_validate(asdict(p)) for p in await costs.price_table(session, org_id)
    ]


@router.put(
    "/orgs/{org_id}/model-prices/{model}",
    response_model=ModelPriceOut,
    responses=error_responses(403, 404, 422),
)
async def put_price(
    org_id: str, model: str, body: ModelPriceIn, actor: ActorDep, session: SessionDep
) -> ModelPriceOut:
    await require_org(session, actor, org_id)
    await agents.require_runtime_admin(session, actor.label, org_id, PRICES_ADMINS_ONLY)
    model = model.strip()
    if not model or len(model) > 200:
        raise Invalid("model: 1 to 200 characters")
    row = await session.scalar(
        select(ModelPrice).where(ModelPrice.org_id == org_id, ModelPrice.model == model)
    )
    if row is None:
        row = ModelPrice(org_id=org_id, model=model, **body.model_dump())
        session.add(row)
    else:
        for key, value in body.model_dump().items():
            setattr(row, key, value)
    activity.record(
        session,
        org_id=org_id,
        actor=actor.label,
        action="model_price.updated",
        entity_type="model_price",
        details={"model": model, **body.model_dump()},
    )
    await session.commit()
    return ModelPriceOut(model=model, source="organization", **body.model_dump())


@router.delete(
    "/orgs/{org_id}/model-prices/{model}", status_code=204, responses=error_responses(403, 404)
)
async def delete_price(org_id: str, model: str, actor: ActorDep, session: SessionDep) -> None:
    await require_org(session, actor, org_id)
    await agents.require_runtime_admin(session, actor.label, org_id, PRICES_ADMINS_ONLY)
    result = await session.execute(
        delete(ModelPrice).where(ModelPrice.org_id == org_id, ModelPrice.model == model)
    )
    if not getattr(result, "rowcount", 0):
        raise NotFound(f"no price of the organization for {model!r}")
    activity.record(
        session,
        org_id=org_id,
        actor=actor.label,
        action="model_price.deleted",
        entity_type="model_price",
        details={"model": model},
    )
    await session.commit()
