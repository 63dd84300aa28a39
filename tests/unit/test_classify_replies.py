"""Replies: auto-replies, unsubscribe requests, declines and human answers, judged on the new text only."""

from __future__ import annotations

from datetime import date
from email.message import EmailMessage

import pytest

from cadence.core.classify import classify
from cadence.core.classify._text import new_text
from cadence.core.model import InboundKind

K = InboundKind
FOOTER = "If you'd rather not hear from me, just reply 'unsubscribe'."
OUTREACH = f"Hi,\n\nShall we compare notes on invoice approvals?\n\nAnna\n\n{FOOTER}\n"


def reply(
    text: str,
    *,
    subject: str = "Re: Invoice approvals",
    quote: str = "gmail",
    html: bool = False,
    headers: dict[str, str] | None = None,
    date_header: str = "Tue, 03 Nov 2026 10:12:00 +0000",
) -> bytes:
    message = EmailMessage()
    message["From"] = "Lead Person <lead@recipient.test>"
    message["To"] = "anna@sender.test"
    message["Subject"] = subject
    message["Date"] = date_header
    message["Message-ID"] = "<reply-1@recipient.test>"
    message["In-Reply-To"] = "<cad-0002@sender.test>"
    message["References"] = "<cad-0001@sender.test> <cad-0002@sender.test>"
    for name, value in (headers or {}).items():
        message[name] = value
    if quote == "gmail":
        quoted = "\n".join("> " + line for line in OUTREACH.splitlines())
        body = f"{text}\n\nOn Mon, 2 Nov 2026 at 09:00, Anna Berg <anna@sender.test> wrote:\n{quoted}\n"
    elif quote == "outlook":
        body = (
            f"{text}\n\n________________________________\nFrom: Anna Berg <anna@sender.test>\n"
            f"Sent: 02 November 2026 09:00\nTo: Lead Person\nSubject: Invoice approvals\n\n{OUTREACH}"
        )
    elif quote == "original":
        body = f"{text}\n\n-----Original Message-----\nFrom: Anna Berg\nSent: Monday\n\n{OUTREACH}"
    else:
        body = text
    if html:
        paragraphs = "".join(f"<p>{line}</p>" for line in text.splitlines())
        quoted_html = "".join(f"<p>{line}</p>" for line in OUTREACH.splitlines())
        message.set_content(
            f"<html><body>{paragraphs}<div class='gmail_quote'><blockquote>{quoted_html}</blockquote></div>"
            "</body></html>",
            subtype="html",
        )
    else:
        message.set_content(body)
    return message.as_bytes()


