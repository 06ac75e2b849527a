"""Connected accounts and account links, with Stripe's onboarding states.

A new account is *not* ready: the capabilities it asked for are ``inactive``, ``payouts_enabled``
is false and ``requirements.currently_due`` lists what onboarding must collect. It becomes ready
when onboarding completes — following an account link's URL (the local onboarding page), or
``StripeServer.mark_account_ready`` — which also emits ``account.updated``, as Stripe does.
"""

from __future__ import annotations

import copy
import secrets

from tests.stripe_server import errors, params
from tests.stripe_server.params import Params
from tests.stripe_server.shapes import Obj, new_id, stripe_list
from tests.stripe_server.store import RequestInfo, Store, created_filter, public, stored

_ACCOUNT_FIELDS = (
    "type",
    "country",
    "email",
    "capabilities",
    "business_type",
    "business_profile",
    "metadata",
    "controller",
    "settings",
    "tos_acceptance",
    "individual",
    "company",
    "default_currency",
    "external_account",
)
_UPDATE_FIELDS = tuple(f for f in _ACCOUNT_FIELDS if f not in ("type", "country", "controller"))
_TYPES = ("custom", "express", "standard")
_CURRENCY_OF = {"US": "usd", "GB": "gbp", "CA": "cad", "AU": "aud", "JP": "jpy", "CH": "chf"}
_EURO = {"AT", "BE", "DE", "ES", "FI", "FR", "IE", "IT", "LU", "NL", "PT"}
_ONBOARDING_DUE = [
    "business_profile.url",
    "external_account",
    "tos_acceptance.date",
    "tos_acceptance.ip",
]


def create_account(store: Store, query: Params) -> Obj:
    params.only(query, _ACCOUNT_FIELDS)
    kind = params.string(query, "type")
    if kind is not None and kind not in _TYPES:
        raise errors.invalid("type", f"Invalid type: must be one of {', '.join(_TYPES)}", None)
    controlled = bool(params.mapping(query, "controller"))
    country = (params.string(query, "country") or "US").upper()
    currency = _CURRENCY_OF.get(country, "eur" if country in _EURO else "usd")
    account_id = new_id("acct", 16)
    account = store.shapes.build(
        "account",
        {
            "requirements.disabled_reason": "requirements.past_due",
            "requirements.currently_due": _ONBOARDING_DUE,
            "requirements.eventually_due": _ONBOARDING_DUE,
            # The platform created it, so the platform (an application) controls it.
            "controller.type": "application",
        },
        id=account_id,
        type=kind or ("none" if controlled else "standard"),
        country=country,
        default_currency=params.string(query, "default_currency") or currency,
        email=params.string(query, "email"),
        business_type=params.string(query, "business_type"),
        capabilities={},
        charges_enabled=False,
        payouts_enabled=False,
        details_submitted=False,
        created=store.now(),
        metadata=params.metadata(query),
        external_accounts=stripe_list(f"/v1/accounts/{account_id}/external_accounts"),
    )
    _apply_profile(account, query)
    _apply_capabilities(account, query)
    store.accounts[account_id] = stored(account, store.sequence())
    return public(account)


def retrieve_account(store: Store, account_id: str) -> Obj:
    return public(get_account(store, account_id))


def get_account(store: Store, account_id: str, *, param: str = "id", status: int = 404) -> Obj:
    account = store.accounts.get(account_id)
    if account is None:
        raise errors.no_such("account", account_id, param=param, status=status)
    return account


def update_account(store: Store, account_id: str, query: Params, request: RequestInfo) -> Obj:
    account = get_account(store, account_id)
    params.only(query, _UPDATE_FIELDS)
    before = copy.deepcopy(account)
    for name in ("email", "business_type", "default_currency"):
        if name in query:
            account[name] = params.string(query, name)
    account["metadata"] = params.metadata(query, account["metadata"])
    _apply_profile(account, query)
    _apply_capabilities(account, query)
    if public(account) != public(before):
        store.emit("account.updated", account, previous=before, account=account_id, request=request)
    return public(account)


def list_accounts(store: Store, query: Params) -> Obj:
    params.only(query, ("limit", "starting_after", "ending_before", "created"))
    keep = created_filter(query)
    items = [a for a in store.accounts.values() if keep(a)]
    return store.page(items, query, "/v1/accounts", "account")


def set_ready(store: Store, account_id: str, ready: bool, reason: str | None) -> Obj:
    """Onboarding complete (``ready``) or the account restricted; emits ``account.updated``."""
    account = get_account(store, account_id)
    before = copy.deepcopy(account)
    state = "active" if ready else "inactive"
    capabilities = account["capabilities"]
    for name in {*capabilities, "transfers"}:
        capabilities[name] = state
    due = [] if ready else ["external_account"]
    account.update(charges_enabled=ready, payouts_enabled=ready)
    account["details_submitted"] = account["details_submitted"] or ready
    requirements = account["requirements"]
    requirements.update(currently_due=list(due), eventually_due=list(due), past_due=list(due))
    requirements["disabled_reason"] = None if ready else (reason or "requirements.past_due")
    return store.emit("account.updated", account, previous=before, account=account_id)


def create_account_link(store: Store, query: Params, base_url: str) -> Obj:
    params.only(
        query, ("account", "type", "refresh_url", "return_url", "collect", "collection_options")
    )
    account_id = params.string(query, "account", required=True)
    link_type = params.string(query, "type", required=True)
    assert account_id is not None
    if link_type not in ("account_onboarding", "account_update"):
        raise errors.invalid(
            "type", "Invalid type: must be one of account_onboarding or account_update", None
        )
    get_account(store, account_id, param="account", status=400)
    token = secrets.token_urlsafe(12)
    store.onboarding[token] = (account_id, params.string(query, "return_url"))
    now = store.now()
    return store.shapes.build(
        "account_link",
        created=now,
        expires_at=now + 300,  # Stripe's links expire after a few minutes
        url=f"{base_url}/setup/s/{account_id}/{token}",
    )


def complete_onboarding(store: Store, token: str) -> str | None:
    """Follow an account link: the account becomes ready; returns where to send the user."""
    account_id, return_url = store.onboarding.pop(token)
    set_ready(store, account_id, True, None)
    return return_url


def _apply_profile(account: Obj, query: Params) -> None:
    profile = params.mapping(query, "business_profile")
    for key, value in profile.items():
        if key not in account["business_profile"]:
            raise errors.unknown_parameter(f"business_profile[{key}]")
        account["business_profile"][key] = value or None


def _apply_capabilities(account: Obj, query: Params) -> None:
    for name, spec in params.mapping(query, "capabilities").items():
        requested = params.boolean(spec, "requested") if isinstance(spec, dict) else None
        if requested is None:
            raise errors.missing(f"capabilities[{name}][requested]")
        if not requested:
            account["capabilities"].pop(name, None)
        elif name not in account["capabilities"]:
            ready = account["payouts_enabled"]
            account["capabilities"][name] = "active" if ready else "inactive"
