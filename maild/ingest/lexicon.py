"""The words and names automatic mail is recognised by: the rule table's data.

Pure data, no maild imports, read by :mod:`maild.ingest.parse` (whether to read a delivery
report at all) and :mod:`maild.ingest.classify` (what the mail is). Every entry is written
from the published formats of the MTAs, providers and auto-responders named beside it,
and docs/AUTOMATIC.md lists them as a table. One rule of thumb keeps customers safe: a
word alone never makes a mail automatic; it counts only together with a machine sender,
an empty reverse-path or a report part (see the rules in classify).
"""
from __future__ import annotations

import re

# Sender local parts only machines use for delivery reports (RFC 5321 postmaster; Sendmail,
# Postfix, Exim, qmail MAILER-DAEMON; Exchange/Office 365 MicrosoftExchange<hex>).
DAEMON_ADDRESS = re.compile(
    r"^(mailer-?daemon|mail-?daemon|mailerdaemon|postmaster|post-master|mail-?router|mailadmin"
    r"|microsoftexchange[0-9a-f]*|mdaemon|smtp-?gateway)([+@]|$)", re.I)
# mailer-daemon never is a person; postmaster@ sometimes is, so it needs more evidence.
STRICT_DAEMON = re.compile(r"^(mailer-?daemon|mail-?daemon|mailerdaemon)([+@]|$)", re.I)
# Display names of bounce senders: Postfix, Sendmail, Exchange, Lotus Domino, GroupWise, gateways.
DAEMON_NAME = re.compile(
    r"mail delivery (sub)?system|mailer-daemon|mail-daemon|^postmaster$|mail administrator|mail router"
    r"|internet mail delivery|mail delivery service|mail system|e-?mail gateway|microsoft outlook$"
    r"|^system administrator$|domino|groupwise|メール配信システム|邮件系统|系统退信", re.I)

# Subjects of delivery failure reports, per language.
BOUNCE_SUBJECT = re.compile("|".join([
    # English: Postfix, Sendmail, Exim, qmail, Exchange, Gmail, Yahoo, Domino, GroupWise, gateways
    r"undeliver(ed|able)|returned mail|delivery status notification|mail delivery fail|delivery fail"
    r"|failure notice|could not be delivered|delivery has failed|mail system error|rejected:|not delivered"
    r"|message delivery fail|delivery notification|delivery problem|delivery report|non-?delivery"
    r"|warning: could not send|delayed mail|delivery (is )?delayed|mail could not be delivered|returned to sender"
    r"|permanent (delivery )?error|unable to deliver|bounced mail|message blocked|address not found"
    r"|mail delivery subsystem|ndr\b",
    # Portuguese
    r"n[ãa]o (é|e|foi) poss[íi]vel entregar|n[ãa]o entregue|falha (na|de) entrega|mensagem devolvida"
    r"|erro (na|de) entrega|n[ãa]o p[ôo]de ser entregue|notifica[çc][ãa]o de status de entrega",
    # Spanish
    r"no se pudo entregar|no entregad[oa]|error de entrega|mensaje devuelto|imposible entregar"
    r"|notificaci[óo]n de estado de (la )?entrega|fallo (en la|de) entrega|no se ha podido entregar",
    # German
    r"unzustellbar|nicht zustellbar|zustellung fehlgeschlagen|[üu]bermittlungsfehler"
    r"|benachrichtigung zum [üu]bermittlungsstatus|nachricht konnte nicht zugestellt",
    # French
    r"non remis|[ée]chec de (la )?(remise|livraison|distribution)|non d[ée]livr[ée]|non distribuable"
    r"|notification d'[ée]tat de (la )?remise|message retourn[ée]|impossible de remettre",
    # Japanese (carriers and ISPs), Chinese, Korean
    r"配信不能|配送失敗|配信エラー|送信エラー|宛先不明|配信失敗|不達"
    r"|退信|投递失败|无法投递|邮件退回|未能送达|傳遞失敗|無法傳遞|退件|전송 실패|반송",
]), re.I)
# The subject says the failure is final (else a delay/warning).
FAILURE_SUBJECT = re.compile(
    r"fail|undeliver|returned mail|n[ãa]o (é|e|foi) poss[íi]vel|unzustellbar|nicht zustellbar|non remis"
    r"|no se pudo|no entregad|[ée]chec|配信不能|配信エラー|宛先不明|退信|投递失败|无法投递|반송", re.I)

