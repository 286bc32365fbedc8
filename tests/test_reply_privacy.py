"""What an agent did not write never reaches a customer: the copy of maild's own mail is
cut exactly from a reply, whatever the client did to it, and internal text is never relayed.

Replies are built here the way common clients build them around the real text of maild's
notifications (rendered from the packaged templates).
"""
from __future__ import annotations

import html
import textwrap
from collections.abc import Callable

import pytest

from maild.commands.grammar import split_commands
from maild.domain.texts import KnownTexts
from maild.ingest.parse import parse
from maild.outbound.copies import norm
from maild.outbound.quotes import latest_reply, remove_internal
from maild.outbound.templates import NOTIFY_NEW, NOTIFY_REPLY, NOTIFY_UNACCEPTED, Renderer

HELPDESK = "Test Helpdesk <support@support.example.com>"
CUSTOMER_TEXT = ("Bom dia,\n\nHá água escorrendo pelo teto da sala desde ontem à noite, perto da janela.\n"
                 "O apartamento é o 42 do bloco B.\n\nObrigada,\nMaria")
VARS = {
    "helpdesk": {"name": "Test Helpdesk", "address": "support@support.example.com"},
    "ticket": {"id": 7, "subject": "Infiltração no teto", "status": "new", "tag": "[Support #7]"},
    "customer": {"name": "Maria Souza", "email": "maria@cliente.example.com.br"},
    "message": {"subject": "Infiltração no teto", "text": CUSTOMER_TEXT, "from_name": "Maria Souza",
                "from_email": "maria@cliente.example.com.br"},
    "recipient": {"name": "Ana", "email": "ana@support.example.com"},
    "event": {"actor": "", "actor_name": "", "old": None, "new": None},
    "listing": [],
}


def notification(name: str, language: str) -> str:
    return Renderer(None, language).render(name, VARS).body


NOTIFICATIONS = {
    "new_pt": notification(NOTIFY_NEW, "pt-BR"),
    "unaccepted_pt": notification(NOTIFY_UNACCEPTED, "pt-BR"),
    "customer_reply_en": notification(NOTIFY_REPLY, "en"),
}
AGENT_TEXT = "Oi Maria, um técnico passa aí amanhã às 9h.\nAbraço,\nAna"


def quoted(text: str) -> str:
    return "\n".join(f"> {line}" if line else ">" for line in text.strip("\n").split("\n"))


# -- the clients ------------------------------------------------------------------------
def gmail_pt(top: str, n: str) -> str:
    return (f"{top}\n\nEm seg., 2 de nov. de 2026 às 10:00, Test Helpdesk <\nsupport@support.example.com> "
            f"escreveu:\n\n{quoted(n)}\n")


def outlook_pt(top: str, n: str) -> str:
    return (f"{top}\n\n________________________________\nDe: {HELPDESK}\n"
            "Enviado: segunda-feira, 2 de novembro de 2026 10:00\nPara: Ana <ana@support.example.com>\n"
            f"Assunto: [Support #7] Infiltração no teto\n\n{n}")


def outlook_original(top: str, n: str) -> str:
    return (f"{top}\n\n-----Mensagem original-----\nDe: Test Helpdesk [mailto:support@support.example.com]\n"
            "Enviada em: segunda-feira, 2 de novembro de 2026 10:00\nPara: Ana\n"
            f"Assunto: [Support #7] Infiltração no teto\n\n{n}")


def thunderbird(top: str, n: str) -> str:
    return f"{top}\n\nOn 11/2/26 10:00, Test Helpdesk wrote:\n{quoted(n)}\n"


def unknown_language(top: str, n: str) -> str:
    return f"{top}\n\nпн, 2 нояб. 2026 г. в 10:00, Test Helpdesk <support@support.example.com>:\n{quoted(n)}\n"


def no_attribution(top: str, n: str) -> str:
    return f"{top}\n\n{n}"


def indented(top: str, n: str) -> str:
    return f"{top}\n\n" + "\n".join(f"    {line}" for line in n.split("\n"))


