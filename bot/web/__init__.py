"""The Flask edge: SMS webhook, web chat, inbox, sign-in, report pages, health and security headers."""
