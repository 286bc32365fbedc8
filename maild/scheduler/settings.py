"""The ``scheduler:`` section (maild/scheduler/, docs/SCHEDULER.md)."""
from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Digest(_Strict):
    enabled: bool = True
    time: str = "08:00"  # local time (helpdesk.timezone) of the daily digest
    upcoming_days: int = Field(default=14, ge=1, le=366)  # next actions in the calendar attachment

    @field_validator("time")
    @classmethod
    def _time(cls, value: str) -> str:
        found = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", value.strip())
        if not found:
            raise ValueError("must be HH:MM, e.g. 08:00")
        return f"{int(found.group(1)):02d}:{found.group(2)}"


class Scheduler(_Strict):
    enabled: bool = True  # false: this instance never runs scheduled jobs (others may)
    poll_seconds: float = Field(default=30.0, gt=0)  # look at the tickets at least this often
    unaccepted_minutes: int = Field(default=30, ge=0)  # re-announce untaken new tickets; 0 = never
    digest: Digest = Digest()
    # Leader election among instances sharing one database.
    lease_seconds: float = Field(default=30.0, gt=0)  # SQLite lease; PostgreSQL uses an advisory lock
    leader_retry_seconds: float = Field(default=10.0, gt=0)  # how often a follower tries to take over
