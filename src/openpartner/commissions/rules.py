"""Commission rules as pure functions: no I/O, integer minor units, every split through
:func:`openpartner.core.money.split`.

A rule set is one effective-dated version of a program's rules. For an event and a partner the
rule is the partner's override for the event type if there is one, else the program's rule for the
type; no rule means no commission.

- ``percent``: ``rate_bps`` basis points of the partner's attributed share of the event, in the
  event's currency.
- ``flat``: ``amount`` minor units of the rule's own ``currency`` per event, shared between the
  partners that earn under the same rule in proportion to their attribution weights.
- ``first``: only the customer's first event of the type earns; ``recurring``: every event of the
  type within ``max_months`` of the customer's first one (no limit when ``max_months`` is None).

Refunds shrink what a sale earns in proportion: a partner keeps
``gross * (sale - refunded) / sale``, rounded once by :func:`split`, so a full refund leaves
exactly zero and partial refunds never drift.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from typing import Any, Literal

from openpartner.core.money import split

BPS = 10_000
AMOUNTLESS_TYPES = frozenset({"lead", "signup"})
"""Lead rewards are flat: these events have no amount to take a percentage of."""

Kind = Literal["percent", "flat"]
Recurrence = Literal["first", "recurring"]


@dataclass(frozen=True, slots=True)
class Rule:
    event_type: str
    kind: Kind
    rate_bps: int | None = None
    amount: int | None = None
    currency: str | None = None
    recurrence: Recurrence = "recurring"
    max_months: int | None = None
    partner_id: str | None = None
    """Set for a per-partner override."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "event_type": self.event_type,
            "kind": self.kind,
            "rate_bps": self.rate_bps,
            "amount": self.amount,
            "currency": self.currency,
            "recurrence": self.recurrence,
            "max_months": self.max_months,
            "partner_id": self.partner_id,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Rule:
        return cls(
            event_type=data["event_type"],
            kind=data["kind"],
            rate_bps=data.get("rate_bps"),
            amount=data.get("amount"),
            currency=data.get("currency"),
            recurrence=data.get("recurrence") or "recurring",
            max_months=data.get("max_months"),
            partner_id=data.get("partner_id"),
        )


def rule_problems(rule: Rule) -> list[str]:
    """Why ``rule`` is not valid; empty when it is."""
    problems = []
    if rule.kind == "percent":
        if rule.rate_bps is None or not 0 <= rule.rate_bps <= BPS:
            problems.append("a percent rule needs rate_bps between 0 and 10000")
        if rule.amount is not None or rule.currency is not None:
            problems.append("a percent rule takes no amount or currency")
        if rule.event_type in AMOUNTLESS_TYPES:
            problems.append(f"{rule.event_type} rewards are flat")
    else:
        if rule.amount is None or rule.amount < 0 or rule.currency is None:
            problems.append("a flat rule needs a non-negative amount and a currency")
        if rule.rate_bps is not None:
            problems.append("a flat rule takes no rate_bps")
    if rule.recurrence == "first" and rule.max_months is not None:
        problems.append("max_months only applies to recurring rules")
    if rule.max_months is not None and rule.max_months < 1:
        problems.append("max_months must be at least 1")
    return problems


def duplicate_rules(rules: Sequence[Rule]) -> list[tuple[str, str | None]]:
    """(event type, partner) pairs that more than one rule claims."""
    seen: set[tuple[str, str | None]] = set()
    dupes = []
    for rule in rules:
        key = (rule.event_type, rule.partner_id)
        if key in seen:
            dupes.append(key)
        seen.add(key)
    return dupes


def select_rule(rules: Sequence[Rule], event_type: str, partner_id: str) -> Rule | None:
    default = None
    for rule in rules:
        if rule.event_type != event_type:
            continue
        if rule.partner_id == partner_id:
            return rule
        if rule.partner_id is None:
            default = rule
    return default


