"""Measure: does maild recognise automatic mail, and leave customers alone?

A labelled set built at test time: the corpus in ../shared/corpus (its DSN/ARF/MDN/auto-reply
files as tagged in _meta/features.json, read where they lie, never copied) plus the
automatic and customer mails of :mod:`automatic_samples`. Prints precision and recall
(``pytest -s``) and asserts: at most 1% of automatic mail opens a ticket, none of it is
answered, and no ordinary mail is taken for automatic.
"""
from __future__ import annotations

import email
import email.utils
import json
import re
from email.policy import compat32

import pytest

from automatic_samples import RETURNED, all_samples, customer_address
from conftest import CORPUS, HELPDESK, Env
from maild.ingest.classify import classify
from maild.ingest.parse import parse
from maild.domain.mail import QuarantineError
from maild.store.models import OutboxRow

AUTO_TAGS = {"dsn", "arf", "mdn", "autoreply"}
# Read by hand. Tagged "autoreply" by a word match, but spam a person sent: ordinary mail.
NOT_AUTOMATIC = {"apache-spamassassin/t/data/spam/004", "apache-spamassassin/t/data/spam/007"}
# Read by hand. Automatic, though the tagger missed them: MTA bounces, auto-generated
# incident notices (Auto-Submitted: auto-generated), a Polish auto-reply, null-sender spam.
ALSO_AUTOMATIC = {
    "apache-james-mime4j/core/src/test/resources/mimetools-testmsgs/badbound.msg",
    "mailgun-flanker/tests/fixtures/messages/bounce/broken-mime.eml",
    "mailgun-flanker/tests/fixtures/messages/bounce/gmail-invalid-address.eml",
    "mailgun-flanker/tests/fixtures/messages/bounce/gmail-no-dns.eml",
    "php-mime-mail-parser/tests/mails/issue212",
    "zammad/test/data/mail/mail019.box", "zammad/test/data/mail/mail035.box", "zammad/test/data/mail/mail052.box",
    "zammad/test/data/mail/mail089.box", "zammad/test/data/mail/mail090.box",
}
# Notification robots by the definition: mail From a no-reply address.
_NO_REPLY = re.compile(r"(^|[-_.])(no-?reply|do-?not-?reply|do_not_reply)[\w.-]*@", re.I)
OWN = frozenset({HELPDESK})


def _from_no_reply(raw: bytes) -> bool:
    """The label, read with the stdlib rather than maild's parser: From a no-reply address."""
    try:
        value = email.message_from_bytes(raw, policy=compat32).get("from")
        return any(_NO_REPLY.search(addr) for _, addr in email.utils.getaddresses([str(value or "")]))
    except Exception:
        return False


def corpus() -> list[tuple[str, bytes, bool]]:
    if not (CORPUS / "_meta" / "features.json").exists():
        pytest.skip(f"no corpus at {CORPUS}")
    features = json.loads((CORPUS / "_meta" / "features.json").read_text(encoding="utf-8"))
    out = []
    for rel, info in sorted(features.items()):
        tags = set(info["tags"])
        if "no_headers" in tags or "mbox_multi" in tags:
            continue  # body-only reply snippets and mailboxes are not single mails
        raw = (CORPUS / rel).read_bytes()
        automatic = (bool(tags & AUTO_TAGS) and rel not in NOT_AUTOMATIC) or rel in ALSO_AUTOMATIC \
            or _from_no_reply(raw)
        out.append((rel, raw, automatic))
    return out


def labelled() -> list[tuple[str, bytes, bool]]:
    return corpus() + [(f"sample:{s.name}", s.raw, s.automatic) for s in all_samples()]


def test_classifier_precision_and_recall() -> None:
    tp = fp = fn = tn = 0
    missed, wrong = [], []
    for name, raw, automatic in labelled():
        try:
            result = classify(parse(raw), OWN, HELPDESK)
        except QuarantineError:
            continue
        said = not result.opens_ticket
        tp += automatic and said
        fn += automatic and not said
        fp += said and not automatic
        tn += not automatic and not said
        (missed if automatic and not said else wrong if said and not automatic else []).append(name)
    precision, recall = tp / max(1, tp + fp), tp / max(1, tp + fn)
    print(f"\nautomatic-mail classifier: {tp + fn} automatic, {fp + tn} ordinary; tp={tp} fp={fp} fn={fn} tn={tn}; "
          f"precision={precision:.4f} recall={recall:.4f}; missed={missed} wrong={wrong}")
    assert tp + fn >= 100
    assert fn <= 0.01 * (tp + fn), missed
    assert fp == 0, wrong


def test_samples_that_return_a_mail_name_it() -> None:
    returning = [s for s in all_samples() if s.returns]
    found = [s.name for s in returning if RETURNED in classify(parse(s.raw), OWN, HELPDESK).bounced_message_ids]
    print(f"\nreturned Message-ID found in {len(found)}/{len(returning)} bounces and reports")
    assert len(found) == len(returning), sorted({s.name for s in returning} - set(found))


def test_pipeline_opens_no_ticket_and_answers_no_automatic_mail(sqlite_env: Env) -> None:
    automatic = [(n, r) for n, r, a in labelled() if a]
    ordinary = [s for s in all_samples() if not s.automatic]
    opened = []
    for name, raw in automatic:
        if sqlite_env.process(raw).status == "created":
            opened.append(name)
    with sqlite_env.app.db.read() as session:
        to_machines = [(r.to_addr, r.kind) for r in session.query(OutboxRow).filter(OutboxRow.kind != "notify")]
    for sample in ordinary:
        assert sqlite_env.process(sample.raw).status == "created", sample.name
    with sqlite_env.app.db.read() as session:
        acks = {r.to_addr for r in session.query(OutboxRow).filter(OutboxRow.kind == "ack")}
    print(f"\npipeline: {len(opened)}/{len(automatic)} automatic mails opened a ticket {opened}; "
          f"{len(to_machines)} automatic replies to them; {len(acks)}/{len(ordinary)} customers acknowledged")
    assert len(opened) <= 0.01 * len(automatic), opened
    assert to_machines == []
    assert len(acks) == len(ordinary), sorted(
        s.name for s in ordinary if customer_address(s.name.removeprefix("customer-")) not in acks)
