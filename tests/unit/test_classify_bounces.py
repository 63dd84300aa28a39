"""Bounces and complaints: RFC 3464 reports, free-text bounces of the common MTAs, provider JSON, ARF."""

from __future__ import annotations

import json

import pytest

from cadence.core.classify import classify
from cadence.core.model import InboundKind

K = InboundKind


def mail(headers: dict[str, str], body: str) -> bytes:
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return (head + "\r\n" + body.replace("\n", "\r\n")).encode("utf-8")


DAEMON = {
    "From": "Mail Delivery System <MAILER-DAEMON@mx.sender.test>",
    "To": "anna@sender.test",
    "Date": "Tue, 03 Nov 2026 10:00:00 +0000",
    "Message-ID": "<bounce-1@mx.sender.test>",
}


def dsn(
    per_recipient: str,
    *,
    text: str = "Your message could not be delivered.",
    original: str = "message/rfc822",
) -> bytes:
    headers = dict(
        DAEMON,
        **{
            "Subject": "Undelivered Mail Returned to Sender",
            "MIME-Version": "1.0",
            "Content-Type": 'multipart/report; report-type=delivery-status; boundary="B"',
        },
    )
    body = f"""--B
Content-Type: text/plain; charset=us-ascii

{text}

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.sender.test
Arrival-Date: Tue, 03 Nov 2026 09:59:00 +0000

{per_recipient}
--B
Content-Type: {original}

From: Anna Berg <anna@sender.test>
To: Lead <lead@recipient.test>
Subject: Quick question
Message-ID: <cad-0042@sender.test>

Hello
--B--
"""
    return mail(headers, body)


def test_rfc3464_failed_recipient_with_original_message_id() -> None:
    verdict = classify(
        dsn(
            "Final-Recipient: rfc822; lead@recipient.test\nOriginal-Recipient: rfc822;lead@recipient.test\n"
            "Action: failed\nStatus: 5.1.1\nDiagnostic-Code: smtp; 550 5.1.1 <lead@recipient.test>: "
            "Recipient address rejected: User unknown in virtual mailbox table\n"
        )
    )
    assert verdict.kind is K.HARD_BOUNCE
    assert verdict.recipients == ("lead@recipient.test",)
    assert verdict.status == "5.1.1"
    assert verdict.reason == "user_unknown"
    assert verdict.address_dead is True
    assert verdict.original_message_id == "<cad-0042@sender.test>"
    assert verdict.message_id == "<bounce-1@mx.sender.test>"
    assert verdict.error is None


def test_original_as_text_rfc822_headers() -> None:
    verdict = classify(
        dsn(
            "Final-Recipient: rfc822; lead@recipient.test\nAction: failed\nStatus: 5.1.2\n"
            "Diagnostic-Code: X-Postfix; Host or domain name not found. Name service error\n",
            original="text/rfc822-headers",
        )
    )
    assert verdict.kind is K.HARD_BOUNCE
    assert verdict.reason == "host_unknown"
    assert verdict.address_dead is True
    assert verdict.original_message_id == "<cad-0042@sender.test>"


def test_failed_action_with_4xx_status_is_soft() -> None:
    verdict = classify(
        dsn(
            "Final-Recipient: rfc822; full@recipient.test\nAction: failed\nStatus: 4.2.2\n"
            "Diagnostic-Code: smtp; 452 4.2.2 Mailbox full\n"
        )
    )
    assert verdict.kind is K.SOFT_BOUNCE
    assert verdict.status == "4.2.2"
    assert verdict.reason == "mailbox_full"
    assert verdict.address_dead is False
    assert verdict.delayed is False


