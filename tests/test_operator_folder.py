"""An operator's own folder: its vocabulary is the one the crisis check reads, through the webhook."""

from __future__ import annotations

import shutil

import pytest
import yaml
from conftest import Phone

from bot import create_app
from bot.config import ROOT, load_settings

PHRASE = "walking into the river tonight"  # nothing in the shipped vocabulary reads this as danger


@pytest.fixture
def operator_flows(tmp_path):
    """A copy of the shipped flows whose vocabulary has one more self-harm phrase."""
    flows = shutil.copytree(ROOT / "flows", tmp_path / "operator" / "flows")
    path = flows / "vocabulary.yaml"
    vocabulary = yaml.safe_load(path.read_text(encoding="utf-8"))
    vocabulary["crisis"]["self_harm"]["en"].append(PHRASE)
    path.write_text(yaml.safe_dump(vocabulary, allow_unicode=True), encoding="utf-8")
    return flows


def _phone(env, clock, **more: str):
    app = create_app(load_settings({**env, **more}), clock=clock)
    app.config["TESTING"] = True
    return app, Phone(app.test_client())


def test_a_crisis_phrase_in_the_operators_vocabulary_gets_the_crisis_answer(env, clock, operator_flows):
    app, phone = _phone(env, clock, FLOWS_DIR=str(operator_flows))
    try:
        replies = phone.text(f"I am {PHRASE}")
    finally:
        app.extensions["peaceline"].db.dispose()
    assert any("988" in r for r in replies), replies


def test_the_shipped_vocabulary_does_not_know_the_phrase(env, clock):
    app, phone = _phone(env, clock)
    try:
        replies = phone.text(f"I am {PHRASE}")
    finally:
        app.extensions["peaceline"].db.dispose()
    assert not any("988" in r for r in replies), replies


def test_the_loop_guard_hears_the_operators_crisis_phrase(env, clock, operator_flows):
    app, phone = _phone(env, clock, FLOWS_DIR=str(operator_flows))
    limit = app.extensions["peaceline"].settings.loop_guard_per_minute
    try:
        for i in range(limit + 2):
            phone.text(f"auto reply {i}")
        assert phone.text("hello") == []  # the guard is on
        replies = phone.text(f"I am {PHRASE}")
    finally:
        app.extensions["peaceline"].db.dispose()
    assert any("988" in r for r in replies), replies
