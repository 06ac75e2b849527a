"""Exact sums of money in SQL, on both databases, whatever their size.

Amounts are BIGINT, and a sum of them need not fit one: SQLite's ``SUM`` raises "integer
overflow" past 2^63 - 1 (``TOTAL`` would round, as a float), while PostgreSQL's ``SUM(bigint)``
is already an exact numeric. So every sum of money sums the two 32-bit halves of each amount
apart, ``SUM(amount >> 32)`` and ``SUM(amount & 0xFFFFFFFF)`` (an arithmetic shift on both
databases, so negative amounts split too), and :func:`combine` joins them in Python:
``high * 2^32 + low`` is exactly the sum. Each half of an amount is below 2^32 in magnitude, so
neither half's sum can overflow before 2^31 rows in one group. The same SQL runs on both
databases, so both are tested alike.

    rows = session.execute(sa.select(Event.currency, *money_sum(Event.amount)).group_by(...))
    totals = {currency: combine(high, low) for currency, high, low in rows}
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

_SHIFT = 32
_LOW_MASK = 0xFFFFFFFF


def money_sum(column: Any) -> tuple[sa.ColumnElement[Any], sa.ColumnElement[Any]]:
    """The two aggregate columns whose :func:`combine` is ``SUM(column)``, exactly."""
    return (
        sa.func.sum(column.op(">>")(sa.literal_column(str(_SHIFT)))),
        sa.func.sum(column.op("&")(sa.literal_column(str(_LOW_MASK)))),
    )


def money_sum_sql(expression: str) -> str:
    """:func:`money_sum` for SQL written as text: two comma-separated aggregates."""
    return f"sum(({expression}) >> {_SHIFT}), sum(({expression}) & {_LOW_MASK})"


def combine(high: Any, low: Any) -> int:
    """``SUM`` from its halves' sums (None, the sum of no rows, counts as 0)."""
    return (int(high or 0) << _SHIFT) + int(low or 0)


def is_nonzero(high: sa.ColumnElement[Any], low: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
    """SQL: the combined sum is not zero (for ``HAVING``). Exact on both databases: when the
    sum is zero, ``high * 2^32 = -low`` fits 64 bits; when it does not fit, SQLite carries on
    in floating point, which is never exactly zero there."""
    return high * sa.literal_column(str(1 << _SHIFT)) + low != 0
