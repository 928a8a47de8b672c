"""For `gunicorn wsgi:app`: web only (run `peaceline scheduler` once beside it)."""

import sys

from bot import create_app
from bot.casework.retention import check_key
from bot.config import ConfigError, load_settings
from bot.storage.migrate import upgrade

try:
    _settings = load_settings()
    app = create_app(_settings)  # refuses a production set-up that is not complete, before anything runs
    upgrade(_settings.database_url)  # idempotent, and serialised between processes
    check_key(app.extensions["peaceline"].db)  # a wrong DATA_KEY stops here, not at the first text
except ConfigError as exc:
    print(f"configuration: {exc}", file=sys.stderr)  # one line, not a traceback
    sys.exit(3)  # gunicorn's "worker failed to boot": it stops, rather than restarting the worker forever
