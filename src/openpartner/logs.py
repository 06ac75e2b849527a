"""Logging without secrets or personal data: every handler of the API (uvicorn) and the router
(Granian) passes its records through :class:`Redact`.

- Access log lines keep the path and drop the query string: a query can carry anything a client
  put there (``/v1/partners?email=…``), and an access log is kept longer and read by more people
  than the data it describes.
- Emails, API keys (``op_sk_…``, ``op_pk_…``), Stripe signing secrets, ``Bearer``/``Basic``
  credentials and the values of ``Authorization``, ``X-API-Key``, ``Cookie`` and
  ``Stripe-Signature`` are replaced by ``[redacted]`` in every message and traceback (a database
  error's message can quote a row, e.g. PostgreSQL's "Key (email)=(…) already exists").
- Engines are created with ``hide_parameters=True`` (``db/engine.py``), so SQLAlchemy's
  exceptions never carry a statement's parameters in the first place.
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any, Final

REDACTED: Final = "[redacted]"
_PATTERNS: Final = (
    # an email, also percent-encoded as in a query string (``ada%40example.com``)
    re.compile(r"[A-Za-z0-9._%+\-]+(?:@|%40)[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}"),
    re.compile(r"\b(?:op_(?:sk|pk)|whsec)_[A-Za-z0-9_\-]+"),
    re.compile(r"(?i)(?<=\bbearer )\S+|(?<=\bbasic )\S+"),
    re.compile(
        r"(?i)(?<=authorization)(['\"]?\s*[:=,]\s*['\"]?)[^'\"\s,)]+"
        r"|(?<=x-api-key)(['\"]?\s*[:=,]\s*['\"]?)[^'\"\s,)]+"
        r"|(?<=cookie)(['\"]?\s*[:=,]\s*['\"]?)[^'\"\n]+"
        r"|(?<=stripe-signature)(['\"]?\s*[:=,]\s*['\"]?)[^'\"\s)]+"
    ),
)


def redact(text: str) -> str:
    """``text`` without emails, keys, tokens and credential header values."""
    for pattern in _PATTERNS:
        text = pattern.sub(_replacement, text)
    return text


def _replacement(match: re.Match[str]) -> str:
    separator = next((g for g in match.groups() if g is not None), "")
    return separator + REDACTED


def without_query(target: str) -> str:
    path, mark, _ = target.partition("?")
    return path + (f"?{REDACTED}" if mark else "")


# uvicorn's access records: (client address, method, path with query, HTTP version, status).
_ACCESS_LOGGERS: Final = frozenset({"uvicorn.access"})


class Redact(logging.Filter):
    """Rewrites each record in place before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name in _ACCESS_LOGGERS and isinstance(record.args, tuple):
            args = list(record.args)
            if len(args) == 5 and isinstance(args[2], str):
                args[2] = redact(without_query(args[2]))
                record.args = tuple(args)
            return True
        if getattr(record, "_op_redacted", False):  # several handlers: rewrite once
            return True
        record.msg, record.args = redact(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        record._op_redacted = True
        return True


def with_redaction(config: dict[str, Any], level: str, handler: str) -> dict[str, Any]:
    """A copy of a ``logging.config.dictConfig`` dict whose every handler redacts, with the
    ``openpartner`` loggers and everything else (the root) on ``handler`` at ``level``."""
    config = copy.deepcopy(config)
    config.setdefault("filters", {})["redact"] = {"()": Redact}
    for spec in config["handlers"].values():
        spec["filters"] = [*spec.get("filters", []), "redact"]
    config["loggers"]["openpartner"] = {
        "handlers": [handler],
        "level": level.upper(),
        "propagate": False,
    }
    config["root"] = {"handlers": [handler], "level": "WARNING"}
    return config


def api_logging_config(level: str) -> dict[str, Any]:
    """uvicorn's own logging set-up, redacted (``openpartner api``)."""
    from uvicorn.config import LOGGING_CONFIG

    return with_redaction(LOGGING_CONFIG, level, "default")


def worker_logging_config(level: str) -> dict[str, Any]:
    """One plain handler on stderr, redacted (``openpartner worker``)."""
    plain = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "plain",
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {},
    }
    return with_redaction(plain, level, "console")
