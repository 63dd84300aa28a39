"""The new text of a reply: quoted history, signatures and legal footers removed."""

from __future__ import annotations

import re

from cadence.core.classify import _mime
from cadence.core.classify._part import MimePart
from cadence.core.classify._status import lowercase_re

_WROTE = (
    r"wrote|schrieb|a écrit|a ecrit|escribió|escribio|schreef|ha scritto|escreveu|napisał\(a\)|napisał|"
    r"napisała|pisze|skrev|kirjoitti|написал|yazdı|のメッセージ|書きました|wrote\s*>"
)
# A quote header may wrap over up to three lines: "On Tue, 3 Nov 2026 at 10:12, Anna Berg\n<a@b> wrote:"
QUOTE_HEADER_RE = re.compile(
    # the header line carries a date (a digit); a wrapped header continues on non-empty lines
    r"^[ \t]*(?:(?:on|am|le|el|op|il|em|w dniu|den|dnia|in data|il giorno)\b|\d{1,4}[./\-年])(?=[^\n]*\d)"
    r"[^\n]{0,200}(?:\n[^\n]{1,200}){0,2}?(?:" + _WROTE + r")[^\n]{0,40}:?[ \t]*$"
    r"|^[^\n]{0,160}<[^<>\s]+@[^<>\s]+>[^\n]{0,40}(?:" + _WROTE + r")\s*:?[ \t]*$",
    re.IGNORECASE | re.MULTILINE,
)
ORIGINAL_MESSAGE_RE = re.compile(
    r"^[ \t]*-{2,}[ \t]*(?:original message|ursprüngliche nachricht|originalnachricht|message d'origine|"
    r"message original|mensaje original|oorspronkelijk bericht|origineel bericht|messaggio originale|"
    r"mensagem original|wiadomość oryginalna|oryginalna wiadomość|ursprungligt meddelande|"
    r"originalmeddelande|forwarded message|weitergeleitete nachricht|message transféré|mensaje reenviado|"
    r"doorgestuurd bericht|messaggio inoltrato|mensagem encaminhada|przekazana wiadomość|"
    r"vidarebefordrat meddelande|元のメッセージ|転送メッセージ)[ \t]*-*[ \t]*$"
    r"|^[ \t]*_{10,}[ \t]*$|^[ \t]*begin forwarded message:?|^[ \t]*anfang der weitergeleiteten",
    re.IGNORECASE | re.MULTILINE,
)
_FROM_WORDS = r"from|von|de|van|da|od|från|fra|差出人|送信者|от"
_SENT_WORDS = (
    r"sent|date|gesendet|datum|envoyé|date d'envoi|enviado|fecha|verzonden|inviato|data|"
    r"wysłano|wysłane|skickat|skickades|送信日時|日時|отправлено|to|an|à|para|aan|a|do|till|宛先"
)
OUTLOOK_BLOCK_RE = re.compile(
    r"^[ \t*]*(?:"
    + _FROM_WORDS
    + r")[ \t*]*:[^\n]*\n(?:[^\n]*\n){0,1}[ \t*]*(?:"
    + _SENT_WORDS
    + r")[ \t*]*:",
    re.IGNORECASE | re.MULTILINE,
)
SIGNATURE_RE = re.compile(
    r"^(?:-- ?|--|—|__)[ \t]*$"
    r"|^[ \t]*(?:sent from my|sent from (?:outlook|mail for|yahoo)|get outlook for|envoyé de mon|"
    r"envoyé depuis|von meinem \w+ gesendet|gesendet von|enviado desde mi|enviado do meu|enviado de meu|"
    r"verzonden vanaf mijn|verstuurd vanaf mijn|inviato da|wysłane z mojego|skickat från min|"
    r"iPhoneから送信)",
    re.IGNORECASE | re.MULTILINE,
)
LEGAL_RE = lowercase_re(
    r"^[^\n]{0,200}(?:confidential|intended (?:solely )?for the (?:addressee|use|named|recipient)|"
    r"intended recipient|privileged|disclaimer|registered (?:in|office)|company (?:no|number)|"
    r"this (?:e-?mail|message) (?:and any attachments? )?(?:is|may be) (?:confidential|monitored)|"
    r"vertraulich|nicht der (?:richtige|beabsichtigte) (?:adressat|empfänger)|pflichtangaben|handelsregister|"
    r"geschäftsführer:|confidentiel|destinataire|confidencial|destinatario|riservat|vertrouwelijk|"
    r"geadresseerde|poufn|adresat|konfidentiell|sekretess|mottagare|kvk|sitz der gesellschaft|"
    r"to unsubscribe from (?:our|these|this|service|all)|manage (?:your )?(?:email )?preferences|"
    r"privacy (?:policy|notice)|datenschutz(?:erklärung|hinweis)|politique de confidentialité)",
    re.MULTILINE,
)


