"""Texts in and out: the service around the engine, outbound sending, follow-ups, escalation, phone numbers."""
