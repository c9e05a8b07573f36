"""The channels against real servers on loopback: an SMTP server (aiosmtpd, STARTTLS and implicit TLS
with a certificate from a sandbox CA, login required) and the sandbox's HTTPS webhook receiver."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from citrix_connector.errors import NotifyError
from citrix_connector.notify.channels import send_email, send_webhook
from citrix_connector.notify.render import Message
from citrix_connector.notify.settings import EmailChannel, WebhookChannel
from citrix_connector.sandbox.ca import LocalCA
from citrix_connector.sandbox.mailcatcher import MailCatcher
from citrix_connector.sandbox.webhook import WebhookReceiver

PASSWORD = "smtp-pass-Zq81"
TOKEN = "hook-token-7Hc2"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes, Path, Path]:
    """(server cert, key, the CA bundle that trusts it, a bundle of an unrelated CA)."""
    ca = LocalCA.create("Notify Test TLS")
    cert, key = ca.issue_tls_server_cert(("localhost",), ("127.0.0.1",))
    directory = tmp_path_factory.mktemp("tls")
    good = directory / "ca.pem"
    good.write_bytes(ca.bundle_pem())
    other = directory / "other-ca.pem"
    other.write_bytes(LocalCA.create("Someone Else").bundle_pem())
    return cert, key, good, other


@pytest.fixture(params=["starttls", "tls"])
def smtp(request: pytest.FixtureRequest, tls: Any) -> Iterator[MailCatcher]:
    with MailCatcher(tls[0], tls[1], username="agent", password=PASSWORD, security=request.param) as server:
        yield server


def email_channel(server: MailCatcher, ca: Path, **overrides: Any) -> EmailChannel:
    data: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": server.port,
        "security": server.security,
        "verify_tls": str(ca),
        "username": "agent",
        "password": PASSWORD,
        "sender": "citrixagent@example.test",
        "recipients": ["pki@example.test", "oncall@example.test"],
    }
    data.update(overrides)
    return EmailChannel.model_validate(data)


MESSAGE = Message("[citrixagent] 1 problem: shop: failed", "FAILED: shop\n  what: boom\n", {"text": "x"})


def test_email_reaches_every_recipient_over_verified_tls(smtp: MailCatcher, tls: Any) -> None:
    send_email(email_channel(smtp, tls[2]), MESSAGE, run_id="r1")
    (mail,) = smtp.messages
    assert mail.recipients == ("pki@example.test", "oncall@example.test")
    assert mail.sender == "citrixagent@example.test"
    assert mail.subject == MESSAGE.subject
    assert "what: boom" in mail.text
    assert mail.tls and mail.login == "agent"
    assert mail.headers["X-Citrixagent-Run"] == "r1"
    assert mail.headers["To"] == "pki@example.test, oncall@example.test"
    assert PASSWORD.encode() not in mail.raw


def test_wrong_smtp_password_is_a_clear_error(smtp: MailCatcher, tls: Any) -> None:
    with pytest.raises(NotifyError) as info:
        send_email(email_channel(smtp, tls[2], password="wrong-password"), MESSAGE)
    text = str(info.value)
    assert f"SMTP server 127.0.0.1:{smtp.port} refused the login of agent: 535" in text
    assert "wrong-password" not in text
    assert smtp.messages == [] and smtp.failed_logins >= 1  # smtplib tries each mechanism offered


def test_untrusted_smtp_certificate_is_refused_before_login(smtp: MailCatcher, tls: Any) -> None:
    with pytest.raises(NotifyError, match="TLS verification failed for SMTP server 127.0.0.1"):
        send_email(email_channel(smtp, tls[3]), MESSAGE)
    assert smtp.messages == [] and smtp.failed_logins == 0


def test_smtp_server_down_is_a_clear_error(tls: Any) -> None:
    with MailCatcher(tls[0], tls[1]) as server:
        port = server.port
    channel = EmailChannel.model_validate(
        {"host": "127.0.0.1", "port": port, "sender": "a@b.test", "recipients": ["c@d.test"], "timeout": 5}
    )
    with pytest.raises(NotifyError, match=f"cannot talk to SMTP server 127.0.0.1:{port}"):
        send_email(channel, MESSAGE)


def test_starttls_channel_against_a_server_without_starttls_sends_nothing(tls: Any) -> None:
    with MailCatcher(tls[0], tls[1], security="tls") as server:
        channel = email_channel(server, tls[2], security="starttls", timeout=1)
        with pytest.raises(NotifyError, match="cannot talk to SMTP server"):
            send_email(channel, MESSAGE)
        assert server.messages == []


# ----------------------------------------------------------------------------------------- webhook


@pytest.fixture
def hook(tls: Any) -> Iterator[WebhookReceiver]:
    with WebhookReceiver(tls[0], tls[1], token=TOKEN) as server:
        yield server


def webhook_channel(server: WebhookReceiver, ca: Path, **overrides: Any) -> WebhookChannel:
    data: dict[str, Any] = {
        "name": "teams",
        "url": server.hook_url("abc"),
        "verify_tls": str(ca),
        "bearer_token": TOKEN,
        "headers": {"X-Extra-Secret": "hdr-secret-99"},
    }
    data.update(overrides)
    return WebhookChannel.model_validate(data)


def test_webhook_posts_the_json_payload(hook: WebhookReceiver, tls: Any) -> None:
    payload = {"text": "**FAILED** shop", "problems": [{"profile": "shop"}]}
    send_webhook(webhook_channel(hook, tls[2]), Message("s", "t", payload), run_id="r9")
    assert hook.payloads == [payload]
    (request,) = hook.requests
    assert request.method == "POST" and request.path == "/hooks/abc"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["x-extra-secret"] == "hdr-secret-99"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-citrixagent-run"] == "r9"


def test_webhook_answering_500_is_an_error_that_names_no_url_token(hook: WebhookReceiver, tls: Any) -> None:
    hook.add_fault("/hooks/", status=500, body="upstream broken")
    channel = webhook_channel(hook, tls[2], url=hook.hook_url("tok-in-url-123"))
    with pytest.raises(NotifyError) as info:
        send_webhook(channel, MESSAGE)
    assert "webhook teams (127.0.0.1:" in str(info.value) and "HTTP 500: upstream broken" in str(info.value)
    assert "tok-in-url-123" not in str(info.value)
    assert len(hook.requests) == 1  # no blind resend: the next run retries
    send_webhook(channel, MESSAGE)
    assert len(hook.payloads) == 1


def test_webhook_wrong_token_and_untrusted_certificate(hook: WebhookReceiver, tls: Any) -> None:
    with pytest.raises(NotifyError, match="HTTP 401"):
        send_webhook(webhook_channel(hook, tls[2], bearer_token="nope-nope"), MESSAGE)
    with pytest.raises(NotifyError, match="TLS verification failed for webhook teams"):
        send_webhook(webhook_channel(hook, tls[3]), MESSAGE)
    assert hook.payloads == []


def test_webhook_unreachable(tls: Any) -> None:
    with WebhookReceiver(tls[0], tls[1]) as server:
        url = server.hook_url()
    channel = WebhookChannel.model_validate({"url": url, "verify_tls": str(tls[2]), "timeout": 5})
    with pytest.raises(NotifyError, match="cannot connect to webhook webhook"):
        send_webhook(channel, MESSAGE)


def test_webhook_never_sends_a_netrc_login(
    hook: WebhookReceiver, tls: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ~/.netrc entry for the receiver's host must not replace the bearer token with Basic auth."""
    netrc = tmp_path / "netrc"
    netrc.write_text(
        "machine localhost login netrc-user password netrc-pass\nmachine 127.0.0.1 login n password p\n"
    )
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    send_webhook(webhook_channel(hook, tls[2]), MESSAGE)
    (request,) = hook.requests
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
