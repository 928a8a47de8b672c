"""SMS segment counting (GSM-7 vs UCS-2), as carriers bill and split messages."""
from __future__ import annotations

# GSM 03.38 basic character set (one septet each).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# GSM 03.38 extension table: sent as ESC + char, so two septets, never split.
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

GSM7_SINGLE, GSM7_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67


def is_gsm7(text: str) -> bool:
    """True when every character fits the GSM-7 alphabet (basic or extension)."""
    return all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text)


def segments(text: str) -> int:
    """Number of SMS segments `text` takes; 0 for an empty text."""
    if not text:
        return 0
    if is_gsm7(text):
        units = [2 if c in GSM7_EXTENSION else 1 for c in text]
        single, part = GSM7_SINGLE, GSM7_PART
    else:
        # UTF-16 code units; a character outside the BMP (emoji) takes two.
        units = [2 if ord(c) > 0xFFFF else 1 for c in text]
        single, part = UCS2_SINGLE, UCS2_PART
    if sum(units) <= single:
        return 1
    return _pack(units, part)


def _pack(units: list[int], size: int) -> int:
    """Count segments of `size` units, never splitting an escape or surrogate pair."""
    count, used = 1, 0
    for unit in units:
        if used + unit > size:
            count, used = count + 1, 0
        used += unit
    return count
