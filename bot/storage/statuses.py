"""The values of the status and outcome columns: one home for each, used everywhere."""

from __future__ import annotations

from enum import StrEnum


class MessageStatus(StrEnum):
    """messages.status: where a text is (Twilio's own statuses, and the line's)."""

    RECEIVED = "received"  # an inbound text
    LOOP_GUARD = "loop_guard"  # an inbound text stored but not answered (too many at once)
    SCHEDULED = "scheduled"
    ACCEPTED = "accepted"
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    READ = "read"
    LOGGED = "logged"  # no Twilio account: written to the log
    UNKNOWN = "unknown"  # Twilio timed out: the text may or may not have gone out
    SKIPPED_OPTED_OUT = "skipped_opted_out"
    HELD_CONTACT_PREFERENCE = "held_contact_preference"  # "don't text me first"


class FollowUpStatus(StrEnum):
    """follow_ups.status."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    LOGGED = "logged"
    FAILED = "failed"
    UNKNOWN = "unknown"
    SKIPPED_OPTED_OUT = "skipped_opted_out"
    SKIPPED_NO_NUMBER = "skipped_no_number"  # a web visitor who proved no number (or a purged one)
    HELD_CONTACT_PREFERENCE = "held_contact_preference"
    CANCELLED = "cancelled"


class ReferralStatus(StrEnum):
    """referrals.status, in the order a case moves through them."""

    NEW = "new"
    CLAIMED = "claimed"
    CONTACTED = "contacted"
    CLOSED = "closed"


class Outcome(StrEnum):
    """referrals.outcome: how a closed case ended."""

    GOT_HELP = "got_help"
    COULD_NOT_GET_HELP = "could_not_get_help"
    NO_LONGER_NEEDED = "no_longer_needed"
    COULD_NOT_REACH = "could_not_reach"
    REFERRED_ELSEWHERE = "referred_elsewhere"
