"""Click quality flags, computed when clicks are written (both databases)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from openpartner.clicks.flags import is_bot
from openpartner.clicks.models import Click
from openpartner.clicks.writer import ClickRecord, record_clicks
from openpartner.core.ids import new_id
from openpartner.core.time import clock
from openpartner.links.models import Link
from openpartner.secrets import keyed_hash
from tests.factories import make_link, make_partner, make_program

T0 = datetime(2026, 3, 1, 12, 0, 10, tzinfo=UTC)
BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 Safari/605.1.15"


def click(
    link: Link,
    at: datetime = T0,
    *,
    ip: str = "ip-a",
    user_agent: str | None = BROWSER,
) -> ClickRecord:
    return ClickRecord(
        id=new_id("clk"),
        link_id=link.id,
        partner_id=link.partner_id,
        program_id=link.program_id,
        clicked_at=at,
        ip_hash=keyed_hash(ip, purpose="ip"),
        visitor_hash=keyed_hash(f"{ip}\n{user_agent}", purpose="visitor"),
        user_agent=user_agent,
        referer=None,
        landing_url="https://acme.example/welcome",
        utm_source=None,
        utm_medium=None,
        utm_campaign=None,
        utm_term=None,
        utm_content=None,
        country=None,
        source="router",
        bot=is_bot(user_agent),
    )


def flags(session: Session, records: list[ClickRecord]) -> list[tuple[bool, bool, bool, bool]]:
    rows = {
        row.id: (row.bot, row.duplicate, row.velocity, row.revoked)
        for row in session.scalars(sa.select(Click).where(Click.id.in_([r.id for r in records])))
    }
    return [rows[r.id] for r in records]


@pytest.mark.parametrize(
    ("user_agent", "bot"),
    [
        (BROWSER, False),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/124.0 Safari/537.36", False),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) Mobile/15E148", False),
        (None, True),
        ("", True),
        ("   ", True),
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", True),
        ("facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)", True),
        ("Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", True),
        ("Twitterbot/1.0", True),
        ("WhatsApp/2.23.20.0", True),
        ("TelegramBot (like TwitterBot)", True),
        ("Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)", True),
        (
            "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)",
            True,
        ),
        ("Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome/124.0 Safari/537.36", True),
        ("curl/8.5.0", True),
        ("python-requests/2.32", True),
        ("Go-http-client/1.1", True),
    ],
)
def test_bot_user_agents(user_agent: str | None, bot: bool) -> None:
    assert is_bot(user_agent) is bot


def test_clean_click_has_no_flags(session: Session) -> None:
    link = make_link(session)
    record = click(link)
    assert record_clicks(session, [record]) == 1
    assert flags(session, [record]) == [(False, False, False, False)]
    stored = session.scalars(sa.select(Click).where(Click.id == record.id)).one()
    assert stored.clicked_at == T0 and stored.landing_url == record.landing_url
    assert not stored.flagged


def test_bot_click_is_recorded_with_the_flag(session: Session) -> None:
    link = make_link(session)
    record = click(link, user_agent=None)
    record_clicks(session, [record])
    assert flags(session, [record]) == [(True, False, False, False)]


def test_same_visitor_within_an_hour_is_a_duplicate(session: Session) -> None:
    link = make_link(session)
    first = click(link)
    # Across two writes (two flushes), and inside one batch.
    record_clicks(session, [first])
    later = [
        click(link, T0 + timedelta(minutes=59, seconds=59)),
        click(link, T0 + timedelta(hours=2)),
    ]
    record_clicks(session, later)
    again = click(link, T0 + timedelta(hours=2, minutes=30))
    record_clicks(session, [again])
    assert [f[1] for f in flags(session, [first, *later, again])] == [False, True, False, True]


def test_duplicate_needs_the_same_visitor_and_link(session: Session) -> None:
    link = make_link(session)
    other_link = make_link(session, partner=make_partner(session))
    records = [
        click(link),
        click(link, T0 + timedelta(seconds=1), user_agent=BROWSER + " other"),
        click(link, T0 + timedelta(seconds=2), ip="ip-b"),
        click(other_link, T0 + timedelta(seconds=3)),
    ]
    record_clicks(session, records)
    assert [f[1] for f in flags(session, records)] == [False, False, False, False]


def test_a_click_written_later_by_another_router_makes_the_earlier_one_a_duplicate(
    session: Session,
) -> None:
    # Router B flushed a click stamped 50 ms after router A's; A's arrives second and is the
    # duplicate, so the visitor still has exactly one unflagged click.
    link = make_link(session)
    from_b = click(link, T0 + timedelta(milliseconds=50))
    from_a = click(link, T0)
    record_clicks(session, [from_b])
    record_clicks(session, [from_a])
    assert [f[1] for f in flags(session, [from_b, from_a])] == [False, True]


def test_velocity_flags_clicks_beyond_the_program_limit_per_minute(session: Session) -> None:
    program = make_program(session, velocity_limit_per_minute=3)
    link = make_link(session, partner=make_partner(session, program=program))
    # Five clicks from one IP (different browsers, so no duplicates) in one minute, written in
    # two flushes; then the next minute starts a new count.
    minute = [click(link, T0 + timedelta(seconds=i), user_agent=f"{BROWSER} {i}") for i in range(5)]
    record_clicks(session, minute[:2])
    record_clicks(session, minute[2:])
    next_minute = click(link, T0 + timedelta(seconds=55), user_agent=BROWSER + " n")
    other_ip = click(link, T0 + timedelta(seconds=6), ip="ip-b")
    record_clicks(session, [next_minute, other_ip])
    assert [f[2] for f in flags(session, minute)] == [False, False, False, True, True]
    assert flags(session, [next_minute, other_ip]) == [(False, False, False, False)] * 2


def test_default_velocity_limit_is_twenty(session: Session) -> None:
    link = make_link(session)
    records = [
        click(link, T0 + timedelta(milliseconds=i), user_agent=f"{BROWSER} {i}") for i in range(21)
    ]
    record_clicks(session, records)
    assert [f[2] for f in flags(session, records)] == [False] * 20 + [True]


def test_revoked_partner_click_is_flagged(session: Session) -> None:
    partner = make_partner(session)
    link = make_link(session, partner=partner)
    partner.status = "revoked"
    session.flush()
    record = click(link)
    record_clicks(session, [record])
    assert flags(session, [record]) == [(False, False, False, True)]


def test_replay_skips_clicks_already_stored(session: Session) -> None:
    link = make_link(session)
    batch = [click(link, T0 + timedelta(seconds=i), ip=f"ip-{i}") for i in range(3)]
    record_clicks(session, batch[:2])
    assert record_clicks(session, batch, skip_existing=True) == 1
    stored = session.scalar(
        sa.select(sa.func.count()).select_from(Click).where(Click.link_id == link.id)
    )
    assert stored == 3


def test_long_replay_is_flagged_as_if_clicks_arrived_one_by_one(session: Session) -> None:
    # A spool replay spans hours: the visitor's click two hours later is not a duplicate of the
    # first, and the third (40 min after the second) is.
    link = make_link(session)
    records = [
        click(link, T0),
        click(link, T0 + timedelta(hours=2)),
        click(link, T0 + timedelta(hours=2, minutes=40)),
    ]
    record_clicks(session, records, skip_existing=True)
    assert [f[1] for f in flags(session, records)] == [False, False, True]


def test_many_visitors_in_one_batch(session: Session) -> None:
    clock.freeze(T0)
    link = make_link(session)
    records = [click(link, T0, ip=f"ip-{i % 450}") for i in range(900)]
    record_clicks(session, records)
    dup = [f[1] for f in flags(session, records)]
    assert dup == [False] * 450 + [True] * 450
