"""The inbox queue cannot hide a case: tiers, the per-address cap on web referrals, paging and totals."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from conftest import Phone
from sqlalchemy import select
from staff_helpers import Staff, add_caseworker, fast_argon2  # noqa: F401 (autouse fixture)

from bot.casework import cases
from bot.config import ConfigError, load_settings
from bot.messaging import triage
from bot.messaging.triage import Tier
from bot.storage.models import Referral, Resident

ORIGIN = "http://localhost"
CRISIS = "he is going to kill me"


def cookieless(app, address: str):
    """A script, not a browser: no cookies kept, so every post is a brand-new visitor."""
    client = app.test_client(use_cookies=False)
    client.environ_base["REMOTE_ADDR"] = address
    return client


def chat(client, text: str) -> list[str]:
    resp = client.post("/chat/messages", json={"text": text}, headers={"Origin": ORIGIN})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()["replies"]


def referrals(rt) -> list[Referral]:
    with rt.db.sessions() as s:
        return list(s.scalars(select(Referral).order_by(Referral.id)))


def logged_in(app, rt) -> Staff:
    add_caseworker(rt)
    staff = Staff(app.test_client())
    assert staff.login().status_code == 302
    return staff


def cards(html: str) -> list[int]:
    """The referral ids on a queue page, top to bottom."""
    return [int(n) for n in re.findall(r'data-referral="(\d+)"', html)]


def summary(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", re.search(r'<p class="summary">(.*?)</p>', html, re.S).group(1)))


def test_a_flood_of_web_crises_cannot_push_a_real_sms_crisis_off_the_queue(app, rt, client):
    """The replay: 200 cookie-less crisis posts from a few addresses, then one signed SMS crisis."""
    addresses = [f"198.51.100.{n}" for n in range(1, 11)]  # 20 each: inside the chat's own per-minute limit
    for address in addresses:
        bot = cookieless(app, address)
        for _ in range(20):
            assert any("911" in reply for reply in chat(bot, CRISIS)), "every crisis text gets the crisis answer"
    Phone(client, "+18165550199").text(CRISIS)

    flood = referrals(rt)[:-1]
    assert len(flood) == 200 and all(r.urgent for r in flood), "every one is stored: nothing is dropped"
    per_hour = rt.settings.web_referrals_per_hour
    assert [r.tier for r in flood].count(Tier.WEB) == per_hour * len(addresses)
    assert [r.tier for r in flood].count(Tier.CROWDED) == 200 - per_hour * len(addresses)

    html = logged_in(app, rt).get("/inbox/").get_data(as_text=True)
    sms = referrals(rt)[-1]
    assert sms.tier == Tier.TRUSTED and cards(html)[0] == sms.id, "the SMS crisis is first on the first page"
    assert summary(html) == "50 of 201 open, 201 urgent · showing 1–50, page 1 of 5"
    assert "Many from one address" not in html, "the first page is all tiers 0 and 1"


def test_a_capped_address_still_gets_the_crisis_answer_and_counts_again_next_hour(app, rt, clock):
    shelter = cookieless(app, "203.0.113.10")
    for _ in range(rt.settings.web_referrals_per_hour + 1):
        assert any("911" in reply for reply in chat(shelter, CRISIS))
    assert any("911" in reply for reply in chat(cookieless(app, "203.0.113.11"), CRISIS))
    clock.set(clock.now() + timedelta(hours=1))
    chat(shelter, CRISIS)
    assert [r.tier for r in referrals(rt)] == [Tier.WEB] * 5 + [Tier.CROWDED, Tier.WEB, Tier.WEB]


def test_a_visitor_keeps_one_referral_however_often_she_writes(app, rt):
    visitor = app.test_client()  # a browser: the cookie keeps her conversation
    visitor.environ_base["REMOTE_ADDR"] = "203.0.113.12"
    for _ in range(8):
        chat(visitor, CRISIS)
    assert [r.tier for r in referrals(rt)] == [Tier.WEB], "raising her open referral is not a new one"


def test_the_queue_orders_by_tier_then_urgent_then_age(rt, clock):
    ids = {}
    with rt.db.transaction() as s:
        for i, (name, tier, urgent) in enumerate(
            [
                ("web", 1, True),
                ("crowded", 2, True),
                ("sms calm", 0, False),
                ("sms old", 0, True),
                ("sms new", 0, True),
                ("web calm", 1, False),
            ]
        ):
            resident = Resident(phone=f"+1816555{i:04d}", channel="sms", created_at=clock.now())
            s.add(resident)
            s.flush()
            row = Referral(
                resident_id=resident.id,
                reason="crisis:violence",
                urgent=urgent,
                tier=tier,
                created_at=clock.now() + timedelta(minutes=i),
            )
            s.add(row)
            s.flush()
            ids[name] = row.id
    got = [r.id for r in cases.queue(rt, "open", 0).referrals]
    assert got == [ids[n] for n in ("sms old", "sms new", "sms calm", "web", "web calm", "crowded")]


@pytest.fixture
def many(rt, clock) -> list[int]:
    """120 open referrals (12 urgent) and 3 closed ones."""
    with rt.db.transaction() as s:
        resident = Resident(phone="+18165550100", channel="sms", created_at=clock.now())
        s.add(resident)
        s.flush()
        rows = [
            Referral(
                resident_id=resident.id,
                reason="asked_person",
                urgent=i % 10 == 0,
                created_at=clock.now() - timedelta(minutes=200 - i),
            )
            for i in range(120)
        ]
        rows += [
            Referral(
                resident_id=resident.id,
                reason="asked_person",
                status="closed",
                closed_at=clock.now(),
                created_at=clock.now(),
            )
            for _ in range(3)
        ]
        s.add_all(rows)
        s.flush()
        return [r.id for r in rows]


def test_the_queue_pages_and_always_shows_the_totals(app, rt, many):
    staff = logged_in(app, rt)
    first, second, third = (staff.get(f"/inbox/?page={n}").get_data(as_text=True) for n in (1, 2, 3))
    assert summary(first) == "50 of 120 open, 12 urgent · showing 1–50, page 1 of 3"
    assert summary(third) == "20 of 120 open, 12 urgent · showing 101–120, page 3 of 3"
    seen = cards(first) + cards(second) + cards(third)
    assert sorted(seen) == sorted(many[:120]) and len(set(seen)) == 120, "every open case is on exactly one page"
    assert seen[:12] == [many[i] for i in range(0, 120, 10)], "the urgent ones first"
    assert 'href="/inbox/?show=open&amp;page=2"' in first and "Previous page" not in first
    assert "Next page" not in third and 'href="/inbox/?show=open&amp;page=2"' in third
    assert summary(staff.get("/inbox/?show=closed").get_data(as_text=True)) == "3 of 3 closed"
    assert summary(staff.get("/inbox/?show=mine").get_data(as_text=True)) == "0 of 0 open and yours, 0 urgent"


def test_the_poll_carries_the_page_and_its_totals(app, rt, many):
    staff = logged_in(app, rt)
    data = staff.get("/inbox/queue.json?page=3").get_json()
    assert (data["count"], data["unread"]) == (120, 120)
    assert len(cards(data["html"])) == 20 and summary(data["summary"]).startswith("20 of 120 open, 12 urgent")
    assert 'data-poll="/inbox/queue.json?show=open&amp;page=2"' in staff.get("/inbox/?page=2").get_data(as_text=True)


@pytest.mark.parametrize("page", ["abc", "-1", "1.5", "²", "9" * 30, ""])
def test_a_page_that_is_not_a_number_is_a_400(app, rt, page):
    staff = logged_in(app, rt)
    assert staff.get(f"/inbox/?page={page}").status_code == 400
    assert staff.get(f"/inbox/queue.json?page={page}").status_code == 400


def test_a_page_past_the_end_shows_the_last_page(app, rt, many):
    html = logged_in(app, rt).get("/inbox/?page=40").get_data(as_text=True)
    assert summary(html).startswith("20 of 120 open")


def test_web_referrals_per_hour_is_a_setting_checked_at_start(env):
    assert load_settings({**env, "WEB_REFERRALS_PER_HOUR": "12"}).web_referrals_per_hour == 12
    assert load_settings(env).web_referrals_per_hour == 5
    with pytest.raises(ConfigError, match="WEB_REFERRALS_PER_HOUR must be at least 1"):
        load_settings({**env, "WEB_REFERRALS_PER_HOUR": "0"})


def test_the_per_address_count_keeps_no_address(app, rt):
    chat(cookieless(app, "203.0.113.77"), CRISIS)
    with rt.db.sessions() as s:
        (row,) = s.scalars(select(triage.counts.RateCount))
    assert row.scope == triage.WEB_REFERRALS and "203.0.113" not in row.key and row.count == 1


def test_migration_0006_puts_existing_web_referrals_in_tier_1_and_keeps_every_row(tmp_path):
    from alembic import command
    from sqlalchemy import create_engine, text

    from bot.storage.migrate import alembic_config

    url = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(alembic_config(url), "0003")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO residents (id, phone, phone_lookup, channel, consent_texts, created_at) "
                "VALUES (1, '+18165550123', '+18165550123', 'sms', 1, '2026-11-01 00:00:00')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO residents (id, chat_key, channel, consent_texts, created_at) "
                "VALUES (2, 'k', 'web', 1, '2026-11-01 00:00:00')"
            )
        )
        for rid, resident in ((1, 1), (2, 2)):
            conn.execute(
                text(
                    "INSERT INTO referrals (id, resident_id, urgent, reason, status, resource_ids, unread, "
                    f"created_at) VALUES ({rid}, {resident}, 1, 'crisis:violence', 'new', '[]', 1, "
                    "'2026-11-01 00:00:00')"
                )
            )
        conn.execute(
            text(
                "INSERT INTO caseworkers (email, name, role, password_hash, active, failed_logins, "
                "created_at, session_epoch) VALUES ('a@example.org', 'A', 'admin', 'x', 1, 3, "
                "'2026-11-01 00:00:00', 0)"
            )
        )
    command.upgrade(alembic_config(url), "head")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT id, tier FROM referrals ORDER BY id")).all() == [(1, 0), (2, 1)]
        assert conn.execute(text("SELECT email FROM caseworkers")).scalars().all() == ["a@example.org"]
        assert conn.execute(text("PRAGMA foreign_key_check")).all() == []
    command.downgrade(alembic_config(url), "0003")
    command.upgrade(alembic_config(url), "head")
    engine.dispose()
