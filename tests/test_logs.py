"""No full phone number and no message body in any log line of a whole conversation."""

from __future__ import annotations

import logging

from bot.logs import MaskingFilter
from bot.messaging.phones import mask


def test_a_whole_conversation_logs_no_number_and_no_body(phone, rt, caplog):
    caplog.handler.addFilter(MaskingFilter())
    texts = ["hi", "I need food", "64124", "talk to a person", "STOP"]
    with caplog.at_level(logging.DEBUG):
        for text in texts:
            phone.text(text)
        rt.outbound.send(1, "Our caseworker Maria will call you", "caseworker")
    lines = [caplog.handler.format(r) for r in caplog.records]
    assert lines, "the conversation must be logged"
    joined = "\n".join(lines)
    assert "8165550123" not in joined
    for body in ["I need food", "talk to a person", "Our caseworker Maria"]:
        assert body not in joined


def test_the_mask_keeps_area_code_and_last_four():
    assert mask("+18165550123") == "+1816•••0123"
    assert mask(None) == "-"


def test_the_filter_masks_numbers_that_slip_into_a_record():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "sent to %s", ("+18165550123",), None)
    MaskingFilter().filter(record)
    assert record.getMessage() == "sent to +1816•••0123"
