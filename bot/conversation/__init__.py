"""The conversation: flows as data, the pure engine, matching words, crisis words, SMS segments. No I/O."""
