"""The caseworker web inbox (blueprint `inbox`, mounted at /inbox)."""

from bot.web.inbox.views import bp

__all__ = ["bp"]
