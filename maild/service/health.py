"""Is maild able to do its work? Each part answers a yes/no probe; all must say yes.

The probes are cheap and side-effect free (a thread alive, the event loop running,
``SELECT 1``), so the watchdog and ``GET /healthz`` may call them every few seconds.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

log = logging.getLogger("maild.service")

Probe = Callable[[], bool]


@dataclass(frozen=True)
class Health:
    parts: dict[str, bool]

    @property
    def ok(self) -> bool:
        return all(self.parts.values())

    @property
    def failing(self) -> list[str]:
        return [name for name, alive in self.parts.items() if not alive]

    def as_json(self) -> dict[str, object]:
        return {"status": "ok" if self.ok else "failing", "parts": self.parts, "failing": self.failing}


def check(probes: Mapping[str, Probe]) -> Health:
    """Run every probe; one that raises counts as not alive (and is logged once here)."""
    parts = {}
    for name, probe in probes.items():
        try:
            parts[name] = bool(probe())
        except Exception as exc:  # a probe must never take the health endpoint down with it
            log.warning("health probe %s failed: %s", name, exc)
            parts[name] = False
    return Health(parts)
