"""``maild ingest``: the MTA's pipe transport and replays by hand.

By default the mail goes to the spool for the running daemon (:mod:`maild.ingest.pipe`);
``--now`` processes it in this process and prints the outcome, for replays. Either way
nothing that is not the mail's own fault exits other than 75 (EX_TEMPFAIL: the MTA keeps
the mail and retries), and stderr carries one fixed line an MTA may quote in a bounce;
what went wrong goes to syslog (facility mail) and, with ``--verbose``, to stderr.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from maild.cli_args import CONFIG_HELP, DESCRIPTION, Parser, base_dir, config_path
from maild.exitcodes import EX_DATAERR, EX_OK, EX_TEMPFAIL
from maild.ingest.pipe import TEMPORARY, PipeError, PipeEnvelope, Result, deliver, envelope_of, prepare, read_settings

# Run once per delivered mail: nothing here imports the config schema, the database layer
# or logging (loaded only for --now and for a failure's syslog line); bench/pipe.py times it.


def add_ingest(sub: Any) -> None:
    """The ``ingest`` command, in ``maild``'s full parser and in the pipe's own."""
    ingest = sub.add_parser("ingest", help="take one mail from FILE or stdin into the spool for the daemon "
                                           "(exit 0 kept, 67 unknown recipient, 75 retry later)")
    ingest.add_argument("file", nargs="?", help="the mail (default: standard input)")
    ingest.add_argument("--channel", default="pipe", help="the channel name recorded with the mail (default pipe)")
    ingest.add_argument("-f", "--sender", help="the envelope sender (default: $SENDER, else the Return-Path header)")
    ingest.add_argument("-r", "--recipient", help="the envelope recipient (default: $ORIGINAL_RECIPIENT/"
                                                  "$RECIPIENT, else the Delivered-To/X-Original-To header)")
    ingest.add_argument("--now", action="store_true",
                        help="process the mail in this process and print the outcome (replays), not via the daemon")
    ingest.add_argument("-v", "--verbose", action="store_true", help="print failure details on stderr")
    ingest.add_argument("--config", default=argparse.SUPPRESS, help=CONFIG_HELP)


def main(argv: Sequence[str]) -> int:
    """``maild [--config F] ingest …``, parsed by a parser that knows this command alone."""
    parser = Parser(prog="maild", description=DESCRIPTION)
    parser.add_argument("--config", help=CONFIG_HELP)
    add_ingest(parser.add_subparsers(metavar="COMMAND"))
    args = parser.parse_args(list(argv))
    path = config_path(args.config)
    return ingest(args, path, base_dir(path))


def ingest(args: argparse.Namespace, path: Path, base_dir: Path) -> int:
    """``base_dir``: where the file's relative paths point (its directory), whatever the MTA's
    working directory is, so the spool is the one the daemon reads."""
    try:
        raw = Path(args.file).read_bytes() if args.file else sys.stdin.buffer.read()
    except OSError as exc:
        if args.file:  # a replay by hand: the admin's own file
            print(f"maild: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
            return EX_DATAERR
        return _report(Result(EX_TEMPFAIL, TEMPORARY, f"cannot read the mail from stdin: {exc}"), args.verbose)
    envelope = envelope_of(raw, args.sender, args.recipient, os.environ)
    if args.now:
        return _now(raw, envelope, args, path)
    try:
        settings = read_settings(path, base_dir)
    except PipeError as exc:
        return _report(Result(EX_TEMPFAIL, TEMPORARY, str(exc)), args.verbose)
    try:
        return _report(deliver(raw, settings, envelope, args.channel), args.verbose)
    except Exception as exc:  # noqa: BLE001 - whatever it is, the MTA must keep the mail
        return _report(Result(EX_TEMPFAIL, TEMPORARY, f"{type(exc).__name__}: {exc}"), args.verbose)


def _now(raw: bytes, envelope: PipeEnvelope, args: argparse.Namespace, path: Path) -> int:
    """Process in this process: the whole config, the database, the pipeline."""
    import logging

    try:
        from maild.app import App
        from maild.clock import utc_now
        from maild.config import load_config

        config = load_config(path)
        logging.basicConfig(level=getattr(logging, config.log_level_name),
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
        app = App(config)
        data, refusal = prepare(raw, envelope, app.recipients())
        if refusal is not None:
            return _report(refusal, args.verbose)
        assert data is not None
        outcome = app.processor.process(data, args.channel, utc_now())
    except Exception as exc:  # noqa: BLE001 - config, schema, database: the MTA keeps the mail and retries
        return _report(Result(EX_TEMPFAIL, TEMPORARY, f"{type(exc).__name__}: {exc}"), args.verbose)
    print(f"{outcome.status} ticket={outcome.ticket_id or '-'} {outcome.message_id or ''} {outcome.reason}".rstrip())
    return EX_OK


def _report(result: Result, verbose: bool) -> int:
    if result.detail and (result.code != EX_OK or result.message):
        _syslog(result.code != EX_OK, result.detail)
    if result.message:
        print(result.message, file=sys.stderr)
    if verbose and result.detail:
        print(f"maild: {result.detail}", file=sys.stderr)
    return result.code


def _syslog(warning: bool, text: str) -> None:
    """The details of a failed delivery, where the admin looks and no bounce goes."""
    import logging
    from logging.handlers import SysLogHandler

    if not Path("/dev/log").exists():
        return
    try:
        handler = SysLogHandler("/dev/log", facility=SysLogHandler.LOG_MAIL)
    except OSError:
        return
    handler.setFormatter(logging.Formatter("maild-ingest[%(process)d]: %(message)s"))
    log = logging.getLogger("maild.ingest")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.log(logging.WARNING if warning else logging.INFO, "%s", text)
    finally:
        log.removeHandler(handler)
        handler.close()