def test_delayed_action_is_a_soft_warning_never_hard() -> None:
    verdict = classify(
        dsn(
            "Final-Recipient: rfc822; slow@recipient.test\nAction: delayed\nStatus: 5.4.7\n"
            "Diagnostic-Code: smtp; connection timed out\n",
            text="Delivery to the following recipient has been delayed. This is a warning only.",
        )
    )
    assert verdict.kind is K.SOFT_BOUNCE
    assert verdict.delayed is True
    assert verdict.status is not None and verdict.status.startswith("4.")


def test_delivery_success_report_is_other() -> None:
    verdict = classify(
        dsn("Final-Recipient: rfc822; lead@recipient.test\nAction: delivered\nStatus: 2.0.0\n")
    )
    assert verdict.kind is K.OTHER
    assert verdict.recipients == ()


def test_policy_rejection_is_hard_but_the_address_is_not_dead() -> None:
    verdict = classify(
        dsn(
            "Final-Recipient: rfc822; lead@recipient.test\nAction: failed\nStatus: 5.7.1\n"
            "Diagnostic-Code: smtp; 550 5.7.1 Service unavailable; client host [192.0.2.7] blocked using "
            "zen.spamhaus.org\n"
        )
    )
    assert verdict.kind is K.HARD_BOUNCE
    assert verdict.address_dead is False
    assert verdict.reason == "spam"


def test_mixed_report_reports_every_failed_recipient() -> None:
    verdict = classify(
        dsn(
            "Final-Recipient: rfc822; gone@recipient.test\nAction: failed\nStatus: 5.1.1\n"
            "Diagnostic-Code: smtp; 550 5.1.1 user unknown\n\n"
            "Final-Recipient: rfc822; later@recipient.test\nAction: delayed\nStatus: 4.4.1\n\n"
            "Final-Recipient: rfc822; fine@recipient.test\nAction: delivered\nStatus: 2.0.0\n"
        )
    )
    assert verdict.kind is K.HARD_BOUNCE
    assert verdict.recipients == ("gone@recipient.test",)


@pytest.mark.parametrize(
    ("diagnostic", "throttle_mark"),
    [
        (
            "421-4.7.28 Gmail has detected an unusual rate of unsolicited mail originating from your SPF "
            "domain",
            "4.7.28",
        ),
        ("421 4.7.0 [TSS04] Messages from 192.0.2.7 temporarily deferred due to unexpected volume", "TSS04"),
        (
            "451 4.7.650 The mail server [192.0.2.7] has been temporarily rate limited due to IP reputation",
            "4.7.650",
        ),
        ("421 RP-001 (BAY004-MC1F12) Unfortunately, some messages from 192.0.2.7 weren't sent", "RP-001"),
    ],
)
def test_throttling_text_inside_a_report(diagnostic: str, throttle_mark: str) -> None:
    verdict = classify(
        dsn(
            f"Final-Recipient: rfc822; lead@recipient.test\nAction: delayed\nStatus: 4.7.0\n"
            f"Diagnostic-Code: smtp; {diagnostic}\n"
        )
    )
    assert verdict.kind is K.SOFT_BOUNCE
    assert verdict.throttling is not None and throttle_mark in verdict.throttling


def test_no_throttling_on_a_plain_user_unknown() -> None:
    verdict = classify(dsn("Final-Recipient: rfc822; a@recipient.test\nAction: failed\nStatus: 5.1.1\n"))
    assert verdict.throttling is None


# --- free-text bounces -------------------------------------------------------------------------------

EXIM = """This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  nobody.here@recipient.test
    host mx.recipient.test [192.0.2.25]
    SMTP error from remote mail server after RCPT TO:<nobody.here@recipient.test>:
    550 No such user here

------ This is a copy of the message, including all the headers. ------

Return-path: <anna@sender.test>
Message-Id: <cad-0099@sender.test>
From: anna@sender.test
To: nobody.here@recipient.test
Subject: Quick question
"""

