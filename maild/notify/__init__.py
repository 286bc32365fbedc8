"""Notification triggers (SPEC §7, seed 001): events and YAML rules → one merged set of
recipients → outbox rows (e-mail) and SMS queue rows, inside the caller's transaction."""