def rewrapped(top: str, n: str) -> str:
    """The client re-flowed the quote at 40 columns (and quoted it)."""
    paragraphs = [textwrap.fill(line, 40) if line else "" for line in n.strip("\n").split("\n")]
    return f"{top}\n\nOn Mon, Nov 2, 2026 at 10:00 AM {HELPDESK} wrote:\n{quoted(chr(10).join(paragraphs))}\n"


def forwarded(top: str, n: str) -> str:
    return (f"{top}\n\n---------- Forwarded message ---------\nFrom: {HELPDESK}\n"
            "Date: Mon, Nov 2, 2026 at 10:00 AM\nSubject: [Support #7] Infiltração no teto\n"
            f"To: Ana <ana@support.example.com>\n\n\n{n}")


def thunderbird_forward(top: str, n: str) -> str:
    return (f"{top}\n\n-------- Forwarded Message --------\nSubject: \t[Support #7] Infiltração no teto\n"
            f"Date: \tMon, 2 Nov 2026 10:00:00 +0000\nFrom: \t{HELPDESK}\nTo: \tana@support.example.com\n\n\n{n}")


def html_only(top: str, n: str) -> str:
    """A Gmail reply sent as HTML only: the body text is what maild makes of the HTML."""
    top_html = "".join(f"<div>{html.escape(line) or '<br>'}</div>" for line in top.split("\n"))
    quote_html = "<br>".join(html.escape(line) for line in n.strip("\n").split("\n"))
    body = (f'<div dir="ltr">{top_html}</div><br><div class="gmail_quote"><div dir="ltr" class="gmail_attr">'
            f"Em seg., 2 de nov. de 2026 às 10:00, Test Helpdesk &lt;<a href=\"mailto:support@support.example.com\">"
            f"support@support.example.com</a>&gt; escreveu:<br></div><blockquote class=\"gmail_quote\" "
            f"style=\"margin:0px 0px 0px 0.8ex;border-left:1px solid rgb(204,204,204)\">{quote_html}</blockquote></div>")
    raw = ("From: ana@support.example.com\r\nTo: support@support.example.com\r\nSubject: Re: x\r\n"
           "Message-ID: <h@x>\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n"
           "Content-Transfer-Encoding: 8bit\r\n\r\n" + body).encode()
    return parse(raw).body_text


TOP_POST: dict[str, Callable[[str, str], str]] = {
    "gmail_pt": gmail_pt, "outlook_pt": outlook_pt, "outlook_original": outlook_original,
    "thunderbird": thunderbird, "unknown_language": unknown_language, "no_attribution": no_attribution,
    "indented": indented, "rewrapped": rewrapped, "forwarded": forwarded,
    "thunderbird_forward": thunderbird_forward, "html_only": html_only,
}
COMMANDS = "/take\n/status aguardando resposta"


def written_lines(n: str) -> list[str]:
    return [norm(line) for line in n.split("\n") if norm(line)]


def assert_no_line_of(n: str, text: str) -> None:
    got = {norm(line) for line in text.split("\n")}
    leaked = [line for line in written_lines(n) if line in got]
    assert not leaked, leaked


def after_commands(body: str) -> str:
    commands, text = split_commands(body)
    assert [c.verb for c in commands] == ["take", "status"]
    return text


@pytest.mark.parametrize("note", sorted(NOTIFICATIONS))
@pytest.mark.parametrize("client", sorted(TOP_POST))
def test_commands_on_top_of_a_notification_leave_nothing_to_relay(client: str, note: str) -> None:
    n = NOTIFICATIONS[note]
    reply = latest_reply(after_commands(TOP_POST[client](COMMANDS, n)), answered=(n,))
    assert reply.text == "" and reply.how == "empty"