QMAIL = """Hi. This is the qmail-send program at mail.sender.test.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<first@one.test>:
192.0.2.1 does not like recipient.
Remote host said: 550 5.1.1 <first@one.test>... User unknown
Giving up on 192.0.2.1.

<second@two.test>:
192.0.2.2 does not like recipient.
Remote host said: 552 5.2.2 <second@two.test>... Mailbox full
Giving up on 192.0.2.2.

--- Below this line is a copy of the message.

Return-Path: <anna@sender.test>
From: anna@sender.test
To: first@one.test, second@two.test
"""

SENDMAIL = """The original message was received at Tue, 3 Nov 2026 10:00:00 +0000
from localhost [127.0.0.1]

   ----- The following addresses had permanent fatal errors -----
<old.lead@recipient.test>
    (reason: 550 5.1.1 <old.lead@recipient.test>... User unknown)

   ----- Transcript of session follows -----
... while talking to mx.recipient.test.:
>>> RCPT To:<old.lead@recipient.test>
<<< 550 5.1.1 <old.lead@recipient.test>... User unknown
550 5.1.1 <old.lead@recipient.test>... User unknown
"""

OFFICE365 = """Delivery has failed to these recipients or groups:

lead@contoso.test<mailto:lead@contoso.test>
The email address you entered couldn't be found. Please check the recipient's email address and try to resend
the message. If the problem continues, please contact your helpdesk.

Diagnostic information for administrators:

Generating server: AM0PR01MB1234.eurprd01.prod.outlook.com

lead@contoso.test
Remote Server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient lead@contoso.test not found by
SMTP address lookup'

Original message headers:

Received: from AM0PR01MB1234.eurprd01.prod.outlook.com (2603:10a6::1) by AM0PR01MB1234
From: Anna Berg <anna@sender.test>
To: <lead@contoso.test>
Message-ID: <cad-0100@sender.test>
"""

GMAIL_NEW = """
** Address not found **

Your message wasn't delivered to missing.person@example-corp.test because the address couldn't be found, or is
unable to receive mail.

Learn more here: https://support.google.com/mail/?p=NoSuchUser

The response was:

The email account that you tried to reach does not exist. Please try double-checking the recipient's email
address for typos or unnecessary spaces.
"""

DOMINO = """Your message

  Subject: Quick question

was not delivered to:

  hans.meier@firma.test

because:

  User hans.meier (hans.meier@firma.test) not listed in Domino Directory
"""

YAHOO_TS03 = """Sorry, we were unable to deliver your message to the following address.

<lead@yahoo.test>:
Remote host said: 554 5.7.9 Message not accepted for policy reasons.  See
https://postmaster.yahooinc.com/error-codes [TS03] [RCPT_TO]

--- Below this line is a copy of the message.
"""


@pytest.mark.parametrize(
    ("subject", "extra_headers", "body", "kind", "recipients", "status", "reason", "dead"),
    [
        (
            "Mail delivery failed: returning message to sender",
            {"X-Failed-Recipients": "nobody.here@recipient.test"},
            EXIM,
            K.HARD_BOUNCE,
            ("nobody.here@recipient.test",),
            "5.1.1",
            "user_unknown",
            True,
        ),
        (
            "failure notice",
            {},
            QMAIL,
            K.HARD_BOUNCE,
            ("first@one.test", "second@two.test"),
            "5.1.1",
            "user_unknown",
            True,
        ),
        (
            "Returned mail: see transcript for details",
            {},
            SENDMAIL,
            K.HARD_BOUNCE,
            ("old.lead@recipient.test",),
            "5.1.1",
            "user_unknown",
            True,
        ),
        (
            "Undeliverable: Quick question",
            {},
            OFFICE365,
            K.HARD_BOUNCE,
            ("lead@contoso.test",),
            "5.1.10",
            "user_unknown",
            True,
        ),
        (
            "Delivery Status Notification (Failure)",
            {},
            GMAIL_NEW,
            K.HARD_BOUNCE,
            ("missing.person@example-corp.test",),
            "5.1.1",
            "user_unknown",
            True,
        ),
        (
            "DELIVERY FAILURE: User hans.meier (hans.meier@firma.test) not listed in Domino Directory",
            {},
            DOMINO,
            K.HARD_BOUNCE,
            ("hans.meier@firma.test",),
            "5.1.1",
            "user_unknown",
            True,
        ),
        ("Failure Notice", {}, YAHOO_TS03, K.HARD_BOUNCE, ("lead@yahoo.test",), "5.7.9", None, False),
    ],
    ids=["exim", "qmail", "sendmail", "office365", "gmail", "domino", "yahoo-ts03"],
)
def test_text_bounces(
    subject: str,
    extra_headers: dict[str, str],
    body: str,
    kind: InboundKind,
    recipients: tuple[str, ...],
    status: str,
    reason: str | None,
    dead: bool,
) -> None:
    verdict = classify(mail(dict(DAEMON, Subject=subject, **extra_headers), body))
    assert verdict.kind is kind
    assert verdict.recipients == recipients
    assert verdict.status == status
    if reason is not None:
        assert verdict.reason == reason
    assert verdict.address_dead is dead
    assert "anna@sender.test" not in verdict.recipients