# --- quote, signature and footer stripping ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Yes please.\n\nOn Tue, 3 Nov 2026 at 10:12, Anna Berg <anna@sender.test> wrote:\n> reply "
            "'unsubscribe'",
            "Yes please.",
        ),
        (
            "Ja gerne.\n\nAm 03.11.2026 um 10:12 schrieb Anna Berg <anna@sender.test>:\n> Abmelden?",
            "Ja gerne.",
        ),
        (
            "Oui.\n\nLe mar. 3 nov. 2026 à 10:12, Anna Berg <anna@sender.test> a écrit :\n> désinscrire",
            "Oui.",
        ),
        ("Sí.\n\nEl mar, 3 nov 2026 a las 10:12, Anna Berg (<anna@sender.test>) escribió:\n> baja", "Sí."),
        ("Ja.\n\nOp di 3 nov. 2026 om 10:12 schreef Anna Berg <anna@sender.test>:\n> afmelden", "Ja."),
        (
            "Sì.\n\nIl giorno mar 3 nov 2026 alle ore 10:12 Anna Berg <anna@sender.test> ha scritto:\n> x",
            "Sì.",
        ),
        ("Sim.\n\nEm ter., 3 de nov. de 2026 às 10:12, Anna Berg <anna@sender.test> escreveu:\n> x", "Sim."),
        ("Tak.\n\nW dniu 3.11.2026 o 10:12, Anna Berg <anna@sender.test> pisze:\n> x", "Tak."),
        ("Ja.\n\nDen tis 3 nov. 2026 kl 10:12 skrev Anna Berg <anna@sender.test>:\n> x", "Ja."),
        (
            "Sounds good.\n\n-----Original Message-----\nFrom: Anna\nSent: Monday\n\nreply 'unsubscribe'",
            "Sounds good.",
        ),
        (
            "Klingt gut.\n\nVon: Anna Berg <anna@sender.test>\nGesendet: Montag, 2. November 2026 09:00\n"
            "An: Lead\nBetreff: Rechnungen\n\nreply 'unsubscribe'",
            "Klingt gut.",
        ),
        (
            "Thanks!\n\n-- \nLead Person\nCFO, Recipient Ltd\nTo unsubscribe from our newsletter click here",
            "Thanks!",
        ),
        ("Call me.\n\nSent from my iPhone", "Call me."),
        (
            "Call me Monday.\n\nThis e-mail is confidential and intended solely for the addressee. If you "
            "are "
            "not the intended recipient, please delete it and unsubscribe.",
            "Call me Monday.",
        ),
    ],
    ids=[
        "gmail-en",
        "de",
        "fr",
        "es",
        "nl",
        "it",
        "pt",
        "pl",
        "sv",
        "original-message",
        "outlook-de",
        "signature",
        "iphone",
        "legal-footer",
    ],
)
def test_new_text_drops_quotes_signatures_and_footers(text: str, expected: str) -> None:
    assert new_text(text) == expected


def test_inline_answers_below_a_quote_header_are_kept() -> None:
    text = (
        "On Tue, 3 Nov 2026 at 10:12, Anna Berg <anna@sender.test> wrote:\n> How many invoices a month?\n"
        "About 2,000.\n> Do you use an ERP?\nYes, Business Central.\n> reply 'unsubscribe'\n"
    )
    assert new_text(text) == "About 2,000.\nYes, Business Central."


# --- unsubscribe --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Unsubscribe",
        "Please remove me from your mailing list.",
        "Take me off this list, thanks.",
        "Stop emailing me.",
        "STOP",
        "I never signed up for this. Do not contact me again.",
        "Under GDPR Article 17 I request erasure of my personal data.",
        "Bitte nehmen Sie mich aus Ihrem Verteiler.",
        "Ich möchte keine weiteren E-Mails von Ihnen erhalten.",
        "Merci de me désinscrire de vos envois.",
        "Ne plus me contacter, s'il vous plaît.",
        "Por favor, dadme de baja de esta lista.",
        "No me envíen más correos.",
        "Graag uitschrijven.",
        "Verwijder mijn e-mailadres uit uw bestand.",
        "Vi prego di cancellarmi dalla vostra mailing list.",
        "Non scrivetemi più, grazie.",
        "Por favor, removam o meu contacto da vossa lista.",
        "Não me enviem mais emails.",
        "Proszę wypisać mnie z listy mailingowej.",
        "Proszę usunąć mój adres z bazy.",
        "Ta bort mig från er utskickslista.",
        "Sluta skicka mejl till mig.",
    ],
)
def test_unsubscribe_requests(text: str) -> None:
    verdict = classify(reply(text))
    assert verdict.kind is K.UNSUBSCRIBE, text


def test_unsubscribe_typed_only_in_a_rewritten_subject() -> None:
    assert classify(reply("", subject="unsubscribe", quote="none")).kind is K.UNSUBSCRIBE


def test_unsubscribe_in_html_only_reply() -> None:
    assert classify(reply("Please take me off your list.", html=True)).kind is K.UNSUBSCRIBE


@pytest.mark.parametrize("quote", ["gmail", "outlook", "original"])
def test_quoted_footer_alone_is_not_an_unsubscribe(quote: str) -> None:
    verdict = classify(reply("Thanks Anna, what would a pilot cost for 3 entities?", quote=quote))
    assert verdict.kind is K.REPLY


