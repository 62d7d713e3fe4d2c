"""Auto-replies (RFC 3834): vacation notices, autoresponders, "Automatic reply:" mail."""

from __future__ import annotations

import re
from email.header import decode_header, make_header
from email.message import Message

_SUBJECT = re.compile(
    r"^\s*(?:auto(?:matic)?[ -]?(?:reply|response|respons|antwort)|autorespon[sd]"
    r"|out of (?:the )?office|away until|on vacation|vacation|abwesenheit"
    r"|automatische antwort|r[ée]ponse automatique|absence|respuesta autom[áa]tica"
    r"|fuera de la oficina|risposta automatica|fuori sede|autosvar|automatisch antwoord"
    r"|afwezig|resposta autom[áa]tica|ausente|automatyczna odpowied[źz]"
    r"|\u81ea\u52d5\u8fd4\u4fe1|\u4e0d\u5728|\u81ea\u52a8\u56de\u590d|\uc790\ub3d9 \uc751\ub2f5"
    r"|\u0430\u0432\u0442\u043e\u043e\u0442\u0432\u0435\u0442)",
    re.IGNORECASE,
)


def is_autoreply(message: Message) -> bool:
    submitted = str(message.get("Auto-Submitted", "")).strip().lower()
    if submitted.startswith("auto-replied"):
        return True
    if message.get("X-Autoreply") or message.get("X-Autorespond") or message.get("X-Autoresponse"):
        return True
    if str(message.get("Precedence", "")).strip().lower() == "auto_reply":
        return True
    suppress = str(message.get("X-Auto-Response-Suppress", "")).lower()
    if _SUBJECT.search(decoded_header(message, "Subject")):
        return True
    return "oof" in suppress and "autoreply" in suppress and submitted.startswith("auto")


def decoded_header(message: Message, name: str) -> str:
    value = str(message.get(name, ""))
    try:
        return str(make_header(decode_header(value)))
    except Exception:  # a broken encoded word: read what is there
        return value
