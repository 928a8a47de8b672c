"""Printable campaign cards: business-size, English and Spanish, with an SMSTO QR code.

`cards_pdf` writes a letter-size sheet of ten cards (2 by 5, the usual perforated business-card
stock), drawn in Python (segno for the QR, fpdf2 for the PDF); `card_png` is one card of that very
sheet as a picture for the staff campaigns page (pypdfium2). No system binary runs. The words come
from flows/messages.yaml (`card`), in each language, with {body} and {number}: each language's
lines but its last are in bold.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import phonenumbers
import pypdfium2 as pdfium  # type: ignore[import-untyped]  # pypdfium2 ships no type hints
import segno
from fpdf import FPDF
from sqlalchemy.orm import Session

from bot.casework import campaigns
from bot.conversation.flows import M
from bot.runtime import Runtime

CARD_W, CARD_H = 3.5, 2.0  # inches
COLS, ROWS = 2, 5
PAGE_W, PAGE_H = 8.5, 11.0
MARGIN_X, MARGIN_Y = (PAGE_W - COLS * CARD_W) / 2, (PAGE_H - ROWS * CARD_H) / 2
PAD = 0.15  # inside each card's edge
QR_SIDE = 1.25  # inches, quiet zone included
TEXT_W = CARD_W - 2 * PAD - QR_SIDE - 0.1
POINTS = 72  # per inch
FONT_PT, LEAD = 8.5, 1.3  # body text and its line height
FIRST_PT = 10.5  # each language's lines but its last: "Text HI IA1129", "to (816) 555-0100"
BLOCK_GAP = 0.12  # inches between the languages
PREVIEW_DPI = 200


@dataclass(frozen=True)
class Card:
    number: str  # E.164
    body: str  # what to text: "HI IA1129"
    blocks: tuple[str, ...]  # one text per language, lines apart by "\n"

    @property
    def qr_payload(self) -> str:
        """SMSTO:number:body opens the messaging app with both filled in."""
        return f"SMSTO:{self.number}:{self.body}"


class CardError(ValueError):
    """No card can be made; the message is for the operator."""


def campaign_card(s: Session, rt: Runtime, code: str) -> Card:
    """The card for a campaign, in every language of the flows, with the program's number."""
    found = campaigns.find(s, code)
    if found is None:
        raise CardError(f"There is no campaign {code.strip().upper()}: add it with peaceline campaign add.")
    number = rt.settings.card_number
    if number is None:
        raise CardError("Set PROGRAM_NUMBER (the number residents text) to print cards.")
    return make_card(number, found.code, rt.engine.flows.messages[M.CARD])


def make_card(number: str, code: str, texts: dict[str, str]) -> Card:
    """`texts`: the `card` message per language (English first), with {body} and {number} to fill."""
    body = f"HI {code}"
    shown = phonenumbers.format_number(phonenumbers.parse(number), phonenumbers.PhoneNumberFormat.NATIONAL)
    return Card(number, body, tuple(t.format(body=body, number=shown) for t in texts.values()))


def _lines(card: Card, measure: Callable[[str, float], float]) -> list[tuple[str, float, float]]:
    """(text, size in points, top in inches) for each line, wrapped to the text column."""
    out, top = [], 0.0
    for block in card.blocks:
        paragraphs = block.split("\n")
        for i, paragraph in enumerate(paragraphs):
            size = FIRST_PT if i < len(paragraphs) - 1 else FONT_PT
            for line in _wrap(paragraph, size, measure):
                out.append((line, size, top))
                top += size * LEAD / POINTS
        top += BLOCK_GAP
    return out


def _wrap(text: str, size: float, measure: Callable[[str, float], float]) -> list[str]:
    lines: list[str] = []
    for word in text.split():
        if lines and measure(f"{lines[-1]} {word}", size) <= TEXT_W:
            lines[-1] += f" {word}"
        else:
            lines.append(word)
    return lines


def _qr_png(card: Card, scale: int) -> bytes:
    out = io.BytesIO()
    segno.make(card.qr_payload, error="m").save(out, kind="png", scale=scale, border=4)
    return out.getvalue()


def _text_top(lines: list[tuple[str, float, float]]) -> float:
    """Centre the text vertically on the card."""
    height = lines[-1][2] + lines[-1][1] * LEAD / POINTS if lines else 0.0
    return max(PAD, (CARD_H - height) / 2)


def cards_pdf(card: Card) -> bytes:
    """A letter-size PDF of COLS by ROWS cards, with light cut lines."""
    pdf = FPDF(unit="in", format="letter")
    pdf.set_auto_page_break(False)
    pdf.set_margin(0)
    pdf.add_page()
    pdf.set_draw_color(200, 200, 200)
    pdf.set_line_width(0.005)

    def measure(text: str, size: float) -> float:
        pdf.set_font("Helvetica", "B" if size == FIRST_PT else "", size)
        return pdf.get_string_width(text)

    lines = _lines(card, measure)
    qr = io.BytesIO(_qr_png(card, scale=10))
    for row in range(ROWS):
        for col in range(COLS):
            x, y = MARGIN_X + col * CARD_W, MARGIN_Y + row * CARD_H
            pdf.rect(x, y, CARD_W, CARD_H)
            top = y + _text_top(lines)
            for text, size, at in lines:
                pdf.set_font("Helvetica", "B" if size == FIRST_PT else "", size)
                pdf.text(x + PAD, top + at + size / POINTS, text)
            pdf.image(qr, x=x + CARD_W - PAD - QR_SIDE, y=y + (CARD_H - QR_SIDE) / 2, w=QR_SIDE, h=QR_SIDE)
    return bytes(pdf.output())


def card_png(card: Card, dpi: int = PREVIEW_DPI) -> bytes:
    """One card of the sheet as a PNG: the PDF itself, rendered by pdfium (a library, not a program)."""
    page = pdfium.PdfDocument(cards_pdf(card))[0]
    image = page.render(scale=dpi / POINTS).to_pil()
    box = (MARGIN_X, MARGIN_Y, MARGIN_X + CARD_W, MARGIN_Y + CARD_H)
    out = io.BytesIO()
    image.crop(tuple(round(v * dpi) for v in box)).save(out, format="PNG", optimize=True)
    return out.getvalue()
