"""Summarize a py-spy profile (``--format raw``: collapsed stacks) of the daemon as text.

Prints the top frames by self time and by cumulative time (a frame counted once per
sample however often it recurs), the samples per thread, and the samples grouped by what
the daemon was doing: each stack is read from the leaf towards the root and takes the
group of the first frame a rule names (``GROUPS``); generic frames (``re``, ``email``,
``codecs`` …) pass the question on to their caller, so the same ``email`` header code
counts as parsing under the parse stage and as composing under the sender.

    .venv/bin/python bench/profile_summary.py profile.txt --top 15
"""
from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

# (group, pattern on "function (path:line)"), tried in order on each frame, leaf first.
GROUPS: tuple[tuple[str, re.Pattern[str]], ...] = tuple((name, re.compile(pattern)) for name, pattern in (
    ("spool fsync", r"^(fsync|_fsync\w*|fsync_dir\w*) .*|ingest/spool\.py"),
    ("outbound SMTP", r"smtplib\.py|outbound/sender\.py|ssl\.py"),
    ("templates/compose", r"jinja2/|outbound/templates\.py|outbound/compose\.py|notify/deliver\.py|outbound/plan\.py"),
    ("DB", r"sqlalchemy/|sqlite3/|psycopg|/store/|outbound/outbox\.py|notify/agentcap\.py"),
    ("SMTP intake", r"aiosmtpd/|ingest/smtp\.py|ingest/limits\.py|asyncio/"),
    ("parse", r"mailparser/|ingest/parse\.py|ingest/decode\.py|ingest/htmltext\.py|ingest/classify\.py"),
    ("threading/decide", r"/threading/|ingest/decide\.py|ingest/identify\.py|commands/|notify/"),
    ("pipeline other", r"ingest/processor\.py|/maild/"),
    ("logging", r"logging/"),
))


@dataclass(frozen=True)
class Sample:
    thread: str
    frames: tuple[str, ...]  # root first
    count: int


def parse(lines: Iterable[str]) -> Iterator[Sample]:
    """Collapsed stacks, ``frame;frame;… count``; process and thread frames come first."""
    for line in lines:
        line = line.rstrip("\n")
        if not line:
            continue
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        thread = ""
        while frames and re.match(r"^(process|thread) ", frames[0]):
            head = frames.pop(0)
            thread = head if head.startswith("thread") else thread
        yield Sample(thread, tuple(frames), int(count))


def name(frame: str) -> str:
    """``function (path:line)`` → ``function (path)``: lines of one function are one frame."""
    return re.sub(r":\d+\)$", ")", frame)


def group_of(frames: tuple[str, ...]) -> str:
    for frame in reversed(frames):
        for group, pattern in GROUPS:
            if pattern.search(frame):
                return group
    return "other"


def summarize(samples: list[Sample], top: int) -> str:
    total = sum(s.count for s in samples) or 1
    own: Counter[str] = Counter()
    cumulative: Counter[str] = Counter()
    groups: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    by_thread: Counter[str] = Counter()
    for s in samples:
        if s.frames:
            own[name(s.frames[-1])] += s.count
        # Thread start-up frames sit under every sample and say nothing.
        for frame in {name(f) for f in s.frames if not re.search(r"\((threading|contextlib)\.py", f)}:
            cumulative[frame] += s.count
        group = group_of(s.frames)
        thread = re.sub(r"^thread \(\w+\):?\s*", "", s.thread).strip() or "?"
        groups[group] += s.count
        threads[thread] += s.count
        by_thread[f"{thread}: {group}"] += s.count
    out = [f"{total} samples"]

    def table(title: str, counter: Counter[str], limit: int) -> None:
        out.append(f"\n{title}")
        for key, count in counter.most_common(limit):
            out.append(f"  {100 * count / total:5.1f}%  {key}")

    table("by thread", threads, 20)
    table("grouped by what the daemon does (leaf first, generic frames ask their caller)", groups, 20)
    table("thread: group", by_thread, 25)
    table(f"top {top} self time", own, top)
    table(f"top {top} cumulative (thread start-up frames left out)", cumulative, top)
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("profile")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    with open(args.profile, encoding="utf-8", errors="replace") as f:
        print(summarize(list(parse(f)), args.top))


if __name__ == "__main__":
    sys.exit(main())
