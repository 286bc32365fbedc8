"""Fixed-size lookup keys for mail header values.

A header value (a Message-ID, an outbox Message-ID) may be up to 998 characters of UTF-8,
close to 3 KB: more than a PostgreSQL btree entry may hold (2,704 bytes), so an index on
the value itself makes one customer's mail fail to insert. Every indexed header column
is therefore looked up by the SHA-256 of its value (64 hex characters, indexed) and then
compared on the full value, which is kept unindexed.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

HASH_LENGTH = 64


def header_hash(value: str | None) -> str | None:
    """The lookup key of a header value (None for None)."""
    if value is None:
        return None
    return hashlib.sha256(value.encode("utf-8", "surrogateescape")).hexdigest()


def hash_of(column: str) -> Callable[[Any], str | None]:
    """A column default computing the key from ``column``'s value in the same INSERT, so
    every writer (Core inserts with dicts, ORM objects) fills the key without knowing it."""

    def default(context: Any) -> str | None:
        return header_hash(context.get_current_parameters().get(column))

    return default
