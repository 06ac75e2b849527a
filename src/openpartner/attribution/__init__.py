"""Attribution: which partner drove which part of a conversion. Pure code, no I/O.

Payouts: build :class:`Touch` and :class:`Conversion` values, pick a model with
:func:`parse_model`, call :func:`attribute`. Analytics (never payouts): :func:`markov_removal` and
:func:`shapley` over journeys. See ``docs/attribution.md``.
"""

from openpartner.attribution.analytics import (
    Journey,
    MarkovPartner,
    MarkovResult,
    ShapleyPartner,
    ShapleyResult,
    markov_removal,
    shapley,
)
from openpartner.attribution.engine import (
    CLOCK_SKEW_GRACE,
    ENGINE_VERSION,
    EXCLUSION_REASONS,
    Attribution,
    Credit,
    ExcludedTouch,
    WeightedTouch,
    attribute,
)
from openpartner.attribution.inputs import KINDS, Conversion, Touch, touch_order
from openpartner.attribution.models import (
    DEFAULT_MODEL,
    DEFAULT_SPEC,
    MODEL_ALIASES,
    MODELS,
    FirstClick,
    LastClick,
    Linear,
    ModelSpec,
    PartnerEqual,
    Position,
    RoleBased,
    TimeDecay,
    parse_model,
)

__all__ = [
    "CLOCK_SKEW_GRACE",
    "DEFAULT_MODEL",
    "DEFAULT_SPEC",
    "ENGINE_VERSION",
    "EXCLUSION_REASONS",
    "KINDS",
    "MODELS",
    "MODEL_ALIASES",
    "Attribution",
    "Conversion",
    "Credit",
    "ExcludedTouch",
    "FirstClick",
    "Journey",
    "LastClick",
    "Linear",
    "MarkovPartner",
    "MarkovResult",
    "ModelSpec",
    "PartnerEqual",
    "Position",
    "RoleBased",
    "ShapleyPartner",
    "ShapleyResult",
    "TimeDecay",
    "Touch",
    "WeightedTouch",
    "attribute",
    "markov_removal",
    "parse_model",
    "shapley",
    "touch_order",
]
