"""The ``maild`` console script (and ``python -m maild``).

An MTA's pipe runs ``maild ingest`` once per delivered mail: that command goes straight to
:mod:`maild.cli_ingest`, without loading the rest of the command line; every other one
goes to :mod:`maild.cli`.
"""
from __future__ import annotations

import sys

from maild.cli_args import command_of


def main() -> int:
    words = sys.argv[1:]
    if command_of(words) == "ingest":
        from maild.cli_ingest import main as ingest

        return ingest(words)
    from maild.cli import main as full

    return full(words)
