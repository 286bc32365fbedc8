"""maild's own lines in the helpdesk's language: command feedback, control-address reports
and ticket history, as agents read them in mail and in ``maild tickets show``.

The stages write their lines in English (logs, tests and the JSON contract keep them so);
:func:`say` turns one line into ``helpdesk.language`` just before it is shown. The table is
ordered: longer phrases before the shorter ones they contain. Text an agent or a customer
wrote (a command line, a subject, an address) passes through unchanged, and a status name
is shown by its workflow label (``closed`` → ``Finalizado``).
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping

Replacement = str | Callable[[re.Match[str], Mapping[str, str]], str]


def _status(group: int, template: str) -> Callable[[re.Match[str], Mapping[str, str]], str]:
    def fill(m: re.Match[str], labels: Mapping[str, str]) -> str:
        return template.format(labels.get(m.group(group), m.group(group)))
    return fill


def _change(m: re.Match[str], labels: Mapping[str, str]) -> str:
    return f"{labels.get(m.group(1), m.group(1))} -> {labels.get(m.group(2), m.group(2))}"


PT_BR: tuple[tuple[str, Replacement], ...] = (
    # control-address reports, before the shorter phrases they contain
    (r"^open, assigned to nobody: ", "abertos, sem responsável: "),
    (r"^open, assigned to ", "abertos, atribuídos a "),
    (r"^(.+) \(([a-z_]+)\): (\d+)$", r"\1: \3"),  # stats: the label alone
    (r"^(\d+) ticket\(s\), best match first$", r"\1 chamado(s), o mais relevante primeiro"),
    (r"^no ticket matches$", "nenhum chamado encontrado"),
    (r"\bwrite `search WORDS`, e\.g\. ", "escreva `search PALAVRAS`, p.ex. "),
    # all or nothing (maild/ingest/decide.py)
    (r"\byour reply would have been sent to the customer", "sua resposta teria sido enviada ao cliente"),
    (r"\b(\d+) line\(s\) failed: no command of this mail was applied and nothing was sent",
     r"\1 linha(s) falharam: nenhum comando deste e-mail foi aplicado e nada foi enviado"),
    (r"\b(\d+) command\(s\) failed: no command of this mail was applied",
     r"\1 comando(s) falharam: nenhum comando deste e-mail foi aplicado"),
    (r"\bagent mail held: something failed, nothing was applied",
     "e-mail do agente retido: algo falhou, nada foi aplicado"),
    (r"\bagent reply held: only internal text", "resposta do agente retida: só texto interno"),
    (r"\bagent reply kept internal: the ticket is hidden", "resposta do agente mantida interna: o chamado está oculto"),
    (r"\bempty agent reply", "resposta do agente vazia"),
    (r"\bnext action due", "próxima ação vencida"),
    # privacy, hidden tickets, bounces, complaints
    (r"\breply held: its (\d+) line\(s\) were all text of maild's internal mails to agents; nothing was relayed",
     r"resposta retida: suas \1 linha(s) eram todas texto de e-mails internos aos agentes; nada foi enviado"),
    (r"\b(\d+) line\(s\) of maild's internal mails to agents removed from the reply before relaying",
     r"\1 linha(s) de e-mails internos aos agentes removidas da resposta antes do envio"),
    (r"\bthe ticket is hidden from the customer \(/visible no\): the reply was kept as an internal note, not sent",
     "o chamado está oculto do cliente (/visible no): a resposta ficou como nota interna, não enviada"),
    (r"\bthe ticket is hidden from the customer \(/visible no\): your reply was kept as an internal note and NOT "
     r"sent; write /visible yes above a reply to send it",
     "o chamado está oculto do cliente (/visible no): sua resposta ficou como nota interna e NÃO foi enviada; "
     "escreva /visible yes acima de uma resposta para enviá-la"),
    (r"\bpermanent failure for ", "falha permanente para "),
    (r"\btemporary failure for ", "falha temporária para "),
    (r"\bunknown address\b", "endereço desconhecido"),
    (r"\bcomplaint \(feedback report\) from (\S+) about outbox #(\d+); no more automatic mail to it",
     r"reclamação (relatório de feedback) de \1 sobre a saída #\2; nenhum e-mail automático a mais para ele"),
    (r"\bbounce recorded\b", "devolução registrada"),
    (r"\bcomplaint recorded\b", "reclamação registrada"),
    (r"\breply to a ticket closed too long ago", "resposta a um chamado finalizado há tempo demais"),
    (r"\brefers to\b", "refere-se a"),
    (r"\bno sender address: cannot be answered", "sem endereço do remetente: não pode ser respondido"),
    (r"\bopened by (\S+) on behalf of ", r"aberto por \1 em nome de "),
    (r"\bform mail needs an agent: ", "e-mail de formulário precisa de um agente: "),
    (r"\bfrom form ", "do formulário "),
    (r"\bsender erased before", "remetente apagado antes"),
    # mail the rules held back (mail_held): what and why
    (r"^acknowledgement$", "confirmação"),
    (r"^command feedback$", "retorno dos comandos"),
    (r"^proof notice to ", "aviso de prova para "),
    (r"\bcap reached: (\d+) automatic mails per (\S+) in (\d+) min \(limit (\d+)\)",
     r"limite atingido: \1 e-mails automáticos por \2 em \3 min (limite \4)"),
    (r"\bcap reached: (\d+) feedback mails and reports in (\d+) min \(limit (\d+)\)",
     r"limite atingido: \1 retornos e relatórios em \2 min (limite \3)"),
    (r"\bcap reached: (\d+) automatic mails to (\S+) about this ticket in (\d+) min \(limit (\d+)\)",
     r"limite atingido: \1 e-mails automáticos para \2 sobre este chamado em \3 min (limite \4)"),
    (r"\bcap reached: (\d+) notifications to (\S+) in this window",
     r"limite atingido: \1 avisos para \2 nesta janela"),
    (r"\bcap reached: (\d+) SMS to ", r"limite atingido: \1 SMS para "),
    (r"\bcap reached: (\d+) such notices today", r"limite atingido: \1 avisos desse tipo hoje"),
    (r"; in the summary at ", "; no resumo às "),
    (r"\bthe mail has an empty reverse-path \(MAIL FROM:<>, Return-Path: <>\): never answered",
     "o e-mail tem remetente de envelope vazio (MAIL FROM:<>, Return-Path: <>): nunca respondido"),
    (r"^the mail is ", "o e-mail é "),
    (r" is maild's own address", " é um endereço do próprio maild"),
    (r" cannot receive mail", " não pode receber e-mail"),
    (r" is a machine address \(no-reply, daemon, bounce\)", " é um endereço de máquina (no-reply, daemon, devolução)"),
    (r" bounced permanently; undeliverable until ", " foi devolvido definitivamente; sem entrega até "),
    (r" bounced permanently", " foi devolvido definitivamente"),
    (r" is blocked", " está bloqueado"),
    (r" did not consent to automatic mail", " não consentiu com e-mail automático"),
    (r" did not consent or is blocked", " não consentiu ou está bloqueado"),
    (r" has no phone number", " não tem número de telefone"),
    (r"\bno sms: gateway configured", "nenhum gateway sms: configurado"),
    (r"^the sender is an agent$", "o remetente é um agente"),
    (r"^already told today$", "já avisado hoje"),
    (r"^template: ", "modelo: "),
    # interpret: applied
    (r"\bstatus → ([a-z_]+)", _status(1, "situação → {}")),
    (r"\bpriority → ", "prioridade → "),
    (r"\bsubject → ", "assunto → "),
    (r"\bassigned to you \(", "atribuído a você ("),
    (r"\bassigned to ", "atribuído a "),
    (r"\bunassigned\b", "sem responsável"),
    (r" watches the ticket", " acompanha o chamado"),
    (r"\btags ", "etiquetas "),
    (r"\bnext action cleared", "próxima ação removida"),
    (r"\bnext action ", "próxima ação "),
    (r"\b(type|subtype|category) cleared",
     lambda m, _: {"type": "tipo", "subtype": "subtipo", "category": "categoria"}[m.group(1)] + " removido"),
    (r"\b(type|subtype|category) → ",
     lambda m, _: {"type": "tipo", "subtype": "subtipo", "category": "categoria"}[m.group(1)] + " → "),
    (r"visible to the customer", "visível ao cliente"),
    (r"hidden from the customer \(no automatic mail\)", "oculto do cliente (sem e-mail automático)"),
    (r" blocked: later mail is kept but opens no ticket and gets no answer",
     " bloqueado: e-mails seguintes são guardados, sem abrir chamado nem receber resposta"),
    (r"\bmerged into #(\d+) \(closed; later mail goes to #(\d+)\)",
     r"unido ao #\1 (finalizado; e-mails seguintes vão para o #\2)"),
    (r"\blinked to the ticket and listed in replies: ", "ligado ao chamado e listado nas respostas: "),
    (r"\blinked to #", "ligado ao #"),
    (r"\bcloned into a new ticket, linked to this one", "clonado em um novo chamado, ligado a este"),
    (r"\bcloned as #", "clonado como #"),
    (r"\binternal note, not sent to the customer", "nota interna, não enviada ao cliente"),
    (r"\binteraction recorded, not sent to the customer", "interação registrada, não enviada ao cliente"),
    (r"\breply saved as a draft, not sent; send it later with /send",
     "resposta salva como rascunho, não enviada; envie depois com /send"),
    (r"\bthe saved draft is sent to the customer", "o rascunho salvo é enviado ao cliente"),
    (r"\bstandard answer ", "resposta padrão "),
    (r"\ba copy of the reply goes to ", "uma cópia da resposta vai para "),
    (r"\bopened \[(.+?)\]; write to the customer with that tag in the subject",
     r"aberto [\1]; escreva ao cliente com essa etiqueta no assunto"),
    (r"\ba new ticket for ", "um novo chamado para "),
    # interpret and decide: rejected
    (r"\bunknown status (.+?) \(known: ([^)]*)\)", lambda m, labels: f"situação desconhecida {m.group(1)} "
     f"(conhecidas: {', '.join(labels.get(n, n) for n in m.group(2).split(', '))})"),
    (r"\bunknown priority (.+?) \(known: ", r"prioridade desconhecida \1 (conhecidas: "),
    (r"\bunknown standard answer (.+?) \(known: ", r"resposta padrão desconhecida \1 (conhecidas: "),
    (r"\bunknown command \(known: ", "comando desconhecido (conhecidos: "),
    (r"\bunknown command (.+?); write `help` for the list", r"comando desconhecido \1; escreva `help` para a lista"),
    (r"\bunknown status ", "situação desconhecida "),
    (r"\bunknown priority ", "prioridade desconhecida "),
    (r"\bunknown agent ", "agente desconhecido "),
    (r"\bunknown filter (.+?) \(", r"filtro desconhecido \1 ("),
    (r" names more than one agent; use the address", " nomeia mais de um agente; use o endereço"),
    (r"\bwhich agent\? ", "qual agente? "),
    (r"\bwhich tags\? ", "quais etiquetas? "),
    (r"\bwhich address\? ", "qual endereço? "),
    (r"\bwhich items\? ", "quais itens? "),
    (r"\bwhich ticket\? e\.g\. ", "qual chamado? ex.: "),
    (r"\bwhich tickets\? e\.g\. ", "quais chamados? ex.: "),
    (r"\bonly agents can take tickets", "só agentes podem assumir chamados"),
    (r"\bbad tag name\(s\) (.+?): letters, digits, \. _ & - only",
     r"etiqueta(s) inválida(s) \1: só letras, dígitos, . _ & -"),
    (r"\bthe new subject is missing", "falta o novo assunto"),
    (r"\bbad date (.+?): use YYYY-MM-DD HH:MM \((.+?)\) or ", r"data inválida \1: use AAAA-MM-DD HH:MM (\2) ou "),
    (r"\buse /visible yes or /visible no", "use /visible yes ou /visible no"),
    (r"\bcannot be blocked", "não pode ser bloqueado"),
    (r" is not a ticket number", " não é um número de chamado"),
    (r" is not an e-mail address", " não é um endereço de e-mail"),
    (r"\bno ticket #", "não há chamado #"),
    (r": no such ticket", ": chamado inexistente"),
    (r" is this ticket", " é este chamado"),
    (r"\bmerge into one ticket at a time", "una a um chamado por vez"),
    (r"\bno saved draft on this ticket", "não há rascunho salvo neste chamado"),
    (r"\bno saved draft", "não há rascunho salvo"),
    (r"\bone /canned per mail", "um /canned por e-mail"),
    (r" was already given: one of /note, /log, /draft, /send per mail",
     " já foi dado: um só de /note, /log, /draft, /send por e-mail"),
    (r"\bonly in a reply on a ticket, not at the control address",
     "só numa resposta a um chamado, não no endereço de controle"),
    (r" works only in a reply on a ticket", " só funciona numa resposta a um chamado"),
    (r"\bpermission: only managers may use ", "permissão: só gerentes podem usar "),
    (r"\bthe reply is empty; nothing was sent", "a resposta está vazia; nada foi enviado"),
    (r"\bthe draft is empty; nothing was saved", "o rascunho está vazio; nada foi salvo"),
    (r": give them with /send, not with /draft", ": dê-os com /send, não com /draft"),
    (r": nothing is sent with /", ": nada é enviado com /"),
    (r"\bthe ticket has no customer address; nothing was sent", "o chamado não tem endereço do cliente; nada foi enviado"),
    (r"\bthe reply held only text of maild's internal mails to agents; nothing was sent to the customer",
     "a resposta só tinha texto de e-mails internos aos agentes; nada foi enviado ao cliente"),
    (r"\bno command found; write e\.g\. `stats` or `help`", "nenhum comando encontrado; escreva p.ex. `stats` ou `help`"),
    (r"\bwrite filters as key:value", "escreva filtros como chave:valor"),
    (r" is an agent, not a customer", " é um agente, não um cliente"),
    # why a mail in an agent's name proved nothing (maild/commands/auth.py)
    (r"\bnot sent to the agent's signed reply address", "não foi enviado ao endereço de resposta assinado do agente"),
    (r"\bno Authentication-Results from a trusted server", "nenhum Authentication-Results de um servidor confiável"),
    (r"\bno DKIM or DMARC pass for exactly (\S+) from a trusted server",
     r"nenhum DKIM ou DMARC aprovado exatamente para \1 vindo de um servidor confiável"),
    (r"\bno valid DKIM signature of (\S+)", r"nenhuma assinatura DKIM válida de \1"),
    (r"\bno DKIM signature", "nenhuma assinatura DKIM"),
    (r"\bsigned by (\S+), not ", r"assinado por \1, não "),
    # control-address reports
    (r"^(\d+) ticket\(s\), first (\d+) shown$", r"\1 chamado(s), os primeiros \2 mostrados"),
    (r"^(\d+) ticket\(s\)$", r"\1 chamado(s)"),
    (r"^open, assigned to nobody: ", "abertos, sem responsável: "),
    (r"^open, assigned to ", "abertos, atribuídos a "),
    (r"^  status ([a-z_]+) \(.*?\)  priority ", _status(1, "  situação {}  prioridade ")),
    (r"  assignee ", "  responsável "),
    (r"  requester ", "  cliente "),
    (r"  tags ", "  etiquetas "),
    (r"  next action ", "  próxima ação "),
    (r"^  type ", "  tipo "),
    (r"  category ", "  categoria "),
    (r"  visible yes", "  visível sim"),
    (r"  visible no", "  visível não"),
    (r"  messages (\d+)", r"  mensagens \1"),
    (r"^#(\d+): (.+) \((\S+ \S+)\) is larger than (\S+ \S+), so it is not attached; fetch it with ",
     r"#\1: \2 (\3) passa de \4, por isso não vai anexado; baixe-o com "),
    (r"^#(\d+): (.+) \((\S+ \S+)\) is attached$", r"#\1: \2 (\3) vai anexado"),
    (r"^#(\d+) has no file (.+?); its files: ", r"#\1 não tem o arquivo \2; seus arquivos: "),
    (r"^#(\d+) has no file (.+?); it has no files", r"#\1 não tem o arquivo \2; ele não tem arquivos"),
    (r"\bwrite `get TICKET NAME`, e\.g\. ", "escreva `get CHAMADO NOME`, p.ex. "),
    (r"^(\d+) notification\(s\) queued$", r"\1 notificação(ões) na fila"),
    # history details
    (r"\breply saved as a draft, not sent \(/send sends it\)", "resposta salva como rascunho, não enviada (/send a envia)"),
    (r"\bagent reply relayed to the customer", "resposta do agente enviada ao cliente"),
    (r"\bagent reply relayed", "resposta do agente enviada"),
    (r"\breply saved as a draft\b", "resposta salva como rascunho"),
    (r"\bagent mail with commands", "e-mail do agente com comandos"),
    (r"\bagent reply held: a command was rejected", "resposta do agente retida: um comando foi recusado"),
    (r"\bcustomer reply reopens", "resposta do cliente reabre"),
    (r"\bcustomer reply\b", "resposta do cliente"),
    (r"\binternal note by agent", "nota interna do agente"),
    (r"; rules: ", "; regras: "),
    (r"^rules: ", "regras: "),
    (r" \(the saved draft\)", " (o rascunho salvo)"),
    (r"\binternal note, not sent", "nota interna, não enviada"),
    (r"\ban interaction elsewhere \(phone, chat\), recorded", "uma interação por outro meio (telefone, chat), registrada"),
    (r"\breopened by customer mail", "reaberto por e-mail do cliente"),
    (r"\bcustomer replied", "o cliente respondeu"),
    (r"\bagent replied", "o agente respondeu"),
    (r"\bdraft sent", "rascunho enviado"),
    (r"\bdraft saved", "rascunho salvo"),
    (r"\bby command", "por comando"),
    (r"\bsubject keyword", "palavra-chave no assunto"),
    (r"\ba copy of this reply", "uma cópia desta resposta"),
    (r"\bcontent erased", "conteúdo apagado"),
    (r"\(control address\)", "(endereço de controle)"),
    (r"\(no subject\)", "(sem assunto)"),
)
# Ticket history kinds as ``tickets show`` names them.
KINDS = {"pt-BR": {
    "created": "aberto", "message": "mensagem", "erased": "apagado", "status": "situação", "assigned": "atribuído", "assignee": "responsável", "note": "nota",
    "interaction": "interação", "draft": "rascunho", "reply": "resposta", "cc": "cópia", "tag": "etiqueta",
    "tags": "etiquetas", "priority": "prioridade", "linked": "ligado", "merged": "unido", "deleted": "apagado",
    "subject": "assunto", "next_action_at": "próxima ação", "visible": "visível", "privacy": "privacidade",
    "reminder": "lembrete", "autoclose": "finalizado automaticamente", "mail_held": "e-mail retido",
    "delivery_failed": "entrega falhou", "flagged": "marcado", "bounce": "devolução", "complaint": "reclamação",
    "held": "retido", "on_behalf": "em nome de", "form": "formulário", "reference": "referência",
    "auto_reply": "resposta automática",
}}
# Column headings and the values of maild's own columns, as the CLI's tables print them.
WORDS = {"pt-BR": {
    "id": "nº", "status": "situação", "assignee": "responsável", "requester": "cliente", "msgs": "msgs",
    "updated": "atualizado", "subject": "assunto", "received": "recebido", "size": "tamanho", "reason": "motivo",
    "state": "estado", "kind": "tipo", "ticket": "chamado", "tries": "tent.", "to": "para", "error": "erro",
    "total": "total", "(none)": "(nenhum)", "history:": "histórico:", "attachment": "anexo", "from": "de",
    # outbox states and kinds
    "queued": "na fila", "claimed": "enviando", "sent": "enviado", "failed": "falhou", "ack": "confirmação",
    "reply": "resposta", "notify": "aviso", "feedback": "retorno", "summary": "resumo",
    # message directions
    "in": "entrada", "out": "saída", "note": "nota", "agent": "agente", "draft": "rascunho", "drafted": "rascunho enviado",
}}
_COMPILED = {"pt-BR": tuple((re.compile(p), r) for p, r in PT_BR)}


def say(line: str, language: str, labels: Mapping[str, str] | None = None) -> str:
    """``line`` (one of maild's English lines) in ``language``."""
    table = _COMPILED.get(language)
    if not table:
        return line
    names = labels or {}
    for pattern, replacement in table:
        if isinstance(replacement, str):
            line = pattern.sub(replacement, line)
        else:
            line = pattern.sub(lambda m, fill=replacement: fill(m, names), line)  # type: ignore[misc]
    return line


def word(name: str, language: str) -> str:
    """A column heading or one of maild's column values (``failed``, ``reply``) in ``language``."""
    return WORDS.get(language, {}).get(name, name)


def kind(name: str, language: str) -> str:
    """A history kind (``status``, ``reply``…) in ``language``."""
    return KINDS.get(language, {}).get(name, name)
