"""The caseworker web inbox (blueprint `inbox`, mounted at /inbox)."""
from .views import bp

__all__ = ["bp"]
