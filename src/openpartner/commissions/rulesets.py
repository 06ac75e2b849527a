"""Effective-dated versions of a program's commission rules, and the holding period they carry."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from openpartner.accounts.scopes import Principal
from openpartner.commissions.models import CommissionRuleVersion
from openpartner.commissions.rules import Rule, duplicate_rules, rule_problems
from openpartner.commissions.schemas import RuleIn, RuleSetIn
from openpartner.core.errors import ValidationFailed
from openpartner.core.ids import new_id
from openpartner.core.money import normalize_currency, parse_amount
from openpartner.core.time import ensure_utc, utc_now
from openpartner.partners.models import Partner
from openpartner.programs.models import Program


def _rule(session: Session, program: Program, index: int, data: RuleIn) -> Rule:
    loc = ["body", "rules", str(index)]
    currency = None
    amount = None
    if data.kind == "flat":
        currency = normalize_currency(data.currency or program.currency)
        amount = (
            parse_amount(data.amount, currency, [*loc, "amount"])
            if data.amount is not None
            else None
        )
    elif data.amount is not None or data.currency is not None:
        currency, amount = data.currency or "", 0  # reported as a problem below
    if data.event_type == "refund":
        raise ValidationFailed(
            "Refunds earn nothing: they reverse the sale's commissions.",
            code="invalid_rule",
            errors=[{"loc": [*loc, "event_type"], "msg": "refund", "type": "invalid_rule"}],
        )
    if data.partner_id is not None:
        owner = session.scalar(sa.select(Partner.program_id).where(Partner.id == data.partner_id))
        if owner != program.id:
            raise ValidationFailed(
                f"Partner {data.partner_id} is not in this program.",
                code="unknown_partner",
                errors=[{"loc": [*loc, "partner_id"], "msg": "unknown", "type": "unknown_partner"}],
            )
    rule = Rule(
        event_type=data.event_type,
        kind=data.kind,
        rate_bps=data.rate_bps,
        amount=amount,
        currency=currency,
        recurrence=data.recurrence,
        max_months=data.max_months,
        partner_id=data.partner_id,
    )
    problems = rule_problems(rule)
    if problems:
        raise ValidationFailed(
            f"Rule {index}: {'; '.join(problems)}.",
            code="invalid_rule",
            errors=[{"loc": loc, "msg": p, "type": "invalid_rule"} for p in problems],
        )
    return rule


def create_version(
    session: Session, principal: Principal, program: Program, data: RuleSetIn
) -> CommissionRuleVersion:
    rules = [_rule(session, program, i, r) for i, r in enumerate(data.rules)]
    dupes = duplicate_rules(rules)
    if dupes:
        raise ValidationFailed(
            "Each event type has at most one rule per partner (and one default): "
            + ", ".join(f"{t}/{p or 'default'}" for t, p in dupes),
            code="duplicate_rule",
        )
    version = CommissionRuleVersion(
        id=new_id("rul"),
        program_id=program.id,
        effective_from=ensure_utc(data.effective_from) if data.effective_from else utc_now(),
        rules=[r.as_dict() for r in rules],
        holding_days=program.holding_days if data.holding_days is None else data.holding_days,
        created_by=principal.key_id,
    )
    session.add(version)
    session.flush()
    return version


def version_at(session: Session, program_id: str, at: datetime) -> CommissionRuleVersion | None:
    """The version in force at ``at``: the latest effective at or before it (ties: the newest)."""
    return session.scalar(
        sa.select(CommissionRuleVersion)
        .where(
            CommissionRuleVersion.program_id == program_id,
            CommissionRuleVersion.effective_from <= at,
        )
        .order_by(CommissionRuleVersion.effective_from.desc(), CommissionRuleVersion.seq.desc())
        .limit(1)
    )


def matures_at(version: CommissionRuleVersion, occurred_at: datetime) -> datetime:
    """When commissions on an event at ``occurred_at`` mature, under ``version`` (the one in
    force at that time): a function of the event and its rules only, never of when the
    commission was created, so every partner of an event matures at the same instant."""
    return occurred_at + timedelta(days=version.holding_days)
