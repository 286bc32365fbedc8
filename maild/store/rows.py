"""What a Core statement hands back, typed: rows touched, the key of the row inserted.

``Session.execute`` is typed as returning a plain ``Result``; the INSERT/UPDATE/DELETE
statements maild runs always return a cursor result, whose ``rowcount`` says how many rows
a guarded update won (the outbox claims and marks depend on it).
"""
from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult, Result


def rowcount(result: Result[Any]) -> int:
    """How many rows an UPDATE or DELETE touched."""
    return cast("CursorResult[Any]", result).rowcount


def new_id(result: Result[Any]) -> int:
    """The key an ``INSERT ... RETURNING id`` produced."""
    return int(result.scalar_one())
