"""The caseworkers' work: cases and notes, audit events, reports, retention and the login lockout."""