@pytest.mark.parametrize(
    "text",
    [
        "Please don't unsubscribe me, I just have no time this month. Try me in January.",
        "We unsubscribed from a similar tool last year. How is yours different?",
        "Could you remove the attachment and send the deck as a link?",
        "Please remove Tom from this thread, I'm taking over. When can we talk?",
        "Stop by our booth at the expo next week!",
        "We stopped using our old AP portal in May - tell me more about yours.",
        "Bitte nicht abmelden, ich melde mich im Februar.",
        "No me des de baja, escríbeme en marzo.",
        "Niet afmelden hoor, volgende maand graag een demo.",
    ],
)
def test_hard_negatives_are_replies(text: str) -> None:
    assert classify(reply(text)).kind is K.REPLY, text


# --- not interested -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Not interested, thanks.",
        "We're happy with our current provider.",
        "Thanks, but we already have a solution for this.",
        "No budget for this in 2027.",
        "Pass.",
        "Kein Interesse, danke.",
        "Nous ne sommes pas intéressés pour le moment.",
        "No nos interesa, gracias.",
        "Geen interesse, bedankt.",
        "Non siamo interessati.",
        "Não temos interesse neste momento.",
        "Nie jesteśmy zainteresowani.",
        "Vi är inte intresserade, tack.",
    ],
)
def test_declines(text: str) -> None:
    assert classify(reply(text)).kind is K.NOT_INTERESTED, text


@pytest.mark.parametrize(
    "text",
    [
        "I'm not uninterested - what does it cost?",
        "Not interested in a demo, but could you send me the pricing sheet?",
        "Write to me again in March, we are mid-audit.",
    ],
)
def test_engaged_answers_are_replies(text: str) -> None:
    assert classify(reply(text)).kind is K.REPLY, text


def test_decline_plus_removal_is_an_unsubscribe() -> None:
    assert classify(reply("Not interested. Please remove me from your list.")).kind is K.UNSUBSCRIBE


# --- auto-replies -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"Auto-Submitted": "auto-replied"},
        {"X-Autoreply": "yes"},
        {"X-Autorespond": "true"},
        {"Precedence": "auto_reply"},
    ],
)
def test_auto_reply_headers(headers: dict[str, str]) -> None:
    verdict = classify(reply("Thanks for your message.", headers=headers, quote="none"))
    assert verdict.kind is K.AUTO_REPLY


def test_auto_submitted_no_is_not_automatic() -> None:
    verdict = classify(reply("Let's talk on Friday?", headers={"Auto-Submitted": "no"}))
    assert verdict.kind is K.REPLY


def test_x_auto_response_suppress_alone_does_not_make_a_person_a_robot() -> None:
    verdict = classify(
        reply(
            "I'm out of the office this week, but yes - let's talk. Tuesday?",
            headers={"X-Auto-Response-Suppress": "All"},
        )
    )
    assert verdict.kind is K.REPLY


