"""Where log lines go and what they look like: ``logging.level`` and ``logging.format``.

maild's own loggers (``maild.*``) log at ``logging.level``; other libraries' at
``logging.libraries`` (WARNING by default): aiosmtpd alone otherwise writes a line per
SMTP command, addresses included, three quarters of the log of a busy listener.
``format: json`` writes one JSON object per line through python-json-logger.
"""
from __future__ import annotations

import logging
import sys
from typing import TextIO

from maild.config import Config

# The libraries maild uses that log on their own.
LIBRARY_LOGGERS = ("mail.log", "aiosmtpd", "apscheduler", "alembic", "imapclient", "asyncio", "sqlalchemy",
                   "urllib3", "dkim")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure(config: Config, stream: TextIO | None = None) -> logging.Handler:
    """Replace the root logger's handlers with one stream handler; return it."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter(config.logging.format))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, config.log_level_name))
    logging.getLogger("maild").setLevel(getattr(logging, config.log_level_name))
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(getattr(logging, config.logging.libraries))
    return handler


def formatter(kind: str) -> logging.Formatter:
    if kind == "json":
        from pythonjsonlogger.json import JsonFormatter

        return JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s",
                             rename_fields={"asctime": "time", "levelname": "level", "name": "logger"})
    return logging.Formatter(TEXT_FORMAT)
