"""The payout models: how credit for one conversion is shared among its eligible touches.

A model is a small immutable value (its name plus typed parameters). ``weights`` gets the eligible
touches already in order (time, ingest sequence, id) and returns one exact ``Fraction`` per touch,
summing to exactly 1. The engine (``engine.py``) calls it only with two or more touches: a single
eligible touch always earns 100 % under every model.

    ModelSpec
    ├── LastClick      "last_click"     the last touch earns everything (the default)
    ├── FirstClick     "first_click"    the first touch earns everything
    ├── Linear         "linear"         equal per touch
    ├── PartnerEqual   "partner_equal"  equal per distinct partner (the simplified Shapley value)
    ├── Position       "position"       first / middle / last weights, default 40 / 20 / 40
    ├── TimeDecay      "time_decay"     2^(-age / half-life), half-life default 7 days
    └── RoleBased      "role_based"     weights per touchpoint role, normalised over those present

``parse_model(name, params)`` turns the stored or requested form into a model (a name of
:data:`MODEL_ALIASES` gives its canonical model) and refuses bad input with
``ValidationFailed(code="invalid_model")`` or ``code="invalid_model_params"``;
``params_for_storage()`` gives the canonical, JSON-able parameters back, so
``parse_model(m.name, m.params_for_storage()) == m``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import (
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
)
from fractions import Fraction
from typing import Any, ClassVar, Final

from openpartner.attribution.inputs import OTHER_ROLE, Touch
from openpartner.core.errors import ValidationFailed

DEFAULT_MODEL: Final = "last_click"
DEFAULT_HALF_LIFE_SECONDS: Final = 7 * 24 * 3600
DEFAULT_ROLE_WEIGHTS: Final[Mapping[str, int]] = {
    "closer": 35,
    "referral": 25,
    "demo": 15,
    "intro": 15,
    "support": 10,
    OTHER_ROLE: 5,
}
MAX_ROLE_LENGTH: Final = 64

# time_decay runs in this context and nowhere else, so its result never depends on the caller's
# decimal settings. Every step (divide, multiply, exp) is a correctly rounded operation of the
# General Decimal Arithmetic specification at 50 digits, so the weights are identical on every
# platform. Only the fraction of a half-life goes through it (a value in (1/2, 1]); whole
# half-lives are exact powers of two.
DECAY_CONTEXT: Final = Context(
    prec=50, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation, DivisionByZero, Overflow]
)
MAX_HALF_LIVES: Final = 200
"""A touch this many half-lives older than the newest one weighs 0: its exact share is below
2^-200 (~6e-61) of the amount, i.e. no unit of any real amount, and its weight would otherwise
carry a needlessly huge denominator."""
_LN2: Final = DECAY_CONTEXT.ln(Decimal(2))
_MICROSECOND: Final = timedelta(microseconds=1)


def _invalid(detail: str, key: str | None = None) -> ValidationFailed:
    loc = ["params", key] if key else ["params"]
    return ValidationFailed(
        detail,
        code="invalid_model_params",
        errors=[{"loc": loc, "msg": detail, "type": "invalid_model_params"}],
    )


def _weight(value: Any, key: str, *, minimum: int) -> int:
    # bool is an int subclass and floats are inexact: both are refused, never coerced.
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(f"{key} must be an integer.", key)
    if value < minimum:
        raise _invalid(f"{key} must be at least {minimum}.", key)
    return value


def _normalise(raw: Sequence[Fraction | int]) -> list[Fraction]:
    total = sum(raw, Fraction(0))
    return [Fraction(w) / total for w in raw]


class ModelSpec:
    """A payout model with its parameters. Subclasses are frozen dataclasses."""

    __slots__ = ()
    name: ClassVar[str]
    accepted: ClassVar[frozenset[str]] = frozenset()
    """Parameter names the model accepts; anything else is refused."""

    def weights(self, touches: Sequence[Touch], at: datetime) -> list[Fraction]:
        """Exact weight of each touch (in the given order), summing to 1; needs >= 2 touches."""
        raise NotImplementedError

    def params_for_storage(self) -> dict[str, Any]:
        """Canonical JSON-able parameters, defaults filled in, so a stored row is explicit."""
        return {}

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> ModelSpec:
        return cls()


@dataclass(frozen=True, slots=True)
class LastClick(ModelSpec):
    name: ClassVar[str] = "last_click"

    def weights(self, touches: Sequence[Touch], at: datetime) -> list[Fraction]:
        return [Fraction(0)] * (len(touches) - 1) + [Fraction(1)]


@dataclass(frozen=True, slots=True)
class FirstClick(ModelSpec):
    name: ClassVar[str] = "first_click"

    def weights(self, touches: Sequence[Touch], at: datetime) -> list[Fraction]:
        return [Fraction(1)] + [Fraction(0)] * (len(touches) - 1)


@dataclass(frozen=True, slots=True)
class Linear(ModelSpec):
    name: ClassVar[str] = "linear"

    def weights(self, touches: Sequence[Touch], at: datetime) -> list[Fraction]:
        return [Fraction(1, len(touches))] * len(touches)


@dataclass(frozen=True, slots=True)
class PartnerEqual(ModelSpec):
    """Each distinct partner earns 1/k; a partner's share is spread evenly over its touches.

    This is the exact Shapley value of the game "the sale happens when every partner present
    takes part", which is why it is called the simplified Shapley value.
    """

    name: ClassVar[str] = "partner_equal"

    def weights(self, touches: Sequence[Touch], at: datetime) -> list[Fraction]:
        counts: dict[str, int] = {}
        for touch in touches:
            counts[touch.partner_id] = counts.get(touch.partner_id, 0) + 1
        partners = len(counts)
        return [Fraction(1, partners * counts[t.partner_id]) for t in touches]


@dataclass(frozen=True, slots=True)
class Position(ModelSpec):
    """First and last touches earn ``first`` and ``last``; the touches between share ``middle``.

    Weights are relative integers (normalised). Two touches: ``first/(first+last)`` and
    ``last/(first+last)``. ``middle`` may be 0; ``first + last`` must be positive.
    """

    name: ClassVar[str] = "position"
    accepted: ClassVar[frozenset[str]] = frozenset({"first", "middle", "last"})
    first: int = 40
    middle: int = 20
    last: int = 40

    def __post_init__(self) -> None:
        for key in ("first", "middle", "last"):
            _weight(getattr(self, key), key, minimum=0)
        if self.first + self.last <= 0:
            raise _invalid("first + last must be positive (two touches share only them).")

    def weights(self, touches: Sequence[Touch], at: datetime) -> list[Fraction]:
        n = len(touches)
        if n == 2:
            return _normalise([self.first, self.last])
        total = self.first + self.middle + self.last
        middle = [Fraction(self.middle, total * (n - 2))] * (n - 2)
        return [Fraction(self.first, total), *middle, Fraction(self.last, total)]

    def params_for_storage(self) -> dict[str, Any]:
        return {"first": self.first, "middle": self.middle, "last": self.last}

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> ModelSpec:
        return cls(**params)


@dataclass(frozen=True, slots=True)
class TimeDecay(ModelSpec):
    """Weight ``2^(-age / half_life)``, age in seconds before the conversion.

    Touches inside the clock-skew grace after the conversion count as age 0. Ages are taken
    relative to the newest eligible touch, whose weight is then exactly 1: after normalising this
    gives the same shares as ages from the conversion, and the total is never 0. Whole half-lives
    are exact (one half-life older weighs exactly 1/2); the rest of a half-life goes through
    ``DECAY_CONTEXT``.
    """

    name: ClassVar[str] = "time_decay"
    accepted: ClassVar[frozenset[str]] = frozenset({"half_life_seconds"})
    half_life_seconds: int = DEFAULT_HALF_LIFE_SECONDS

    def __post_init__(self) -> None:
        _weight(self.half_life_seconds, "half_life_seconds", minimum=1)

    def weights(self, touches: Sequence[Touch], at: datetime) -> list[Fraction]:
        ages = [max(0, (at - t.at) // _MICROSECOND) for t in touches]
        newest = min(ages)
        half_life = self.half_life_seconds * 1_000_000
        ctx = DECAY_CONTEXT
        raw: list[Fraction] = []
        for age in ages:
            halvings, rest = divmod(age - newest, half_life)
            if halvings >= MAX_HALF_LIVES:
                raw.append(Fraction(0))
                continue
            weight = Fraction(1, 1 << halvings)
            if rest:
                # 2^(-rest/half_life) = exp(-ln 2 * rest / half_life)
                exponent = ctx.multiply(ctx.divide(Decimal(-rest), Decimal(half_life)), _LN2)
                weight *= Fraction(ctx.exp(exponent))
            raw.append(weight)
        return _normalise(raw)

    def params_for_storage(self) -> dict[str, Any]:
        return {"half_life_seconds": self.half_life_seconds}

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> ModelSpec:
        return cls(**params)


@dataclass(frozen=True, slots=True)
class RoleBased(ModelSpec):
    """Each touch weighs its role's weight (``other`` for no role or an unknown one).

    ``weights`` is the full table as sorted ``(role, weight)`` pairs; ``parse_model`` merges a
    partial table over the defaults. Weights are positive integers, normalised over the touches
    present: closer 35 + referral 25 gives 35/60 and 25/60.
    """

    name: ClassVar[str] = "role_based"
    accepted: ClassVar[frozenset[str]] = frozenset({"weights"})
    weights_by_role: tuple[tuple[str, int], ...] = tuple(sorted(DEFAULT_ROLE_WEIGHTS.items()))
    _lookup: dict[str, int] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        table = dict(self.weights_by_role)
        if len(table) != len(self.weights_by_role):
            raise _invalid("A role appears twice.", "weights")
        for role, weight in table.items():
            if not isinstance(role, str) or not role or len(role) > MAX_ROLE_LENGTH:
                raise _invalid(f"Role {role!r} must be 1-{MAX_ROLE_LENGTH} characters.", "weights")
            _weight(weight, f"weights.{role}", minimum=1)
        if OTHER_ROLE not in table:
            raise _invalid("The weights need an 'other' role.", "weights")
        object.__setattr__(self, "weights_by_role", tuple(sorted(table.items())))
        object.__setattr__(self, "_lookup", table)

    def weight_of(self, role: str | None) -> int:
        table = self._lookup
        return table.get(role or OTHER_ROLE, table[OTHER_ROLE])

    def weights(self, touches: Sequence[Touch], at: datetime) -> list[Fraction]:
        return _normalise([self.weight_of(t.role) for t in touches])

    def params_for_storage(self) -> dict[str, Any]:
        return {"weights": dict(self.weights_by_role)}

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> ModelSpec:
        given = params.get("weights", {})
        if not isinstance(given, Mapping):
            raise _invalid("weights must be an object of role -> integer weight.", "weights")
        return cls(tuple({**DEFAULT_ROLE_WEIGHTS, **given}.items()))


MODELS: Final[Mapping[str, type[ModelSpec]]] = {
    cls.name: cls
    for cls in (LastClick, FirstClick, Linear, PartnerEqual, Position, TimeDecay, RoleBased)
}


MODEL_ALIASES: Final[Mapping[str, str]] = {
    "equal": "partner_equal",
    "first-touch": "first_click",
    "last-touch": "last_click",
    "role-based": "role_based",
    "time-decay": "time_decay",
}
"""The second seed's model names. Its ``equal`` splits evenly among the distinct partners of the
deal, whatever their number of touches: ``partner_equal``, not ``linear`` (equal per touch)."""


def canonical_model(name: str) -> str:
    """``name`` with an alias replaced by the model it names (anything else unchanged)."""
    return MODEL_ALIASES.get(name, name)


def parse_model(name: str, params: Mapping[str, Any] | None = None) -> ModelSpec:
    """A validated model from its name (or alias) and JSON parameters (``None`` or ``{}``:
    defaults)."""
    cls = MODELS.get(canonical_model(name))
    if cls is None:
        raise ValidationFailed(
            f"Unknown attribution model {name!r}; expected one of {sorted(MODELS)} "
            f"(or an alias: {sorted(MODEL_ALIASES)}).",
            code="invalid_model",
        )
    params = {} if params is None else params
    if not isinstance(params, Mapping):
        raise _invalid("Model parameters must be an object.")
    unknown = sorted(set(params) - cls.accepted)
    if unknown:
        raise _invalid(f"{name} does not take parameter(s) {unknown}.", str(unknown[0]))
    return cls.from_params(params)


DEFAULT_SPEC: Final = LastClick()
