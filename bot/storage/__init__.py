"""The database: engine and sessions, typed models, encrypted columns, counters and Alembic migrations."""
