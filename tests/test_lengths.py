"""Short texts: every reply the bot can send, measured in SMS segments as it goes out by SMS."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.conversation.lengths import MAX_MEAN, MAX_SEGMENTS, measure, reference_time
from bot.conversation.segments import segments, to_gsm


@pytest.fixture
def measured(rt):
    now = reference_time(datetime(2026, 12, 2, tzinfo=UTC), rt.engine)
    return {lengths.lang: lengths for lengths in measure(rt.engine, now, rt.directory.home_zip)}


def test_replies_average_at_most_1_3_segments_and_none_is_over_3_in_each_language(measured, capsys):
    assert set(measured) == {"en", "es"}
    with capsys.disabled():  # the figures belong in the CI log
        for lengths in measured.values():
            print(f"\n  {lengths}")
    for lengths in measured.values():
        assert lengths.replies > 100, "the budget measures every text, not a handful"
        assert lengths.mean <= MAX_MEAN, lengths
        assert lengths.worst_segments <= MAX_SEGMENTS, lengths


def test_the_first_texts_a_resident_reads_are_one_segment_each(rt, measured):
    now = reference_time(datetime(2026, 12, 2, tzinfo=UTC), rt.engine)
    for lang in ("en", "es"):
        replies = dict(rt.engine.every_reply(lang, now, rt.directory.home_zip))
        for key in (
            "greeting",
            "crisis_self_harm",
            "crisis_violence",
            "crisis_overdose",
            "handoff",
            "checkin",
            "person_offer",
            "reply_only_ack",
        ):
            assert segments(to_gsm(replies[key])) == 1, (lang, key, replies[key])


def test_peaceline_check_prints_the_mean_and_the_longest_reply_per_language(env):
    from click.testing import CliRunner

    from bot.cli import main

    result = CliRunner().invoke(main, ["check"], env=env)
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("replies ")]
    assert [line.split()[1] for line in lines] == ["en:", "es:"]
    assert all("SMS segments on average" in line and "longest" in line for line in lines)


def test_peaceline_check_warns_when_texts_grow_past_the_aim(env, tmp_path):
    import shutil

    from click.testing import CliRunner
    from conftest import ROOT

    from bot.cli import main

    flows = tmp_path / "flows"
    shutil.copytree(ROOT / "flows", flows)
    messages = flows / "messages.yaml"
    long = "Sorry, I did not get that. " * 20  # 539 characters: 4 segments
    messages.write_text(messages.read_text().replace('en: "Sorry, I did not get that."', f'en: "{long.strip()}"'))
    result = CliRunner().invoke(main, ["check"], env={**env, "FLOWS_DIR": str(flows)})
    assert "en replies should average at most 1.3 SMS segments, none over 3" in result.output
    assert "longest 4 (not_understood)" in result.output