def test_yahoo_ts03_is_reported_as_throttling() -> None:
    verdict = classify(mail(dict(DAEMON, Subject="Failure Notice"), YAHOO_TS03))
    assert verdict.throttling is not None and "TS03" in verdict.throttling


def test_original_message_id_from_a_text_bounce() -> None:
    verdict = classify(mail(dict(DAEMON, Subject="Undeliverable: Quick question"), OFFICE365))
    assert verdict.original_message_id == "<cad-0100@sender.test>"


@pytest.mark.parametrize(
    ("diagnostic", "status", "reason", "kind", "dead"),
    [
        (
            "550 Requested action not taken: mailbox unavailable (user unknown)",
            "5.1.1",
            "user_unknown",
            K.HARD_BOUNCE,
            True,
        ),
        (
            "552 Requested mail action aborted: exceeded storage allocation, mailbox full",
            "5.2.2",
            "mailbox_full",
            K.HARD_BOUNCE,
            False,
        ),
        ("450 Mailbox quota exceeded, try again later", "4.2.2", "mailbox_full", K.SOFT_BOUNCE, False),
        ("554 Host unknown: no such domain", "5.1.2", "host_unknown", K.HARD_BOUNCE, True),
        ("550 This account has been disabled or discontinued", "5.2.1", "disabled", K.HARD_BOUNCE, True),
    ],
)
def test_status_is_derived_from_reply_code_and_text(
    diagnostic: str, status: str, reason: str, kind: InboundKind, dead: bool
) -> None:
    body = f"""I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

<lead@recipient.test>: host mx.recipient.test[192.0.2.5] said: {diagnostic}
    (in reply to RCPT TO command)
"""
    verdict = classify(mail(dict(DAEMON, Subject="Undelivered Mail Returned to Sender"), body))
    assert (verdict.kind, verdict.status, verdict.reason, verdict.address_dead) == (
        kind,
        status,
        reason,
        dead,
    )
    assert verdict.recipients == ("lead@recipient.test",)


def test_warning_text_bounce_is_soft_and_delayed() -> None:
    body = """This is an automatically generated Delivery Status Notification

THIS IS A WARNING MESSAGE ONLY.

YOU DO NOT NEED TO RESEND YOUR MESSAGE.

Delivery to the following recipient has been delayed:

     slow@recipient.test

Message will be retried for 2 more day(s)
"""
    verdict = classify(mail(dict(DAEMON, Subject="Delivery Status Notification (Delay)"), body))
    assert verdict.kind is K.SOFT_BOUNCE
    assert verdict.delayed is True
    assert verdict.recipients == ("slow@recipient.test",)