def add_months(at: datetime, months: int) -> datetime:
    """Calendar months later, clamped to the month's last day (Jan 31 + 1 month = Feb 28/29)."""
    index = at.month - 1 + months
    year, month = at.year + index // 12, index % 12 + 1
    day = min(at.day, calendar.monthrange(year, month)[1])
    return at.replace(year=year, month=month, day=day)


def eligible(rule: Rule, occurred_at: datetime, first_at: datetime | None) -> bool:
    """Whether an event at ``occurred_at`` earns under ``rule``, given when the customer's first
    event of the type happened (``None``: this event is the first)."""
    if first_at is None or first_at >= occurred_at:
        return True
    if rule.recurrence == "first":
        return False
    return rule.max_months is None or occurred_at < add_months(first_at, rule.max_months)


def percent_of(amount: int, rate_bps: int) -> int:
    """``rate_bps`` of ``amount``, rounded once by largest remainder."""
    if rate_bps == 0 or amount == 0:
        return 0
    if rate_bps == BPS:
        return amount
    return split(amount, {"rate": rate_bps, "rest": BPS - rate_bps}, {"rate": 0, "rest": 1})["rate"]


@dataclass(frozen=True, slots=True)
class Share:
    """A partner's attributed part of an event: the sum of its attribution rows."""

    amount: int
    weight: Fraction


@dataclass(frozen=True, slots=True)
class Earning:
    amount: int
    currency: str
    base_amount: int
    rule: Rule


def earnings(
    rules: Sequence[Rule],
    *,
    event_type: str,
    currency: str | None,
    occurred_at: datetime,
    first_at: datetime | None,
    shares: Mapping[str, Share],
) -> dict[str, Earning]:
    """What each partner earns for an event before refunds (partners earning nothing are
    left out)."""
    out: dict[str, Earning] = {}
    flat_groups: dict[Rule, dict[str, Share]] = {}
    for partner_id, share in sorted(shares.items()):
        rule = select_rule(rules, event_type, partner_id)
        if rule is None or not eligible(rule, occurred_at, first_at):
            continue
        if rule.kind == "flat":
            flat_groups.setdefault(rule, {})[partner_id] = share
        elif currency is not None and rule.rate_bps is not None:
            amount = percent_of(share.amount, rule.rate_bps)
            if amount > 0:
                out[partner_id] = Earning(amount, currency, share.amount, rule)
    for rule, group in flat_groups.items():
        assert rule.amount is not None and rule.currency is not None
        out.update(_flat(rule, rule.amount, rule.currency, group))
    return out


def _flat(rule: Rule, amount: int, currency: str, group: Mapping[str, Share]) -> dict[str, Earning]:
    """The flat amount shared by attribution weight; the weight of partners outside the group
    (other rules, or none) is kept by the merchant, so the group never earns more than
    ``amount`` and a partner with all the credit earns all of it."""
    weights: dict[str | None, Fraction] = {p: s.weight for p, s in group.items()}
    rest = Fraction(1) - sum(weights.values(), Fraction(0))
    weights[None] = max(rest, Fraction(0))
    if sum(weights.values(), Fraction(0)) <= 0 or amount == 0:
        return {}
    order = {p: (0, p or "") for p in weights}
    order[None] = (1, "")
    parts = split(amount, weights, order)
    return {
        p: Earning(parts[p], currency, share.amount, rule)
        for p, share in group.items()
        if parts[p] > 0
    }


def after_refunds(gross: int, sale_amount: int, refunded: int) -> int:
    """What remains of a commission of ``gross`` when ``refunded`` of ``sale_amount`` has been
    refunded: an exact proportional split, zero after a full refund."""
    if refunded <= 0 or gross == 0:
        return gross
    if sale_amount <= 0 or refunded >= sale_amount:
        return 0
    kept = split(
        gross,
        {"kept": sale_amount - refunded, "refunded": refunded},
        {"kept": 0, "refunded": 1},
    )
    return kept["kept"]
