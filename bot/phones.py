"""Phone numbers: parse to E.164 and mask for logs."""
from __future__ import annotations

import re

import phonenumbers

WHATSAPP_PREFIX = "whatsapp:"
# Anything that looks like a phone number inside free text (for the log filter).
PHONE_IN_TEXT = re.compile(r"(?<![\w•])\+?\d[\d\s().\-]{8,}\d(?!\w)")


class BadNumber(ValueError):
    """The sender's number is missing or cannot be read."""


def split_channel(raw: str) -> tuple[str, str]:
    """'whatsapp:+1816…' -> ('whatsapp', '+1816…'); a plain number is 'sms'."""
    if raw.lower().startswith(WHATSAPP_PREFIX):
        return "whatsapp", raw[len(WHATSAPP_PREFIX):]
    return "sms", raw


def to_e164(raw: str | None, region: str = "US") -> str:
    if not raw or not raw.strip():
        raise BadNumber("missing From")
    try:
        number = phonenumbers.parse(raw.strip(), region)
    except phonenumbers.NumberParseException as exc:
        raise BadNumber(f"From is not a phone number ({exc.error_type})") from None
    if not phonenumbers.is_possible_number(number):
        raise BadNumber("From is not a possible phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def mask(phone: str | None) -> str:
    """'+18165550123' -> '+1816•••0123': enough to tell numbers apart, not to dial."""
    if not phone:
        return "-"
    digits = re.sub(r"\D", "", phone)
    if len(digits) < 8:
        return "•••" + digits[-2:]
    head = "+" + digits[:4] if len(digits) == 11 and digits[0] == "1" else "+" + digits[:3]
    return f"{head}•••{digits[-4:]}"


def mask_text(text: str) -> str:
    """Mask every phone-like run of digits in a log line."""
    return PHONE_IN_TEXT.sub(lambda m: mask(m.group(0)), text)
