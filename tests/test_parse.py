"""Parse stage: golden fixtures (tests/fixtures/mail/*.eml + .yaml) and targeted cases."""
from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from maild.domain.mail import ParsedMail, QuarantineError
from maild.ingest.decode import decode_bytes, decode_words, safe_filename
from maild.ingest.htmltext import html_to_text
from maild.ingest.parse import parse

FIXTURES = Path(__file__).parent / "fixtures" / "mail"
CASES = sorted(p.stem for p in FIXTURES.glob("*.yaml"))


def load(name: str) -> tuple[ParsedMail, dict[str, Any]]:
    expected = yaml.safe_load((FIXTURES / f"{name}.yaml").read_text(encoding="utf-8")) or {}
    return parse((FIXTURES / f"{name}.eml").read_bytes()), expected


@pytest.mark.parametrize("name", CASES)
def test_fixture(name: str) -> None:
    mail, exp = load(name)
    checks: dict[str, Any] = {
        "subject": lambda: mail.subject,
        "from": lambda: mail.from_.email if mail.from_ else None,
        "from_name": lambda: mail.from_.name if mail.from_ else None,
        "message_id": lambda: mail.message_id,
        "synthetic_message_id": lambda: mail.synthetic_message_id,
        "date": lambda: mail.date.isoformat() if mail.date else None,
        "body_exact": lambda: mail.body_text,
        "attachments": lambda: [a.filename for a in mail.attachments],
        "inline_attachments": lambda: [a.filename for a in mail.attachments if a.inline],
        "in_reply_to": lambda: list(mail.in_reply_to),
        "references": lambda: list(mail.references),
        "delivered_to": lambda: list(mail.delivered_to),
        "has_html": lambda: mail.body_html is not None,
    }
    for key, actual in checks.items():
        if key in exp:
            assert actual() == exp[key], key
    for fragment in exp.get("body_contains", []):
        assert fragment in mail.body_text
    for fragment in exp.get("body_not_contains", []):
        assert fragment not in mail.body_text
    if "message_id_suffix" in exp:
        assert mail.message_id.endswith(exp["message_id_suffix"])
    assert "\r" not in mail.body_text


def test_every_fixture_has_an_expectation() -> None:
    assert {p.stem for p in FIXTURES.glob("*.eml")} == set(CASES)


# --- Message-ID --------------------------------------------------------------------------


def test_synthetic_message_id_is_deterministic() -> None:
    raw = (FIXTURES / "missing_message_id.eml").read_bytes()
    first, again = parse(raw), parse(raw)
    other = parse(raw.replace(b"antigo", b"velho"))
    assert first.synthetic_message_id and first.message_id == again.message_id
    assert first.message_id != other.message_id
    assert first.message_id.startswith("<") and first.message_id.endswith("@maild.invalid>")
    assert len(first.message_id) == len("<@maild.invalid>") + 32


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Message-ID: <a@b>", "<a@b>"),
        ("Message-ID:   <a@b>  (comment)", "<a@b>"),
        ("Message-Id:\n <folded@b>", "<folded@b>"),
    ],
)
def test_message_id_normalized(header: str, expected: str) -> None:
    mail = parse(f"From: a@b.example\n{header}\n\nx\n".encode())
    assert (mail.message_id, mail.synthetic_message_id) == (expected, False)


def test_empty_message_id_is_synthetic() -> None:
    assert parse(b"From: a@b.example\nMessage-ID:\n\nx\n").synthetic_message_id


def test_references_tolerate_junk() -> None:
    raw = b"From: a@b.example\nIn-Reply-To: junk <x@y> (Mail from foo)\nReferences: <1@a>\n\tgarbage <2@a>,<3@a> <1@a>\n\nx"
    mail = parse(raw)
    assert mail.in_reply_to == ("<x@y>",)
    assert mail.references == ("<1@a>", "<2@a>", "<3@a>")


