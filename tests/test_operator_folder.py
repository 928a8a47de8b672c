"""An operator's own folder: its vocabulary is the one the crisis check reads (through the webhook), its
flows and resources are read from the working folder (else the packaged defaults), `peaceline init` writes it."""

from __future__ import annotations

import shutil

import pytest
import yaml
from click.testing import CliRunner
from conftest import ROOT, Phone

from bot import create_app
from bot.cli import main
from bot.config import ConfigError, is_packaged, load_settings, packaged
from bot.operator_folder import write_operator_folder
from bot.server import banner

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


# -- where the data comes from: the working folder, else the packaged defaults ---------------


def test_an_operator_folder_is_read_from_the_working_folder(tmp_path, monkeypatch):
    folder = tmp_path / "line"
    write_operator_folder(folder)
    monkeypatch.chdir(folder)
    settings = load_settings({"SECRET_KEY": "k"})
    assert settings.flows_dir == folder / "flows"
    assert settings.resources_path == folder / "resources.yaml"
    assert settings.instance_path == folder / "instance"
    assert not is_packaged(settings.flows_dir) and not is_packaged(settings.resources_path)
    assert str(folder / "flows") in banner(settings, "127.0.0.1", 8000, 1, scheduler=False)


def test_elsewhere_the_packaged_defaults_are_served_and_the_banner_says_so(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings({"SECRET_KEY": "k"})
    assert settings.flows_dir == packaged("flows") and is_packaged(settings.flows_dir)
    assert settings.resources_path == packaged("resources.yaml") and is_packaged(settings.resources_path)
    assert settings.instance_path == tmp_path / "instance"  # never inside the package
    assert "flows: " in (text := banner(settings, "127.0.0.1", 8000, 1, scheduler=False))
    assert text.count("packaged defaults") == 2


def test_settings_still_win_over_the_working_folder(tmp_path, monkeypatch, operator_flows):
    write_operator_folder(tmp_path / "line")
    monkeypatch.chdir(tmp_path / "line")
    settings = load_settings({"SECRET_KEY": "k", "FLOWS_DIR": str(operator_flows)})
    assert settings.flows_dir == operator_flows


# -- peaceline init -------------------------------------------------------------------------------


def test_init_writes_a_folder_that_checks_clean(tmp_path, monkeypatch):
    runner = CliRunner()
    made = runner.invoke(main, ["init", str(tmp_path / "line")])
    assert made.exit_code == 0, made.output
    folder = tmp_path / "line"
    assert sorted(p.name for p in folder.iterdir()) == [".env.example", "README.md", "flows", "resources.yaml"]
    assert (folder / "flows" / "vocabulary.yaml").read_bytes() == (ROOT / "flows" / "vocabulary.yaml").read_bytes()
    assert (folder / "resources.yaml").read_bytes() == (ROOT / "resources.yaml").read_bytes()
    assert "PUBLIC_BASE_URL" in (folder / ".env.example").read_text()
    monkeypatch.chdir(folder)
    checked = runner.invoke(main, ["check"], env={"SECRET_KEY": "k"})
    assert checked.exit_code == 0, checked.output
    assert "0 error(s)" in checked.output


def test_init_overwrites_nothing(tmp_path):
    folder = tmp_path / "line"
    folder.mkdir()
    (folder / "resources.yaml").write_text("mine")
    refused = CliRunner().invoke(main, ["init", str(folder)])
    assert refused.exit_code == 1
    assert "resources.yaml" in refused.output
    assert (folder / "resources.yaml").read_text() == "mine"
    assert not (folder / "flows").exists()


def test_the_vocabulary_must_read_the_directorys_needs(env, clock, operator_flows):
    path = operator_flows / "vocabulary.yaml"
    vocabulary = yaml.safe_load(path.read_text(encoding="utf-8"))
    del vocabulary["categories"]["loss"]
    path.write_text(yaml.safe_dump(vocabulary, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ConfigError, match="FLOWS_DIR: .*categories must be exactly the directory's"):
        create_app(load_settings({**env, "FLOWS_DIR": str(operator_flows)}), clock=clock)