@pytest.mark.parametrize("note", sorted(NOTIFICATIONS))
@pytest.mark.parametrize("client", sorted(TOP_POST))
def test_text_on_top_of_a_notification_is_all_that_is_left(client: str, note: str) -> None:
    n = NOTIFICATIONS[note]
    reply = latest_reply(after_commands(TOP_POST[client](f"{COMMANDS}\n{AGENT_TEXT}", n)), answered=(n,))
    assert written_lines(reply.text) == written_lines(AGENT_TEXT)  # HTML turned into text spaces lines apart
    assert_no_line_of(n, reply.text)


@pytest.mark.parametrize("note", sorted(NOTIFICATIONS))
def test_bottom_post_keeps_the_text_below_the_quote(note: str) -> None:
    n = NOTIFICATIONS[note]
    body = f"Em seg., 2 de nov. de 2026 às 10:00, {HELPDESK} escreveu:\n{quoted(n)}\n\n{AGENT_TEXT}\n"
    reply = latest_reply(body, answered=(n,))
    assert reply.text.strip("\n") == AGENT_TEXT
    assert_no_line_of(n, reply.text)


def test_inline_answers_keep_only_the_agents_lines() -> None:
    n = NOTIFICATIONS["new_pt"]
    lines = n.strip("\n").split("\n")
    water = next(i for i, line in enumerate(lines) if line.startswith("Há água"))
    body = (f"On 11/2/26 10:00, Test Helpdesk wrote:\n{quoted(chr(10).join(lines[:water + 1]))}\n"
            "Vou mandar o técnico amanhã.\n\n"
            f"{quoted(chr(10).join(lines[water + 1:]))}\nO bloco B tem portaria 24h, ok.\n")
    reply = latest_reply(body, answered=(n,))
    assert reply.text == "Vou mandar o técnico amanhã.\n\nO bloco B tem portaria 24h, ok.\n"
    assert_no_line_of(n, reply.text)


def test_a_short_line_of_the_agents_own_that_also_occurs_in_the_quote_stays() -> None:
    n = NOTIFICATIONS["new_pt"]
    reply = latest_reply(gmail_pt("Bom dia,\n\nJá agendei a visita.\n\nObrigada,\nAna", n), answered=(n,))
    assert reply.text == "Bom dia,\n\nJá agendei a visita.\n\nObrigada,\nAna\n"


def test_without_the_known_text_an_attribution_and_quote_alone_is_empty() -> None:
    # A reply whose In-Reply-To names nothing maild sent: the usual signs still say "all quote".
    n = NOTIFICATIONS["unaccepted_pt"]
    assert latest_reply(after_commands(gmail_pt(COMMANDS, n))).text == ""
    assert latest_reply(after_commands(outlook_pt(COMMANDS, n))).text == ""


def test_a_text_that_does_not_start_with_a_quote_is_still_kept_whole() -> None:
    assert latest_reply("--\nAna\n").how == "whole"


def test_the_guard_removes_internal_lines_and_keeps_what_the_customer_saw() -> None:
    n = NOTIFICATIONS["unaccepted_pt"]
    known = KnownTexts(internal=(n, NOTIFICATIONS["new_pt"]), public=(CUSTOMER_TEXT,))
    text = (f"Oi Maria, já estamos vendo.\n{n}\nHá água escorrendo pelo teto da sala desde ontem à noite, "
            "perto da janela.\n")
    rest, removed = remove_internal(text, known)
    assert removed == len(written_lines(n))
    assert rest == ("Oi Maria, já estamos vendo.\n\nHá água escorrendo pelo teto da sala desde ontem à noite, "
                    "perto da janela.\n")


def test_the_guard_leaves_short_lines_and_unrelated_text_alone() -> None:
    known = KnownTexts(internal=(NOTIFICATIONS["new_pt"],))
    text = "Obrigada,\nAna\n"
    assert remove_internal(text, known) == (text, 0)


def test_the_guard_with_only_internal_text_leaves_nothing() -> None:
    n = NOTIFICATIONS["unaccepted_pt"]
    assert remove_internal(quoted(n), KnownTexts(internal=(n,))) == ("", len(written_lines(n)))