# --- headers and addresses ---------------------------------------------------------------


def test_addresses_groups_and_junk() -> None:
    raw = (
        b"From: \"Silva, Maria\" <Maria@Example.COM>\n"
        b"To: undisclosed-recipients:;, =?UTF-8?Q?Jos=C3=A9?= <jose@x.example>, nobody\n"
        b"Cc: a@x.example, B <b@x.example>\nCc: c@x.example\n"
        b"Delivered-To: Support@Support.example.com\nX-Original-To: support@support.example.com\n\nx"
    )
    mail = parse(raw)
    assert mail.from_ is not None and (mail.from_.name, mail.from_.email) == ("Silva, Maria", "maria@example.com")
    assert [(a.name, a.email) for a in mail.to] == [("José", "jose@x.example")]
    assert [a.email for a in mail.cc] == ["a@x.example", "b@x.example", "c@x.example"]
    assert mail.delivered_to == ("support@support.example.com",)


def test_headers_unfolded_decoded_first_occurrence() -> None:
    raw = b"From: a@b.example\nSubject: one\n two\nX-Thing: =?utf-8?q?caf=C3=A9?=\nX-Thing: second\n\nx"
    mail = parse(raw)
    assert mail.subject == "one two"
    assert mail.header("X-THING") == "café"


def test_bad_date_is_none_and_good_date_is_utc() -> None:
    assert parse(b"From: a@b.example\nDate: yesterday-ish\n\nx").date is None
    date = parse(b"From: a@b.example\nDate: Tue, 1 Mar 2022 10:00:00 -0300\n\nx").date
    assert date is not None and date.isoformat() == "2022-03-01T13:00:00+00:00"


# --- bodies ------------------------------------------------------------------------------

PATHS = "C:\\Users\\anna\\new_folder \\t \\u00e9 \\n \\x41 \\\\server\n"


@pytest.mark.parametrize("cte", ["7bit", "quoted-printable", "base64"])
def test_backslashes_survive_every_transfer_encoding(cte: str) -> None:
    data = PATHS.encode()
    body = {
        "7bit": data,
        "quoted-printable": data.replace(b"=", b"=3D"),
        "base64": base64.encodebytes(data),
    }[cte]
    raw = b"From: a@b.example\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: " + cte.encode()
    assert parse(raw + b"\n\n" + body).body_text == PATHS


def test_crlf_normalized_and_nul_replaced() -> None:
    mail = parse(b"From: a@b.example\r\nSubject: s\r\n\r\nline1\r\nline\x002\r\n")
    assert mail.body_text == "line1\nline\ufffd2\n"


@pytest.mark.parametrize(
    ("data", "charset", "expected", "defect"),
    [
        ("Olá".encode("utf-8"), "utf-8", "Olá", False),
        ("Olá".encode("latin-1"), "utf-8", "Olá", True),  # declared wrong → cp1252
        ("Olá".encode("utf-8"), "x-no-such-charset", "Olá", True),
        ("Olá".encode("utf-8"), "us-ascii", "Olá", True),  # 8-bit in us-ascii: utf-8 fits
        ("Olá".encode("utf-8"), None, "Olá", False),  # undeclared utf-8 is no defect
        ("“q”".encode("cp1252"), "iso-8859-1", "“q”", False),  # latin-1 label, cp1252 bytes
        (b"\x81\x8d", None, "\x81\x8d", True),  # not utf-8, not cp1252 → latin-1
        (b"abc", "base64", "abc", True),  # a codec, but not a text encoding
    ],
)
def test_charset_fallbacks(data: bytes, charset: str | None, expected: str, defect: bool) -> None:
    defects: list[str] = []
    assert decode_bytes(data, charset, defects) == expected
    assert bool(defects) == defect


