"""The import graph of maild: no circle, ``maild.domain`` imports nothing above it, and
imports only run down the layers written at the top of ``docs/DESIGN.md``.

Every module is parsed with ``ast``; imports inside functions and under ``TYPE_CHECKING``
count like module-level ones (a circle through a function is still a circle).
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "maild"

# The layers, bottom first (docs/DESIGN.md). A module belongs to the layer of the longest
# prefix that names it. A module may import its own layer or any lower one.
DOMAIN, PURE, STORE, EDGES, ORCHESTRATION, ROOT_LAYER = range(6)
LAYERS: dict[str, int] = {
    "maild.domain": DOMAIN,
    # pure stages and the leaf helpers and config schemas they read
    "maild.text": PURE, "maild.logmask": PURE, "maild.loop": PURE, "maild.clock": PURE, "maild.secret": PURE,
    "maild.exitcodes": PURE, "maild.config": PURE,
    "maild.threading": PURE,
    "maild.ingest.parse": PURE, "maild.ingest.decode": PURE, "maild.ingest.htmltext": PURE,
    "maild.ingest.classify": PURE, "maild.ingest.identify": PURE, "maild.ingest.decide": PURE,
    "maild.ingest.imap_config": PURE, "maild.ingest.limits": PURE, "maild.ingest.lexicon": PURE,
    "maild.commands": PURE,  # grammar, keywords, settings, workflow, interpret, stage
    "maild.forms": PURE,  # spec, extract, match
    "maild.notify.rules": PURE, "maild.notify.engine": PURE, "maild.notify.sms_config": PURE,
    "maild.outbound.quotes": PURE, "maild.outbound.copies": PURE, "maild.outbound.attribution": PURE,
    "maild.outbound.policy": PURE, "maild.outbound.compose": PURE, "maild.outbound.templates": PURE,
    "maild.contacts.normalize": PURE, "maild.contacts.redact": PURE, "maild.contacts.csvfile": PURE,
    "maild.scheduler.settings": PURE,
    # the database
    "maild.store": STORE, "maild.views": STORE, "maild.calendar": STORE,
    # the other stores and the edges (listeners, IMAP, spool, the sender, SMS)
    "maild.forms.store": EDGES, "maild.commands.apply": EDGES, "maild.commands.queries": EDGES,
    "maild.commands.auth": EDGES,
    "maild.contacts": EDGES, "maild.catalog": EDGES,
    "maild.ingest": EDGES,  # smtp, imap, spool, attempts
    "maild.outbound": EDGES,  # outbox, sender, mailer, proof
    "maild.notify": EDGES,  # sms, agentcap, facts, deliver
    "maild.scheduler.leader": EDGES,
    "maild.service": EDGES,  # sd_notify, health probes, the metrics port, log set-up
    # orchestration: one mail's transaction, one job's run
    "maild.ingest.processor": ORCHESTRATION, "maild.outbound.plan": ORCHESTRATION,
    "maild.notify.planning": ORCHESTRATION, "maild.commands.mailbox": ORCHESTRATION,
    "maild.commands.control": ORCHESTRATION, "maild.scheduler": ORCHESTRATION,
    # the composition root and the command line
    "maild.cli_args": ROOT_LAYER, "maild.entry": ROOT_LAYER,
    "maild.app": ROOT_LAYER, "maild.workers": ROOT_LAYER, "maild.cli": ROOT_LAYER, "maild.cli_ingest": ROOT_LAYER, "maild.cli_db": ROOT_LAYER, "maild.__main__": ROOT_LAYER, "maild.cli_files": ROOT_LAYER,
    "maild.contacts.cli": ROOT_LAYER, "maild.scheduler.cli": ROOT_LAYER,
    "maild.cli_tickets": ROOT_LAYER, "maild.cli_output": ROOT_LAYER,
}



def _modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        if "migrations" in path.parts:
            continue  # Alembic scripts, run by Alembic only
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if name != "maild":  # the empty top package: every module is in it
            found[name] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The maild modules ``name`` imports anywhere in its text."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, module] if module else base)
            for alias in node.names:  # "from maild.domain import ops" imports maild.domain.ops
                out.add(f"{module}.{alias.name}" if f"{module}.{alias.name}" in MODULES else module)
    return {m for m in out if m in MODULES and m != name}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def layer(module: str) -> int:
    prefixes = [p for p in LAYERS if module == p or module.startswith(p + ".")]
    if not prefixes:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS and docs/DESIGN.md")
    return LAYERS[max(prefixes, key=len)]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def upward(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    return {(a, b) for a, targets in graph.items() for b in targets if layer(b) > layer(a)}


def test_the_checks_see_what_they_are_meant_to_see():
    # A circle through a function-level import, an upward arrow, a relative import.
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert upward({"maild.domain.mail": {"maild.store.models"}, "maild.app": {"maild.domain.mail"}}) == {
        ("maild.domain.mail", "maild.store.models")}
    assert "maild.domain.outcome" in GRAPH["maild.domain.mail"]
    assert "maild.domain.ops" in GRAPH["maild.domain.decision"]  # "from maild.domain import ops"
    assert "maild.store.db" in GRAPH["maild.cli_db"]  # imported inside the function


def test_every_module_has_a_layer():
    for name in MODULES:
        layer(name)


def test_no_import_circle():
    assert cycles(GRAPH) == []


def test_the_domain_imports_nothing_of_maild_above_it():
    outside = {(a, b) for a, targets in GRAPH.items() if a.startswith("maild.domain")
               for b in targets if not b.startswith("maild.domain")}
    assert outside == set()


def test_imports_only_run_down_the_layers():
    assert upward(GRAPH) == set()