def test_amazon_ses_json_bounce_and_complaint() -> None:
    bounce = {
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": "Permanent",
            "bounceSubType": "General",
            "bouncedRecipients": [
                {
                    "emailAddress": "gone@recipient.test",
                    "action": "failed",
                    "status": "5.1.1",
                    "diagnosticCode": "smtp; 550 5.1.1 user unknown",
                }
            ],
        },
        "mail": {"commonHeaders": {"messageId": "<cad-7@sender.test>"}},
    }
    envelope = {"Type": "Notification", "Message": json.dumps(bounce)}
    headers = {
        "From": "no-reply@sns.amazonaws.test",
        "To": "anna@sender.test",
        "Subject": "AWS Notification Message",
    }
    verdict = classify(mail(headers, json.dumps(envelope, indent=2)))
    assert (verdict.kind, verdict.recipients, verdict.status) == (
        K.HARD_BOUNCE,
        ("gone@recipient.test",),
        "5.1.1",
    )
    assert verdict.original_message_id == "<cad-7@sender.test>"

    complaint = {
        "notificationType": "Complaint",
        "complaint": {"complainedRecipients": [{"emailAddress": "angry@recipient.test"}]},
    }
    verdict = classify(mail(headers, json.dumps(complaint)))
    assert (verdict.kind, verdict.recipients) == (K.COMPLAINT, ("angry@recipient.test",))

    delivery = {"notificationType": "Delivery", "delivery": {"recipients": ["happy@recipient.test"]}}
    assert classify(mail(headers, json.dumps(delivery))).kind is K.OTHER


ARF = """--A
Content-Type: text/plain

This is an email abuse report for an email message received from IP 192.0.2.7.

--A
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: SomeGenerator/1.0
Version: 1
Original-Rcpt-To: <complainer@isp.test>

--A
Content-Type: message/rfc822

From: Anna Berg <anna@sender.test>
To: complainer@isp.test
Subject: Quick question
Message-ID: <cad-0500@sender.test>

Hello
--A--
"""


def test_arf_feedback_report_is_a_complaint_about_the_original_recipient() -> None:
    headers = {
        "From": "staff@isp.test",
        "To": "abuse@sender.test",
        "Subject": "Abuse report",
        "MIME-Version": "1.0",
        "Content-Type": 'multipart/report; report-type=feedback-report; boundary="A"',
    }
    verdict = classify(mail(headers, ARF))
    assert verdict.kind is K.COMPLAINT
    assert verdict.recipients == ("complainer@isp.test",)
    assert verdict.reason == "abuse"
    assert verdict.original_message_id == "<cad-0500@sender.test>"


def test_a_person_mentioning_delivery_problems_is_not_a_bounce() -> None:
    headers = {
        "From": "Lead <lead@recipient.test>",
        "To": "anna@sender.test",
        "Subject": "Re: Quick question",
        "In-Reply-To": "<cad-0042@sender.test>",
    }
    body = (
        "Hi Anna, your first mail could not be delivered to our old address, it was rejected by the "
        "filter. Happy to talk next week though.\n"
    )
    verdict = classify(mail(headers, body))
    assert verdict.kind is K.REPLY
    assert verdict.recipients == ()


# --- broken input --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [b"", b"   \r\n", b"\x00\x01\x02binary garbage \xff\xfe" * 50],
    ids=["empty", "blank", "binary"],
)
def test_unparseable_input_gives_other_with_an_error(raw: bytes) -> None:
    verdict = classify(raw)
    assert verdict.kind is K.OTHER
    assert verdict.error


def test_wrong_type_gives_an_error_not_an_exception() -> None:
    verdict = classify("not bytes")  # type: ignore[arg-type]
    assert verdict.kind is K.OTHER and verdict.error