def test_wrong_charset_in_a_mail_is_a_defect_not_an_error() -> None:
    raw = b"From: a@b.example\nContent-Type: text/plain; charset=utf-8\n\nA\xe7\xe3o\n"
    mail = parse(raw)
    assert mail.body_text == "Ação\n" and mail.defects


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=?UTF-8?Q?Ol=C3=A1?= mundo", "Olá mundo"),
        ("=?ISO-8859-1?B?U29saWNpdGHn428=?=", "Solicitação"),
        ("=?utf-8?q?a?= =?utf-8?q?b?=", "ab"),  # whitespace between words dropped
        ("x =?utf-8?q?a?= y", "x a y"),
        ("=?utf-8?b?not base64!?=", "=?utf-8?b?not base64!?="),
        ("=?x-unknown?q?caf=C3=A9?=", "café"),
        ("=?utf-8*pt?q?ol=C3=A1?=", "olá"),  # RFC 2231 language tag
    ],
)
def test_encoded_words(value: str, expected: str) -> None:
    assert decode_words(value) == expected


def test_html_to_text() -> None:
    html = (
        "<html><head><title>T</title><style>b{}</style></head><body>"
        "<h1>Title</h1><p>One&nbsp;&amp; two</p><div>a<br>b</div>"
        "<ul><li>x</li><li>y</li></ul><a href='https://e.example/'>link</a>"
        "<script>evil()</script><table><tr><td>c1</td><td>c2</td></tr></table></body></html>"
    )
    assert html_to_text(html) == "Title\n\nOne & two\n\na\nb\n\n- x\n- y\nlink (https://e.example/)\n\nc1 c2"
    assert html_to_text("<p>unclosed <b>bold") == "unclosed bold"
    assert html_to_text("") == ""


# --- attachments ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\evil\\x.exe", "x.exe"),
        ("..", "attachment-3.pdf"),
        ("", "attachment-3.pdf"),
        ("a\x00b\x1fc\u202egpj.exe", "abcgpj.exe"),
        ("...hidden..txt", "hidden.txt"),
        ("ADS.txt:stream", "ADS.txt_stream"),
        ("relatório final.pdf", "relatório final.pdf"),
    ],
)
def test_safe_filename(name: str, expected: str) -> None:
    assert safe_filename(name, 3, "application/pdf") == expected


def test_long_filename_keeps_extension() -> None:
    name = safe_filename("x" * 500 + ".docx", 1, "application/octet-stream")
    assert len(name) <= 200 and name.endswith(".docx")
    assert safe_filename("", 2, "application/x-unknown-thing") == "attachment-2.bin"


def test_unsafe_attachment_names_in_a_mail() -> None:
    raw = (
        b'From: a@b.example\nContent-Type: multipart/mixed; boundary="b"\n\n--b\nContent-Type: text/plain\n\nhi\n'
        b'--b\nContent-Type: application/octet-stream\nContent-Disposition: attachment; filename="C:\\\\evil\\\\x.exe"\n\nMZ\n'
        b'--b\nContent-Type: image/png\nContent-Disposition: attachment; filename="../../etc/passwd"\n\nP\n'
        b"--b\nContent-Type: image/png\nContent-ID: <img1@x>\n\nP\n--b--\n"
    )
    mail = parse(raw)
    names = [a.filename for a in mail.attachments]
    assert names[:2] == ["x.exe", "passwd"] and names[2] == "attachment-3.png"
    assert mail.attachments[0].payload == b"MZ"
    assert mail.attachments[2].inline and mail.attachments[2].content_id == "img1@x"
    assert mail.body_text == "hi"


