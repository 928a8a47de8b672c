"""Phone numbers: parse to E.164, check that a typed number is one the line may text, mask for logs.

The one home of phone parsing: the directory's numbers are read here too (pure: phonenumbers only).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from functools import lru_cache

import phonenumbers
from phonenumbers import PhoneNumberType, shortnumberinfo

WHATSAPP_PREFIX = "whatsapp:"
# A phone number inside free text (for the log filter): E.164 or international with separators, or a
# North American number however it is written; never a timestamp, a date, an epoch second, a SID or
# a uuid's digits (tests/test_logs.py holds it to a log line full of ISO times).
PHONE_IN_TEXT = re.compile(
    r"(?<![\w•+])(?<!\w[\-.])"  # not inside a word, an id (a uuid's groups) or a version number
    r"(?:"
    r"\+(?=(?:[ .\-()]{0,2}\d){8})\d{1,3}(?:[ .\-]?(?:\(\d{2,4}\)|\d{2,4})){2,5}"  # international, E.164
    r"|(?:1[ .\-]?)?(?:\([2-9]\d{2}\)|[2-9]\d{2})[ .\-]?[2-9]\d{2}[ .\-]?\d{4}"  # North American
    r")"
    r"(?![\w•])(?![\-.:/]\w)"  # nor followed by more of a word, an id or a time
)
# Numbers that cost the line money, reach someone other than a person's own phone, or cannot take a
# text: never a resident's number. Toll-free numbers belong to businesses, not to the people we text.
REFUSED_TYPES = {
    PhoneNumberType.PREMIUM_RATE: "a premium-rate number",
    PhoneNumberType.SHARED_COST: "a shared-cost number",
    PhoneNumberType.PERSONAL_NUMBER: "a personal (forwarding) number",
    PhoneNumberType.PAGER: "a pager",
    PhoneNumberType.UAN: "a company's universal access number",
    PhoneNumberType.VOICEMAIL: "a voicemail number",
    PhoneNumberType.TOLL_FREE: "a toll-free number",
    PhoneNumberType.UNKNOWN: "not a number we can text",
}


class BadNumber(ValueError):
    """The number is missing, cannot be read, or is not one the line may use; the message says which."""


def split_channel(raw: str) -> tuple[str, str]:
    """'whatsapp:+1816…' -> ('whatsapp', '+1816…'); a plain number is 'sms'."""
    if raw.lower().startswith(WHATSAPP_PREFIX):
        return "whatsapp", raw[len(WHATSAPP_PREFIX) :]
    return "sms", raw


def _parse(raw: str | None, region: str) -> phonenumbers.PhoneNumber:
    if not raw or not raw.strip():
        raise BadNumber("missing number")
    try:
        return phonenumbers.parse(raw.strip(), region)
    except phonenumbers.NumberParseException as exc:
        raise BadNumber(f"not a phone number ({exc.error_type})") from None


def _e164(number: phonenumbers.PhoneNumber) -> str:
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def to_e164(raw: str | None, region: str = "US") -> str:
    """A sender's number as Twilio gives it: only checked to be a possible number."""
    number = _parse(raw, region)
    if not phonenumbers.is_possible_number(number):
        raise BadNumber("not a possible phone number")
    return _e164(number)


def valid_e164(raw: str | None, region: str = "US") -> str:
    """A number an operator or admin typed (staff, escalation): a valid number anywhere."""
    number = _parse(raw, region)
    if not phonenumbers.is_valid_number(number):
        raise BadNumber("not a valid phone number")
    return _e164(number)


@lru_cache(maxsize=65536)  # a directory repeats its numbers, and parsing is phonenumbers' slowest step
def regional_e164(raw: str, region: str = "US") -> str:
    """A number valid in `region` (a directory's phone: "(816) 474-6750", "+18164746750")."""
    text = raw.strip()
    try:
        # canonical input skips phonenumbers' parser, by far its slowest step
        if region == "US" and len(text) == 12 and text.startswith("+1") and text[2:].isdigit():
            if _us_landline_or_mobile(text[2:]):
                return text  # what is_valid_number_for_region finds too, after eight other types
            number = phonenumbers.PhoneNumber(country_code=1, national_number=int(text[2:]))
        else:
            number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        raise BadNumber(f"not a phone number: {raw!r}") from None
    if not phonenumbers.is_valid_number_for_region(number, region):
        raise BadNumber(f"not a valid {region} phone number: {raw!r}")
    return _e164(number)


@lru_cache(maxsize=1)
def _us_patterns() -> list[re.Pattern[str]]:
    """phonenumbers' own US patterns for any number and for a landline (the same as a mobile there)."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region("US")
    descs = (metadata.general_desc, metadata.fixed_line) if metadata else ()
    return [re.compile(desc.national_number_pattern) for desc in descs if desc and desc.national_number_pattern]


def _us_landline_or_mobile(national: str) -> bool:
    """A ten-digit US number both patterns match, as phonenumbers matches them: a directory's commonest case."""
    patterns = _us_patterns()
    return len(patterns) == 2 and all((found := p.match(national)) and found.end() == len(national) for p in patterns)


def short_number(raw: str, region: str = "US") -> str:
    """A short number valid in `region` ("988", "211"), as written."""
    text = raw.strip()
    number = phonenumbers.PhoneNumber(country_code=1, national_number=int(text)) if text.isdigit() else None
    if number is None or not shortnumberinfo.is_valid_short_number_for_region(number, region):
        raise BadNumber(f"not a valid {region} short number: {text!r}")
    return text


def resident_e164(raw: str | None, allowed_regions: Collection[str]) -> str:
    """A number typed on a web page for the line to text: valid, in an allowed country, and of a
    kind a person's own phone has. US numbers read as FIXED_LINE_OR_MOBILE (phonenumbers cannot
    tell a mobile from a landline there): only a code sent to the number proves it takes texts."""
    # A number typed without its country code is read as the program's own country's.
    number = _parse(raw, "US" if "US" in allowed_regions else min(allowed_regions))
    if not phonenumbers.is_valid_number(number):
        raise BadNumber("not a valid phone number")
    if phonenumbers.region_code_for_number(number) not in allowed_regions:
        raise BadNumber(f"we can only text numbers in {', '.join(sorted(allowed_regions))}")
    kind = phonenumbers.number_type(number)
    if kind in REFUSED_TYPES:
        raise BadNumber(f"we cannot text {REFUSED_TYPES[kind]}")
    return _e164(number)


def is_region(code: str) -> bool:
    """An ISO 3166 region phonenumbers knows ('US', 'CA', …)."""
    return code in phonenumbers.SUPPORTED_REGIONS


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


def strip_numbers(text: str) -> str:
    """Remove every phone-like run of digits (a provider's error text names the number it failed on)."""
    return PHONE_IN_TEXT.sub("[number]", text)