@pytest.mark.parametrize(
    ("subject", "text", "returns"),
    [
        (
            "Out of Office: Invoice approvals",
            "I am out of the office until 16 November with limited access to email.",
            date(2026, 11, 16),
        ),
        (
            "Automatische Antwort: Rechnungen",
            "Ich bin bis einschließlich 20. November nicht im Büro.",
            date(2026, 11, 20),
        ),
        (
            "Réponse automatique : Factures",
            "Je suis absente jusqu'au 18 novembre inclus.",
            date(2026, 11, 18),
        ),
        (
            "Respuesta automática: Facturas",
            "Estaré fuera de la oficina hasta el 9 de diciembre.",
            date(2026, 12, 9),
        ),
        ("Automatisch antwoord: Facturen", "Ik ben afwezig tot en met 27 november.", date(2026, 11, 27)),
        ("Risposta automatica: Fatture", "Sono fuori ufficio fino al 2 dicembre.", date(2026, 12, 2)),
        ("Resposta automática: Faturas", "Estou de férias até 4 de janeiro.", date(2027, 1, 4)),
        ("Odpowiedź automatyczna: Faktury", "Jestem na urlopie do 30 listopada.", date(2026, 11, 30)),
        ("Autosvar: Fakturor", "Jag är på semester till och med 6 januari.", date(2027, 1, 6)),
        (
            "Automatic reply: Invoice approvals",
            "I'm away until 04/01/2027 and will reply when I'm back.",
            date(2027, 1, 4),
        ),
        ("Out of Office", "I am currently out of the office and will respond on my return.", None),
    ],
    ids=["en", "de", "fr", "es", "nl", "it", "pt", "pl", "sv", "numeric", "no-date"],
)
def test_auto_replies_by_text_with_return_date(subject: str, text: str, returns: date | None) -> None:
    verdict = classify(reply(text, subject=subject, quote="none"))
    assert verdict.kind is K.AUTO_REPLY
    assert verdict.return_date == returns


def test_left_company_auto_reply_says_so() -> None:
    verdict = classify(
        reply(
            "Maria Lopez is no longer with Acme. Please write to finance@acme.test instead.",
            quote="none",
            headers={"Auto-Submitted": "auto-generated"},
        )
    )
    assert verdict.kind is K.AUTO_REPLY
    assert verdict.reason == "left_company"


def test_return_date_is_read_relative_to_the_date_header() -> None:
    verdict = classify(
        reply(
            "I'm on annual leave until 5 January.",
            subject="Automatic reply: hello",
            quote="none",
            date_header="Mon, 28 Dec 2026 08:00:00 +0000",
        )
    )
    assert verdict.return_date == date(2027, 1, 5)


# --- threading and identity ---------------------------------------------------------------------------------


def test_threading_fields_newest_first() -> None:
    verdict = classify(reply("Sounds good."))
    assert verdict.kind is K.REPLY
    assert verdict.from_address == "lead@recipient.test"
    assert verdict.message_id == "<reply-1@recipient.test>"
    assert verdict.in_reply_to == ("<cad-0002@sender.test>", "<cad-0001@sender.test>")


def test_a_message_that_is_no_reply_is_other() -> None:
    message = EmailMessage()
    message["From"] = "news@shop.test"
    message["To"] = "anna@sender.test"
    message["Subject"] = "Our autumn catalogue"
    message.set_content("Have a look at our new products.")
    assert classify(message.as_bytes()).kind is K.OTHER


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("Opt-out", K.UNSUBSCRIBE),  # starts like a Dutch quote header ('Op ... schreef')
        ("On second thought, remove me from your list.", K.UNSUBSCRIBE),  # starts like 'On ... wrote:'
        ("I do not wish to receive these emails.", K.UNSUBSCRIBE),
        ("Please cease all contact.", K.UNSUBSCRIBE),
        ("Je ne souhaite plus recevoir vos courriels.", K.UNSUBSCRIBE),
        ("Ik wil geen e-mails meer ontvangen.", K.UNSUBSCRIBE),
        ("I don't want to receive a contract before we talk. Can we call?", K.REPLY),
        ("I left you a voicemail this morning.", K.REPLY),
        ("Our CFO has left, so I'm handling this now. Send me the details.", K.REPLY),
        ("Ça ne nous intéresse pas.", K.NOT_INTERESTED),
        ("I'll have to politely decline.", K.NOT_INTERESTED),
    ],
)
def test_more_phrasings(text: str, kind: InboundKind) -> None:
    assert classify(reply(text)).kind is kind, text


@pytest.mark.parametrize(
    "text",
    ["Please remove.", "STOP please", "Remove me, thanks!", "Remove from list", "I want to be unsubscribed."],
)
def test_short_and_passive_requests(text: str) -> None:
    assert classify(reply(text)).kind is K.UNSUBSCRIBE, text