def test_broken_mime_still_classifies() -> None:
    headers = dict(
        DAEMON,
        Subject="Returned mail: User unknown",
        **{"Content-Type": 'multipart/mixed; boundary="never-used"', "MIME-Version": "1.0"},
    )
    body = "---The following addresses had delivery errors---\n\nlost@recipient.test [User unknown]\n"
    verdict = classify(mail(headers, body))
    assert verdict.kind is K.HARD_BOUNCE
    assert verdict.recipients == ("lost@recipient.test",)


def test_wrong_charset_and_bad_base64_do_not_crash() -> None:
    headers = {
        "From": "lead@recipient.test",
        "To": "anna@sender.test",
        "Subject": "=?bogus?Q?Re=3A_hi?=",
        "MIME-Version": "1.0",
        "Content-Type": "text/plain; charset=no-such-charset",
        "Content-Transfer-Encoding": "base64",
        "In-Reply-To": "<cad-1@sender.test>",
    }
    verdict = classify(mail(headers, "@@@ not base64 at all ###\n"))
    assert verdict.error is None
    assert verdict.kind in (K.REPLY, K.OTHER)


def test_a_large_message_is_classified_from_its_first_part() -> None:
    attachment = ("QUJD" * 19 + "\n") * 300_000  # ~23 MB of base64
    body = f"""--M
Content-Type: text/plain

Please unsubscribe me from this list.

--M
Content-Type: application/octet-stream
Content-Transfer-Encoding: base64

{attachment}
--M--
"""
    headers = {
        "From": "lead@recipient.test",
        "To": "anna@sender.test",
        "Subject": "Re: Quick question",
        "MIME-Version": "1.0",
        "Content-Type": 'multipart/mixed; boundary="M"',
    }
    assert classify(mail(headers, body)).kind is K.UNSUBSCRIBE


def test_localized_exchange_report_without_english() -> None:
    body = """Die Zustellung an folgende Empfänger oder Gruppen ist fehlgeschlagen:

max.muster@firma.test
Die E-Mail-Adresse wurde nicht gefunden.

Diagnoseinformationen für Administratoren:

Generierender Server: EX01.firma.test

max.muster@firma.test
Remote Server returned '550 5.1.1 RESOLVER.ADR.RecipNotFound; not found'
"""
    headers = dict(DAEMON, Subject="Unzustellbar: Rechnungsfreigaben")
    headers["From"] = "Microsoft Outlook <postmaster@firma.test>"
    verdict = classify(mail(headers, body))
    assert (verdict.kind, verdict.recipients, verdict.status) == (
        K.HARD_BOUNCE,
        ("max.muster@firma.test",),
        "5.1.1",
    )


def test_forwarded_bounce_counts_but_a_reply_about_one_does_not() -> None:
    forwarded = "Forwarding this.\n\nBegin forwarded message:\n\n" + "\n".join(
        "> " + line for line in SENDMAIL.splitlines()
    )
    person = {"From": "Colleague <colleague@sender.test>", "To": "anna@sender.test"}
    verdict = classify(
        mail(dict(person, Subject="Fwd: Returned mail: see transcript for details"), forwarded)
    )
    assert verdict.kind is K.HARD_BOUNCE
    assert verdict.recipients == ("old.lead@recipient.test",)
    answer = classify(
        mail(
            dict(
                person,
                Subject="Re: Returned mail: see transcript for details",
                **{"In-Reply-To": "<x@sender.test>"},
            ),
            "Odd, I got one of those too. " + forwarded,
        )
    )
    assert answer.kind is K.REPLY


def test_refused_sender_address_does_not_kill_the_recipient() -> None:
    verdict = classify(
        dsn(
            "Final-Recipient: rfc822; lead@recipient.test\nAction: failed\nStatus: 5.1.8\n"
            "Diagnostic-Code: smtp; 553 5.1.8 <anna@sender.test>: Sender address rejected: Domain not found\n"
        )
    )
    assert verdict.kind is K.HARD_BOUNCE
    assert verdict.recipients == ("lead@recipient.test",)
    assert verdict.address_dead is False