# --- robustness ----------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [b"", b"   \r\n\r\n", b"\x00\x01\x02\xff binary junk", b"just a body line\nand another\n"])
def test_quarantine_only_without_usable_headers(raw: bytes) -> None:
    with pytest.raises(QuarantineError):
        parse(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b"Subject: only a subject\n\n",
        b"From: a@b.example\nContent-Type: multipart/mixed; boundary=\"never\"\n\nno parts at all",
        b"From: a@b.example\nContent-Type: multipart/mixed\n\n--x\n\nno boundary",
        b"From: a@b.example\nContent-Type: text/plain\nContent-Transfer-Encoding: base64\n\n!!!not base64***",
        b"From: a@b.example\nContent-Type: text/plain; charset=\"\"\n\nx",
        b"From: a@b.example\nContent-Type: ;;;\nDate: 99 Foo 99999 99:99\n\nx",
        b"From: a@b.example\nContent-Type: message/rfc822\n\n",
        b"---- gateway preamble ----\nFrom: a@b.example\nSubject: s\nbroken folding line\n\nbody",
        b"\xef\xbb\xbfFrom: bom@b.example\n\nx",
        b"From  : John <john@b.example>\nSubject : obsolete\n\nx",
    ],
)
def test_broken_mail_still_parses(raw: bytes) -> None:
    mail = parse(raw)
    assert mail.message_id


def test_repaired_header_block() -> None:
    mail = parse(b"---- gateway preamble ----\nFrom: a@b.example\nSubject: s\nbroken folding line\n\nbody")
    assert mail.from_ is not None and mail.from_.email == "a@b.example"
    assert mail.subject == "s broken folding line"


def test_huge_address_list_and_many_parts_are_fast() -> None:
    to = ", ".join(f"User {i} <user{i}@x.example>" for i in range(4096)).encode()
    parts = b"".join(b"--b\nContent-Type: text/x-thing; name=\"f%d.txt\"\n\npart\n" % i for i in range(3000))
    raw = b"From: a@b.example\nTo: " + to + b'\nContent-Type: multipart/mixed; boundary="b"\n\n' + parts + b"--b--\n"
    start = time.perf_counter()
    mail = parse(raw)
    assert time.perf_counter() - start < 5
    assert len(mail.to) == 4096 and len(mail.attachments) == 3000


def test_inline_forward_is_attachment_and_body() -> None:
    raw = (
        b'From: a@b.example\nContent-Type: multipart/mixed; boundary="b"\n\n--b\nContent-Type: text/plain\n\nsee below\n'
        b"--b\nContent-Type: message/rfc822\n\nFrom: c@d.example\nSubject: Original: text\n\nthe original\n--b--\n"
    )
    mail = parse(raw)
    assert mail.body_text == "see below\n\nthe original"
    assert [(a.filename, a.content_type) for a in mail.attachments] == [("Original_ text.eml", "message/rfc822")]
    assert b"the original" in mail.attachments[0].payload


def test_empty_plain_part_falls_back_to_html() -> None:
    raw = (
        b'From: a@b.example\nContent-Type: multipart/alternative; boundary="b"\n\n--b\nContent-Type: text/plain\n\n\n'
        b"--b\nContent-Type: text/html\n\n<p>real <i>text</i></p>\n--b--\n"
    )
    assert parse(raw).body_text == "real text"


def test_named_inline_text_is_body_when_there_is_no_other() -> None:
    raw = b'From: a@b.example\nContent-Type: text/plain\nContent-Disposition: inline; filename="note.txt"\n\nnote\n'
    mail = parse(raw)
    assert mail.body_text == "note\n" and [a.filename for a in mail.attachments] == ["note.txt"]


def test_absurd_nesting_is_a_defect_not_an_error() -> None:
    raw = b'From: a@b.example\nContent-Type: multipart/mixed; boundary="b0"\n\n'
    raw += b"".join(b'--b%d\nContent-Type: multipart/mixed; boundary="b%d"\n\n' % (i - 1, i) for i in range(1, 3000))
    mail = parse(raw + b"--b2999\nContent-Type: text/plain\n\ndeep\n")
    assert mail.from_ is not None and mail.defects


def test_mislabelled_japanese_tries_sibling_encodings() -> None:
    defects: list[str] = []
    assert decode_bytes("日本語".encode("euc_jp"), "iso-2022-jp", defects) == "日本語"
