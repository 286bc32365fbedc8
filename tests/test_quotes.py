"""Cutting quoted history from an agent's reply: real client formats, never losing words."""
from __future__ import annotations


import pytest

from conftest import CORPUS
from maild.outbound.quotes import latest_reply

CASES = {
    "gmail_pt": ("Obrigado, vou verificar amanhã.\n\nEm qui., 5 de mar. de 2024 às 10:12, Maria Silva "
                 "<maria@x.com> escreveu:\n> Olá, tudo bem?\n> Há um vazamento.\n", "Obrigado, vou verificar amanhã.\n"),
    "gmail_pt_wrapped": ("Certo.\n\nEm qui., 5 de mar. de 2024 às 10:12, Maria Silva <\nmaria@x.com> escreveu:\n\n"
                         "> Olá\n", "Certo.\n"),
    "outlook_pt_original": ("Pode vir às 14h.\n\nAna\n\n-----Mensagem original-----\nDe: Maria <maria@x.com>\n"
                            "Enviada em: quinta-feira, 5 de março de 2024 10:12\nPara: suporte@x.com\n"
                            "Assunto: Vazamento\n\nOlá\n", "Pode vir às 14h.\n\nAna\n"),
    "outlook_pt_underscores": ("Certo, combinado.\n\n________________________________\nDe: Maria <maria@x.com>\n"
                               "Enviado: quinta-feira, 5 de março de 2024 10:12\nPara: suporte@x.com\n"
                               "Assunto: Vazamento\n\nOlá\n", "Certo, combinado.\n"),
    "outlook_pt_headers_only": ("Certo, combinado.\n\nDe: Maria <maria@x.com>\nEnviado: quinta-feira, 5 de março\n"
                                "Para: suporte@x.com\nAssunto: Vazamento\n\nOlá\n", "Certo, combinado.\n"),
    "english_on_wrote": ("Sure, 2pm works.\n\nOn Thu, Mar 5, 2024 at 10:12 AM Maria <m@x.com> wrote:\n> Which time?\n",
                         "Sure, 2pm works.\n"),
    "no_quote": ("Just text.\nTwo lines.\n", "Just text.\nTwo lines.\n"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_quoted_history_is_cut(name: str) -> None:
    body, expected = CASES[name]
    assert latest_reply(body).text == expected


def test_inline_answers_keep_the_whole_text() -> None:
    body = "Oi Maria,\n\n> Qual o horário?\nÀs 14h.\n\n> E o endereço?\nRua A, 12.\n"
    reply = latest_reply(body)
    assert reply.how == "inline" and reply.text == body


def test_text_below_the_quote_is_kept() -> None:
    body = "Em qui., 5 de mar. de 2024, Maria escreveu:\n> Qual o horário?\n\nÀs 14h.\n"
    assert "Às 14h." in latest_reply(body).text


def test_only_quotes_is_empty() -> None:
    assert latest_reply("\n> only a quote\n> more\n").text == ""


def test_the_reply_parser_corpora_never_lose_the_first_line() -> None:
    folders = [CORPUS / "github-email_reply_parser", CORPUS / "crisp-oss-email-reply-parser"]
    files = [p for folder in folders if folder.is_dir() for p in folder.rglob("*.txt")]
    if not files:
        pytest.skip("the reply-parser corpora are not in ../shared/corpus")
    cut = 0
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        reply = latest_reply(text)
        first = next((line.strip() for line in text.splitlines() if line.strip()), "")
        if first.startswith(">") or not first:
            continue
        assert reply.text.strip(), path.name
        assert first[:20] in reply.text, path.name
        cut += reply.how == "cut"
    assert cut >= len(files) * 0.6  # most replies in these corpora have history to cut
