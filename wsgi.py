"""For `gunicorn wsgi:app`: web only (run `peaceline scheduler` once beside it)."""
from bot import create_app
from bot.config import load_settings
from bot.migrate import upgrade
from bot.retention import check_key

_settings = load_settings()
upgrade(_settings.database_url)  # idempotent, and serialised between processes
app = create_app(_settings)
check_key(app.extensions["peaceline"].db)  # a wrong DATA_KEY stops here, not at the first text
