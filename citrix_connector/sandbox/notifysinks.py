"""Where the sandbox's notifications arrive: the mail catcher (SMTP with STARTTLS) and the webhook
receiver (HTTPS), both on loopback with certificates from the sandbox TLS CA, plus the
``citrixagent.yaml`` that points the agent at them (sandbox-only credentials, written in clear)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .mailcatcher import MailCatcher
from .webhook import WebhookReceiver
from .world import Sandbox

__all__ = ["SMTP_PASSWORD", "SMTP_USER", "WEBHOOK_TOKEN", "NotifySinks"]

SMTP_USER = "citrixagent-smtp"
SMTP_PASSWORD = "sandbox-smtp-password"
WEBHOOK_TOKEN = "sandbox-webhook-token"
SENDER = "citrixagent@sandbox.test"
RECIPIENTS = ("pki-team@sandbox.test", "oncall@sandbox.test")


@dataclass
class NotifySinks:
    world: Sandbox
    mail: MailCatcher = field(init=False)
    webhook: WebhookReceiver = field(init=False)

    def __post_init__(self) -> None:
        cert, key = self.world.tls_ca.issue_tls_server_cert(("localhost",), ("127.0.0.1",))
        self.mail = MailCatcher(cert, key, username=SMTP_USER, password=SMTP_PASSWORD)
        self.webhook = WebhookReceiver(cert, key, token=WEBHOOK_TOKEN)

    def start(self) -> NotifySinks:
        self.mail.start()
        self.webhook.start()
        self.write_settings()
        return self

    def stop(self) -> None:
        self.mail.stop()
        self.webhook.stop()

    def __enter__(self) -> NotifySinks:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def settings_path(self) -> Path:
        return self.world.directory / "citrixagent.yaml"

    def settings_dict(self, **notify: Any) -> dict[str, Any]:
        """citrixagent.yaml for these sinks; ``notify`` keys override or add (e.g. summary=True)."""
        section: dict[str, Any] = {
            "email": {
                "host": "127.0.0.1",
                "port": self.mail.port,
                "security": "starttls",
                "verify_tls": str(self.world.ca_bundle),
                "username": SMTP_USER,
                "password": SMTP_PASSWORD,
                "sender": SENDER,
                "recipients": list(RECIPIENTS),
            },
            "webhooks": [
                {
                    "name": "chat",
                    "url": self.webhook.hook_url(),
                    "verify_tls": str(self.world.ca_bundle),
                    "bearer_token": WEBHOOK_TOKEN,
                }
            ],
        }
        section.update(notify)
        return {"notify": section}

    def write_settings(self, **notify: Any) -> Path:
        header = "# Written by citrixagent's sandbox: sandbox-only credentials, not secrets.\n"
        self.settings_path.write_text(header + yaml.safe_dump(self.settings_dict(**notify), sort_keys=False))
        return self.settings_path

    def describe(self) -> list[str]:
        return [
            f"Mail catcher (SMTP)  127.0.0.1:{self.mail.port}  (STARTTLS, login {SMTP_USER}, "
            f"password {SMTP_PASSWORD})",
            f"Webhook receiver     {self.webhook.hook_url()}  (bearer token {WEBHOOK_TOKEN})",
            f"citrixagent.yaml     {self.settings_path}  (notifications to both)",
        ]