# Lines only delivery reports write (the English ones are the MTAs' fixed texts).
BOUNCE_BODY = re.compile("|".join([
    r"-+ ?the following addresses had permanent fatal errors ?-+",  # Sendmail
    r"this is the mail system at host",  # Postfix
    r"i'm sorry to have to inform you that your message could not",  # Postfix
    r"hi\. this is the qmail-send program",  # qmail
    r"this message was created automatically by mail delivery software",  # Exim
    r"a message that you sent could not be delivered to one or more of its",  # Exim
    r"delivery has failed to these recipients or groups",  # Exchange / Office 365
    r"your message (to [^\n]* )?couldn't be delivered",  # Office 365
    r"your message did not reach some or all of the intended recipients",  # Exchange 2003
    r"delivery to the following recipients? failed",  # Exchange, gateways
    r"the following address(es)? failed",  # Gmail
    r"address not found\s+your message wasn't delivered",  # Gmail
    r"message wasn't delivered to",  # Gmail
    r"sorry, we were unable to deliver your message",  # Yahoo
    r"your message was not delivered to",  # Lotus Domino
    r"the original message was received at",  # Sendmail
    r"unable to deliver (this )?message to the following",  # gateways
    r"the message could not be delivered|message could not be delivered to the following",
    r"^\s*diagnostic-code:", r"^\s*remote-mta:",
    r"sua mensagem n[ãa]o p[ôo]de ser entregue|n[ãa]o foi poss[íi]vel entregar (a|sua) mensagem",
    r"su mensaje no (pudo ser|ha podido ser) entregado|no se (pudo|ha podido) entregar (el|su) mensaje",
    r"ihre nachricht konnte nicht (an [^\n]* )?zugestellt werden",
    r"votre message n'a pas pu [êe]tre (remis|d[ée]livr[ée])",
    r"以下のアドレスへの配信に失敗|メールを配信できませんでした|下記のメールアドレスに届きませんでした",
    r"邮件无法(投递|发送)到|您发送的邮件(被退回|未能送达)",
]), re.I | re.M)

# Anchored prefixes that only auto-responders write ("RES: Resposta automática: ..." is a
# human answering one); an optional "[tracker #12]" tag may come first.
AUTO_SUBJECT = re.compile(
    r"^\s*(\[[^\]]{0,80}\]\s*)?(automatic reply|auto(matische)?[ -]?(reply|antwort|response|respuesta)"
    r"|auto|autoreply|autoresponse|resposta autom[áa]tica|respuesta autom[áa]tica|r[ée]ponse automatique"
    r"|risposta automatica|automatyczna odpowied[źz]|automatisch antwoord|aus[êe]ncia tempor[áa]ria"
    r"|abwesenheitsnotiz|abwesend|out of (the )?office( reply| autoreply)?|vacation reply|on vacation"
    r"|fora do escrit[óo]rio|fuera de la oficina|absence du bureau|message d'absence|ausencia"
    r"|自動応答|自動返信|不在通知|自动回复|自動回覆|自动答复|자동 응답)\s*[:：]"
    r"|^\s*(out of (the )?office|abwesenheitsnotiz|automatic reply|resposta autom[áa]tica|respuesta autom[áa]tica"
    r"|r[ée]ponse automatique|自動応答|自動返信|自动回复|自動回覆)\s*$",
    re.I,
)

# Notification robots: cloud notification services and no-reply senders.
ROBOT_HEADER_PREFIXES = ("x-ses-", "x-amz-", "x-amzn-")
NO_REPLY_ADDRESS = re.compile(
    r"^([\w.-]*[-_.])?(no-?reply|do-?not-?reply|donotreply|noreply[\w.-]*|no_reply|do_not_reply|nao-?responda|naoresponda"
    r"|no-?responder|ne-?pas-?repondre|keine-?antwort)([+@]|$)", re.I)
# Feedback-loop and complaint senders of the big providers.
FEEDBACK_ADDRESS = re.compile(r"^(feedbackloop|feedback-?loop|complaints?|fbl|scomp|abuse-?report|arf)([+@.-]|$)",
                              re.I)
# DMARC (RFC 7489 §7.2.1.1) and TLS-RPT (RFC 8460 §5.3) report subjects and file names.
REPORT_SUBJECT = re.compile(r"^\s*(\[[^\]]*\]\s*)?(report domain:|dmarc (aggregate|failure|forensic) report"
                            r"|report-id:|tls report)", re.I)
REPORT_FILE = re.compile(r"^[^!]+![^!]+!\d+!\d+(![^.]*)?\.(xml|json)(\.gz|\.zip)?$|\.(xml|json)\.gz$|\.zip$", re.I)
REPORT_TYPES = frozenset({"application/zip", "application/gzip", "application/x-gzip", "application/x-zip-compressed",
                          "application/tlsrpt+gzip", "application/tlsrpt+json"})

# Mailing-list software writing about the list itself (Mailman, Majordomo, LISTSERV, Sympa).
LIST_ROBOT_ADDRESS = re.compile(
    r"^([^@]+-(request|owner|bounces|admin)|mailman|majordomo|listserv|sympa|ezmlm|listar)([+@]|$)", re.I)
LIST_ROBOT_SUBJECT = re.compile(
    r"confirm|subscri(be|ption)|unsubscri|not a member|non-?member|awaiting moderator|moderat|mail loop"
    r"|loop detected|welcome to the|your message to \S+ awaits|list (administrivia|owner)", re.I)
