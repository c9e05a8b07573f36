"""A real SMTP server on loopback that keeps what it receives: the sandbox's mail catcher.

Built on ``aiosmtpd`` (a well-kept SMTP server; install ``citrixagent[sandbox]``): STARTTLS (or
implicit TLS) with a certificate from the sandbox TLS CA, and a login that must match, so the agent's
SMTP client runs exactly as against a real relay. Used by ``citrixagent sandbox serve --notify`` and the
tests.
"""

from __future__ import annotations

import email
import email.policy
import logging
import ssl
import tempfile
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = ["MailCatcher", "ReceivedMail", "mail_catcher_available"]


def mail_catcher_available() -> bool:
    try:
        import aiosmtpd  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True)
class ReceivedMail:
    sender: str
    recipients: tuple[str, ...]
    subject: str
    text: str
    raw: bytes
    tls: bool
    login: str | None

    @property
    def headers(self) -> dict[str, str]:
        parsed = email.message_from_bytes(self.raw, policy=email.policy.default)
        return {k: str(v) for k, v in parsed.items()}


@dataclass
class _Box:
    messages: list[ReceivedMail] = field(default_factory=list)
    failed_logins: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _server_context(cert_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory(prefix="citrixagent-smtp-") as tmp:
        cert, key = Path(tmp) / "smtp.crt", Path(tmp) / "smtp.key"
        cert.write_bytes(cert_pem)
        key.write_bytes(key_pem)
        context.load_cert_chain(str(cert), str(key))
    return context


class MailCatcher:
    """``with MailCatcher(cert, key, username=..., password=...) as smtp: ... smtp.messages``"""

    def __init__(
        self,
        tls_cert_pem: bytes,
        tls_key_pem: bytes,
        *,
        username: str | None = None,
        password: str | None = None,
        security: Literal["starttls", "tls"] = "starttls",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.host = host
        self.port = port
        self.security = security
        self.username = username
        self._password = password
        self._context = _server_context(tls_cert_pem, tls_key_pem)
        self._box = _Box()
        self._controller: Any = None

    # -- what arrived ----------------------------------------------------------------------------
    @property
    def messages(self) -> list[ReceivedMail]:
        with self._box.lock:
            return list(self._box.messages)

    @property
    def failed_logins(self) -> int:
        with self._box.lock:
            return self._box.failed_logins

    def clear(self) -> None:
        with self._box.lock:
            self._box.messages.clear()
            self._box.failed_logins = 0

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> MailCatcher:
        if self._controller is not None:
            return self
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult, LoginPassword

        implicit = self.security == "tls"
        box, username, password = self._box, self.username, self._password
        # aiosmtpd itself still sets its deprecated Session.login_data on every AUTH
        warnings.filterwarnings("ignore", message="Session.login_data is deprecated")
        warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")  # implicit TLS
        logging.getLogger("mail.log").setLevel(logging.ERROR)  # aiosmtpd's chatty connection log

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                raw = envelope.original_content or envelope.content
                data = raw if isinstance(raw, bytes) else str(raw).encode("utf-8")
                parsed = email.message_from_bytes(data, policy=email.policy.default)
                body = parsed.get_body(preferencelist=("plain",))
                text = body.get_content() if body is not None else ""
                login = session.auth_data.login.decode() if session.auth_data else None
                with box.lock:
                    box.messages.append(
                        ReceivedMail(
                            sender=str(envelope.mail_from),
                            recipients=tuple(envelope.rcpt_tos),
                            subject=str(parsed.get("Subject", "")),
                            text=str(text),
                            raw=data,
                            tls=implicit or session.ssl is not None,
                            login=login,
                        )
                    )
                return "250 OK: message kept by the citrixagent sandbox"

        def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
            ok = (
                isinstance(data, LoginPassword)
                and data.login.decode("utf-8", "replace") == username
                and data.password.decode("utf-8", "replace") == password
            )
            if not ok:
                with box.lock:
                    box.failed_logins += 1
            return AuthResult(success=ok, handled=False, auth_data=data if ok else None)

        kwargs: dict[str, Any] = {
            "hostname": self.host,
            "port": self.port,
            "server_hostname": "citrixagent-sandbox",  # else aiosmtpd asks DNS for this host's name
            "ident": "citrixagent sandbox mail catcher",
        }
        if username is not None:
            # with implicit TLS the whole connection is TLS; aiosmtpd only counts STARTTLS as TLS
            kwargs.update(authenticator=authenticate, auth_required=True, auth_require_tls=not implicit)
        if implicit:
            kwargs["ssl_context"] = self._context
        else:
            kwargs.update(tls_context=self._context, require_starttls=True)

        class _Controller(Controller):
            def _trigger_server(self) -> None:
                # bound to port 0: learn the port the OS chose before the first connection
                sockets = getattr(self.server, "sockets", None)
                if sockets:
                    self.port = sockets[0].getsockname()[1]
                super()._trigger_server()  # type: ignore[no-untyped-call]

        controller = _Controller(Handler(), **kwargs)
        controller.start()
        self.port = int(controller.port)
        self._controller = controller
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> MailCatcher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
