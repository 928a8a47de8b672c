"""SMS segment counting (GSM-7 vs UCS-2), as carriers bill and split messages."""

from __future__ import annotations

# GSM 03.38 basic character set (one septet each).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# GSM 03.38 extension table: sent as ESC + char, so two septets, never split.
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")
_GSM7 = GSM7_BASIC | GSM7_EXTENSION

GSM7_SINGLE, GSM7_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67

# Look-alikes a phone keyboard or a word processor puts in (a caseworker's "I’m"), as their GSM-7
# form: one of them would make a whole text UCS-2, 70 characters a segment instead of 160.
_LOOKALIKES = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u2032": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u2033": '"',
        "\u2010": "-",
        "\u2011": "-",
        "\u2012": "-",
        "\u2013": "-",
        "\u2014": "-",
        "\u2015": "-",
        "\u2212": "-",
        "\u2026": "...",
        "\u00a0": " ",
        "\u2009": " ",
        "\u202f": " ",
        "\u00b7": "-",
        "\u2022": "-",
    }
)
# Spanish vowels with an acute accent are not GSM-7 (é is): unaccented, a Spanish text stays GSM-7.
_ACUTE = str.maketrans("áíóúÁÍÓÚ", "aiouAIOU")


def counting_rules(*, fold_accents: bool = True) -> dict[str, object]:
    """What the inbox's live counter needs to count a reply as it will go out (`to_gsm`, `segments`):
    the data lives here only, the page's script runs the same steps over it."""
    return {
        "basic": "".join(sorted(GSM7_BASIC)),
        "extension": "".join(sorted(GSM7_EXTENSION)),
        "lookalikes": {chr(code): plain for code, plain in _LOOKALIKES.items()},
        "acute": {chr(code): chr(plain) for code, plain in _ACUTE.items()} if fold_accents else {},
        "gsm": [GSM7_SINGLE, GSM7_PART],
        "ucs2": [UCS2_SINGLE, UCS2_PART],
    }


def is_gsm7(text: str) -> bool:
    """True when every character fits the GSM-7 alphabet (basic or extension)."""
    return _GSM7.issuperset(text)


def to_gsm(text: str, *, fold_accents: bool = True) -> str:
    """A text as it goes out by SMS: look-alike quotes, dashes, ellipses and spaces as their GSM-7
    forms; and á, í, ó, ú unaccented when that alone makes the text GSM-7 and saves a segment
    (é, ñ, ü, ¿ and ¡ are GSM-7 and stay). `fold_accents=False` keeps every accent (FOLD_ACCENTS)."""
    text = text.translate(_LOOKALIKES)
    if fold_accents and not is_gsm7(text):
        folded = text.translate(_ACUTE)
        if is_gsm7(folded) and segments(folded) < segments(text):
            return folded
    return text


def segments(text: str) -> int:
    """Number of SMS segments `text` takes; 0 for an empty text."""
    if not text:
        return 0
    # Counted first without a list of units (most replies fit one segment): an extension character
    # takes two septets; a character outside the BMP (emoji) two UTF-16 code units.
    if gsm := is_gsm7(text):
        total = len(text) + sum(map(text.count, GSM7_EXTENSION))
    else:
        total = len(text.encode("utf-16-le")) // 2
    if total <= (GSM7_SINGLE if gsm else UCS2_SINGLE):
        return 1
    if gsm:
        return _pack([2 if c in GSM7_EXTENSION else 1 for c in text], GSM7_PART)
    return _pack([2 if ord(c) > 0xFFFF else 1 for c in text], UCS2_PART)


def _pack(units: list[int], size: int) -> int:
    """Count segments of `size` units, never splitting an escape or surrogate pair."""
    count, used = 1, 0
    for unit in units:
        if used + unit > size:
            count, used = count + 1, 0
        used += unit
    return count
