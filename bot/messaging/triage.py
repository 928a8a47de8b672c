"""Where a referral sits in the inbox queue: tier first, then urgent, then oldest.

The tier says who can stand behind a referral. A text from a phone (or a web visitor whose number
was confirmed) is a person; a web-chat visitor could be anyone, and many referrals from one
address in an hour may be one person flooding the queue, so those rank below. Nothing is ever
dropped: a lower tier is still in the queue, still counted, and still got the crisis answer.
"""

from __future__ import annotations

from datetime import datetime
from enum import IntEnum

from sqlalchemy.orm import Session

from bot.config import Settings
from bot.storage import counts
from bot.storage.models import Referral, Resident

WEB_REFERRALS = "web.referral"  # rate_counts scope: new web-chat referrals per address per hour


class Tier(IntEnum):
    TRUSTED = 0  # SMS, or a web visitor with a confirmed number
    WEB = 1  # a web-chat visitor with no confirmed number
    CROWDED = 2  # a web-chat visitor past WEB_REFERRALS_PER_HOUR from one address


# The queue's one order; a later risk score goes after the tier, here and nowhere else.
QUEUE_ORDER = (Referral.tier, Referral.urgent.desc(), Referral.created_at, Referral.id)


def new_referral_tier(s: Session, settings: Settings, resident: Resident, client: str | None, now: datetime) -> Tier:
    """The tier of a referral being opened; a web referral also counts against its address's hour."""
    if resident.channel != "web" or resident.linked_resident_id is not None:  # a proved number
        return Tier.TRUSTED
    if client is None:  # no address to count against (not through the web page)
        return Tier.WEB
    hour = now.replace(minute=0, second=0, microsecond=0)
    seen = counts.bump(s, WEB_REFERRALS, counts.keyed(settings.secret_key, "address", client), hour)
    return Tier.CROWDED if seen > settings.web_referrals_per_hour else Tier.WEB
