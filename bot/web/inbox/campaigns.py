"""/inbox/campaigns: the campaigns, each with its printable cards and a picture of one card."""

from __future__ import annotations

from flask import Blueprint, Response, abort, render_template

from bot.casework import campaigns
from bot.casework.cards import Card, CardError, campaign_card, card_png, cards_pdf
from bot.web.context import runtime

bp = Blueprint("campaigns", __name__, url_prefix="/campaigns")


@bp.get("")
def listing() -> str:
    rt = runtime()
    with rt.db.sessions() as s:
        rows = campaigns.listing(s)
    return render_template("inbox/campaigns.html", campaigns=rows, now=rt.clock.now(), number=rt.settings.card_number)


@bp.get("/<code>/card.png")
def preview(code: str) -> Response:
    return Response(card_png(_card(code)), mimetype="image/png")


@bp.get("/<code>/cards.pdf")
def sheet(code: str) -> Response:
    made = _card(code)
    name = f"peaceline-cards-{made.body.split()[-1]}.pdf"
    return Response(
        cards_pdf(made), mimetype="application/pdf", headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


def _card(code: str) -> Card:
    rt = runtime()
    try:
        with rt.db.sessions() as s:
            return campaign_card(s, rt, code)
    except CardError:
        abort(404)
