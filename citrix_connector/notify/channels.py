"""The two channels: e-mail over SMTP (STARTTLS or implicit TLS, verified) and a JSON webhook over HTTPS.

Each ``send_*`` delivers one :class:`~citrix_connector.notify.render.Message` or raises
:class:`~citrix_connector.errors.NotifyError` with a one-line reason that names the server (never a
password, never a webhook URL: those often carry the token).
"""

from __future__ import annotations

import json
import logging
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from urllib.parse import urlsplit

import requests

from .. import __version__
from ..errors import NotifyError
from ..proxy import own_credentials_only
from .render import Message
from .settings import EmailChannel, WebhookChannel

__all__ = ["send", "send_email", "send_webhook", "tls_context"]

log = logging.getLogger("citrixagent.notify")


def tls_context(verify: bool | Path) -> ssl.SSLContext:
    """A verifying client context: the system store, or only the given CA bundle."""
    if isinstance(verify, Path):
        try:
            return ssl.create_default_context(cafile=str(verify))
        except (OSError, ssl.SSLError) as exc:
            raise NotifyError(f"cannot read the CA bundle {verify}: {exc}") from None
    return ssl.create_default_context()


def _email(channel: EmailChannel, message: Message, run_id: str) -> EmailMessage:
    mail = EmailMessage()
    mail["Subject"] = message.subject
    mail["From"] = channel.sender
    mail["To"] = ", ".join(channel.recipients)
    mail["Date"] = formatdate(localtime=False, usegmt=True)
    mail["Message-ID"] = make_msgid("citrixagent", domain=channel.sender.rpartition("@")[2])
    mail["X-Citrixagent-Run"] = run_id
    mail["Auto-Submitted"] = "auto-generated"
    mail.set_content(message.text)
    return mail


def send_email(channel: EmailChannel, message: Message, *, run_id: str = "-") -> None:
    host, port = channel.host, channel.effective_port
    where = f"SMTP server {host}:{port}"
    context = tls_context(channel.verify_tls)
    mail = _email(channel, message, run_id)
    try:
        if channel.security == "tls":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=channel.timeout, context=context)
        else:
            smtp = smtplib.SMTP(host, port, timeout=channel.timeout)
        try:
            if channel.security == "starttls":
                smtp.ehlo()
                if not smtp.has_extn("starttls"):
                    raise NotifyError(f"{where} does not offer STARTTLS (security: starttls); nothing sent")
                smtp.starttls(context=context)
                smtp.ehlo()
            if channel.username is not None and channel.password is not None:
                smtp.login(channel.username, channel.password.reveal())
            refused = smtp.send_message(mail, from_addr=channel.sender, to_addrs=list(channel.recipients))
        finally:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()
    except NotifyError:
        raise
    except smtplib.SMTPAuthenticationError as exc:
        raise NotifyError(
            f"{where} refused the login of {channel.username}: {exc.smtp_code} {_text(exc.smtp_error)}"
        ) from None
    except smtplib.SMTPNotSupportedError:
        raise NotifyError(f"{where} does not support login (AUTH) over this connection") from None
    except smtplib.SMTPRecipientsRefused as exc:
        raise NotifyError(f"{where} refused every recipient: {', '.join(exc.recipients)}") from None
    except smtplib.SMTPResponseException as exc:
        raise NotifyError(f"{where} answered {exc.smtp_code} {_text(exc.smtp_error)}") from None
    except ssl.SSLCertVerificationError as exc:
        raise NotifyError(
            f"TLS verification failed for {where}: {exc.verify_message or exc.reason} "
            "(give the CA bundle that signs its certificate as verify_tls)"
        ) from None
    except ssl.SSLError as exc:
        raise NotifyError(f"TLS with {where} failed: {exc.reason or exc}") from None
    except (smtplib.SMTPException, OSError) as exc:
        raise NotifyError(f"cannot talk to {where}: {_text(str(exc)) or type(exc).__name__}") from None
    if refused:
        log.warning("%s refused some recipients: %s", where, ", ".join(sorted(refused)))


def _text(value: object) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return " ".join(text.split())[:300]


def _host(url: str) -> str:
    parts = urlsplit(url)
    return parts.netloc.rpartition("@")[2] or "?"


def send_webhook(channel: WebhookChannel, message: Message, *, run_id: str = "-") -> None:
    url = channel.url.reveal()
    where = f"webhook {channel.name} ({_host(url)})"
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"citrixagent/{__version__}",
        "X-Citrixagent-Run": run_id,
    }
    if channel.bearer_token is not None:
        headers["Authorization"] = f"Bearer {channel.bearer_token.reveal()}"
    headers.update({k: v.reveal() for k, v in channel.headers.items()})
    verify: bool | str = str(channel.verify_tls) if isinstance(channel.verify_tls, Path) else True
    body = json.dumps(message.payload, ensure_ascii=False).encode("utf-8")
    try:
        with requests.Session() as session:
            # never a ~/.netrc login: requests would send it as Basic auth in place of the bearer token
            session.auth = own_credentials_only
            response = session.post(
                url, data=body, headers=headers, verify=verify, timeout=channel.timeout, allow_redirects=False
            )
    except requests.exceptions.SSLError:
        raise NotifyError(
            f"TLS verification failed for {where}: its certificate is not trusted "
            "(give the CA bundle that signs it as verify_tls)"
        ) from None
    except requests.exceptions.Timeout:
        raise NotifyError(f"{where} did not answer within {channel.timeout:g}s") from None
    except requests.exceptions.ConnectionError:
        raise NotifyError(f"cannot connect to {where} (refused, reset or unreachable)") from None
    except requests.RequestException as exc:
        raise NotifyError(f"request to {where} failed: {type(exc).__name__}") from None
    if not 200 <= response.status_code < 300:
        snippet = _text(response.text)[:200]
        raise NotifyError(
            f"{where} answered HTTP {response.status_code}" + (f": {snippet}" if snippet else "")
        )


def send(channel: EmailChannel | WebhookChannel, message: Message, *, run_id: str = "-") -> None:
    if isinstance(channel, EmailChannel):
        send_email(channel, message, run_id=run_id)
    else:
        send_webhook(channel, message, run_id=run_id)
