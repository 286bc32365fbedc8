"""What every ``maild`` command shares, kept light for the MTA's pipe (``maild ingest``, one
process per mail): the parser that exits 64 on a usage error, where the YAML file is and
where its relative paths point — without importing the config schema."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import NoReturn

from maild.exitcodes import EX_USAGE

ENV_CONFIG = "MAILD_CONFIG"
DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "config" / "maild.yaml"
CONFIG_HELP = "the YAML file (default: $MAILD_CONFIG or the embedded config/maild.yaml)"
DESCRIPTION = "E-mail-driven helpdesk daemon."


def config_path(explicit: str | None) -> Path:
    """The YAML file: ``--config``, else ``$MAILD_CONFIG``, else the embedded one (as
    :func:`maild.config.config_path`)."""
    return Path(explicit or os.environ.get(ENV_CONFIG) or DEFAULT_CONFIG)


def base_dir(path: Path) -> Path:
    """Where relative paths in ``path`` point (as :func:`maild.config.default_base_dir`):
    the file's directory; the embedded example's is the working directory."""
    resolved = path.resolve()
    return Path.cwd() if resolved == DEFAULT_CONFIG.resolve() else resolved.parent


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error exits 64 (EX_USAGE, sysexits.h) as mail tools do, not 2."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EX_USAGE, f"{self.prog}: error: {message}\n")


def command_of(argv: list[str]) -> str | None:
    """The command word (the first that is no option nor ``--config``'s value); None when an
    option other than ``--config`` comes first (``--help``, ``--version``, a typo)."""
    words = iter(argv)
    for word in words:
        if word == "--config":
            next(words, None)
        elif not word.startswith("-"):
            return word
        elif not word.startswith("--config="):
            return None
    return None