def body_text(message: MimePart) -> str:
    """The reply's own body as text: the first text/plain part, else the first HTML part converted."""
    plain: str | None = None
    html: str | None = None
    for part in _mime.walk_leaves(message, limit=40):
        ctype = _mime.content_type(part)
        disposition = str(part.get("Content-Disposition", "")).lower()
        if disposition.startswith("attachment"):
            continue
        if ctype == "text/plain" and plain is None:
            plain = _mime.decode_part(part)
        elif ctype == "text/html" and html is None:
            html = _mime.decode_part(part)
        if plain is not None:
            break
    if plain is not None and plain.strip():
        return plain.replace("\r\n", "\n")
    if html is not None:
        return _mime.html_to_text(html.replace("\r\n", "\n"))
    return ""


def new_text(text: str) -> str:
    """Strip quoted history, signatures and footers; keep what the sender typed now.

    Inline answers typed between quoted lines are kept ('> ' lines are dropped, the rest stays)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")[:60_000]
    leading = QUOTE_HEADER_RE.match(text)
    if leading:
        # the mail opens with the quote header: the answers are typed between the quoted lines
        text = text[leading.end() :]
        return _strip_signature("\n".join(_inline_answers("\n" + text))).strip()
    cut = len(text)
    for pattern in (QUOTE_HEADER_RE, ORIGINAL_MESSAGE_RE, OUTLOOK_BLOCK_RE):
        match = pattern.search(text)
        if match and match.start() < cut:
            # a quote header that is the very first thing is followed by inline answers: keep them
            if match.start() == 0 and pattern is QUOTE_HEADER_RE:
                continue
            cut = match.start()
    head = text[:cut]
    quoted_after = text[cut:]
    lines = [line for line in head.split("\n") if not line.lstrip().startswith(">")]
    # inline replies below the quote header: unquoted lines between quoted ones
    if cut < len(text) and _has_inline_answers(quoted_after):
        lines.extend(_inline_answers(quoted_after))
    result = "\n".join(lines)
    result = _strip_signature(result)
    return result.strip()


def _has_inline_answers(rest: str) -> bool:
    lines = rest.split("\n")[1:]
    quoted = sum(1 for line in lines if line.lstrip().startswith(">"))
    return quoted >= 2 and any(line.strip() and not line.lstrip().startswith(">") for line in lines)


def _inline_answers(rest: str) -> list[str]:
    lines = rest.split("\n")[1:]
    answers: list[str] = []
    last_quoted = -1
    for index, line in enumerate(lines):
        if line.lstrip().startswith(">"):
            last_quoted = index
    for index, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or line.lstrip().startswith(">"):
            continue
        if index > last_quoted and QUOTE_HEADER_RE.match(line):
            break
        # text after the last quoted line is usually a signature or the client's footer
        answers.append(line)
    return answers


def _strip_signature(text: str) -> str:
    match = SIGNATURE_RE.search(text)
    if match and match.start() > 0:
        text = text[: match.start()]
    paragraphs = re.split(r"\n[ \t]*\n", text)
    kept: list[str] = []
    for index, paragraph in enumerate(paragraphs):
        if index > 0 and LEGAL_RE.search(paragraph.lower()):
            break
        kept.append(paragraph)
    return "\n\n".join(kept)
