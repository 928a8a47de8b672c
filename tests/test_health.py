"""GET /healthz says whether the database answers."""

from bot import create_app
from bot.config import load_settings


def test_healthy(client):
    resp = client.get("/healthz")
    assert resp.status_code == 200 and resp.get_json() == {"status": "ok", "db": "ok", "attention": 0}


def test_database_down_gives_503(env, clock):
    env = {**env, "DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none"}
    app = create_app(load_settings(env), clock=clock)
    resp = app.test_client().get("/healthz")
    assert resp.status_code == 503 and resp.get_json()["db"] == "down"


def test_the_webhook_answers_503_when_the_database_is_down(env, clock):
    from conftest import Phone

    env = {**env, "DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none"}
    app = create_app(load_settings(env), clock=clock)
    assert Phone(app.test_client()).send("hi").status_code == 503
