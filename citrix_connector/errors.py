"""The one error hierarchy of citrixagent.

Every error the agent raises descends from :class:`CitrixAgentError`. Each class carries the process
exit code the CLI uses when that error ends a command, so the mapping lives in one place.

Exit codes (also in ``citrixagent --help`` and the README):

====  ==========================================================================
0     success, or nothing to do
1     a profile failed at run time (SCM or NetScaler refused, network failure)
2     usage or configuration error (bad YAML, unknown key, bad value, licence not accepted)
3     another run holds the lock
4     a certificate is still pending at SCM (the order id is saved; re-run to resume)
====  ==========================================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2
EXIT_LOCKED = 3
EXIT_PENDING = 4


class CitrixAgentError(Exception):
    """Root of every error the agent raises. ``str(err)`` is a complete one-line message."""

    exit_code: int = EXIT_FAILURE


class ConfigError(CitrixAgentError):
    """A configuration file or command-line value is wrong. Raised before any network call.

    ``problems`` holds every problem found (``file:line: field: message``); ``str()`` joins them.
    """

    exit_code = EXIT_CONFIG

    def __init__(self, problems: list[str] | str, details: Sequence[object] = ()) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        #: the typed problems (``config.Problem``: file, line, field, message, severity) when known
        self.details: list[object] = list(details)
        super().__init__("; ".join(self.problems))


class UsageError(CitrixAgentError):
    """The command line asks for something impossible (e.g. licence not accepted, no profiles)."""

    exit_code = EXIT_CONFIG


class LockHeldError(CitrixAgentError):
    """Another citrixagent run holds the state lock."""

    exit_code = EXIT_LOCKED


class PendingError(CitrixAgentError):
    """The certificate is not issued yet; the order id is saved in the state and a re-run resumes."""

    exit_code = EXIT_PENDING

    def __init__(self, message: str, order_id: str = "") -> None:
        self.order_id = order_id
        super().__init__(message)


class RemoteError(CitrixAgentError):
    """A remote (SCM or NetScaler) could not be reached or answered with an error."""

    def __init__(self, message: str, *, status: int | None = None, endpoint: str = "") -> None:
        self.status = status
        self.endpoint = endpoint
        super().__init__(message)


class ScmError(RemoteError):
    """SCM answered with an error. ``code``/``description`` are SCM's own (None/'' when absent)."""

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        description: str = "",
        status: int | None = None,
        endpoint: str = "",
    ) -> None:
        self.code = code
        self.description = description
        super().__init__(message, status=status, endpoint=endpoint)


class ScmNotDoneError(ScmError):
    """SCM did not carry the request out: it refused it, or the request was never sent. For an
    order call (enroll, renew, replace, revoke) this proves the call placed or changed nothing."""


class ScmRefusedError(ScmNotDoneError):
    """SCM answered that it refused the request: HTTP 4xx, or "busy, come back later" (429, or 503
    with ``Retry-After``) once the retries are used up."""


class ScmNotSentError(ScmNotDoneError):
    """The request never reached SCM: connection refused, host name unknown, TLS handshake failed,
    no access token, or a check the client makes before sending failed."""


class ScmOutcomeUnknownError(ScmError):
    """The request was sent but no usable answer came back (connection reset or timeout after
    sending, HTTP 5xx, a 2xx without the order id): SCM may have acted on it. An order call is never
    re-sent blindly after this; the lifecycle keeps its write-ahead intent and the next run looks
    for the order (order list or order status)."""


class ScmAuthError(ScmRefusedError):
    """SCM refused the credentials (wrong login/password, bad client id/secret, token refused)."""


class ScmNotIssuedError(ScmRefusedError):
    """SCM refused to renew, replace or revoke an order because it is not issued.
    ``order_id`` is the order, ``state`` its normalised state (``"pending"``, ``"replaced"``,
    ``"revoked"``, ...; ``"unknown"`` when the status could not be read)."""

    def __init__(
        self,
        message: str,
        *,
        order_id: str,
        state: str,
        code: int | None = None,
        description: str = "",
        status: int | None = None,
        endpoint: str = "",
    ) -> None:
        self.order_id = order_id
        self.state = state
        super().__init__(message, code=code, description=description, status=status, endpoint=endpoint)


class ScmNotReadyError(ScmNotIssuedError):
    """The order is still on its way to issuance (requested, approved, applied): collect it first."""


class ScmAlreadyReplacedError(ScmNotIssuedError):
    """The order was already replaced (e.g. by a run whose answer was lost). ``replacement_id`` is the
    order to collect when the API can tell it (the admin API keeps the id), else None (the REST
    Enrollment API gives the replacement a new id it cannot look up). Set by the client after
    construction."""

    replacement_id: str | None = None


class ScmAlreadyRevokedError(ScmNotIssuedError):
    """SCM already revoked the order: the end state a revoke wants (e.g. a lost first answer)."""


class ScmDeclinedError(ScmError):
    """SCM declined, rejected or revoked the order: polling again will never succeed."""


class ScmUnsupportedError(ScmNotDoneError):
    """The configured SCM API has no call for this operation (e.g. no list on the Enrollment API)."""


class BulkItemError(NamedTuple):
    """One failed item of a NITRO bulk request (``position`` from 0, in the order sent)."""

    position: int
    errorcode: int
    message: str


class NitroError(RemoteError):
    """The NetScaler answered with an error. ``errorcode``/``message`` are NITRO's own.

    A bulk request's partial failure (HTTP 207, errorcode 1243) lists its failed items in
    ``failed_items`` when the answer has them; ``errorcode`` is then theirs when they all share one
    (every failed item a 1642: a taken name, as for a single add), else 1243."""

    def __init__(
        self,
        message: str,
        *,
        errorcode: int | None = None,
        nitro_message: str = "",
        status: int | None = None,
        endpoint: str = "",
        step: str = "",
        failed_items: tuple[BulkItemError, ...] = (),
    ) -> None:
        self.errorcode = errorcode
        self.nitro_message = nitro_message
        self.step = step
        self.failed_items = failed_items
        super().__init__(message, status=status, endpoint=endpoint)


class NitroAuthError(NitroError):
    """The NetScaler refused the login (errorcode 354/355) or the session could not be re-established."""


class ApplianceStateError(CitrixAgentError):
    """The appliance is not in a state we may write to (HA secondary, vserver missing, not SSL, ...)."""


class CryptoError(CitrixAgentError):
    """A key, CSR or certificate could not be built or parsed, or they do not belong together."""


class StateError(CitrixAgentError):
    """The state journal is unreadable or inconsistent."""


class StateDirError(StateError):
    """The state directory cannot be used (a file, not writable, cannot be created): a configuration
    problem of this host, reported before any work starts."""

    exit_code = EXIT_CONFIG


class StopRequested(CitrixAgentError):
    """The run was asked to stop (Ctrl-C, SIGTERM) while waiting: the journal is consistent and the
    pending order is kept for the next run."""

    exit_code = EXIT_PENDING


class LoopbackOnlyError(CitrixAgentError):
    """A TLS probe would connect outside 127.0.0.0/8 and ::1 while the loopback-only guard is on (the
    test suite, the demo, the sandbox, the benchmarks): refused before any socket is opened."""

    exit_code = EXIT_CONFIG


class NotifyError(CitrixAgentError):
    """A notification channel could not deliver (SMTP or webhook refused, unreachable, TLS). Logged and
    retried on the next run; it never changes a run's exit code."""


def error_details(exc: BaseException) -> dict[str, object]:
    """The remote's own code of an error, for results, notifications and the audit log ({} if none)."""
    details: dict[str, object] = {}
    if isinstance(exc, ScmError):
        details = {"remote": "SCM", "code": exc.code, "description": exc.description or None}
    elif isinstance(exc, NitroError):
        details = {"remote": "NITRO", "code": exc.errorcode, "description": exc.nitro_message or None}
        if exc.step:
            details["step"] = exc.step
    if isinstance(exc, RemoteError):
        details.setdefault("remote", "remote")
        details["status"] = exc.status
        details["endpoint"] = exc.endpoint or None
    details["error"] = type(exc).__name__
    return {k: v for k, v in details.items() if v is not None}


def describe_remote_code(details: dict[str, object]) -> str | None:
    """``"SCM code -62, HTTP 400"`` from :func:`error_details`, or None without a remote code/status."""
    parts = []
    if details.get("code") is not None:
        parts.append(f"{details.get('remote', 'remote')} code {details['code']}")
    if details.get("status") is not None:
        parts.append(f"HTTP {details['status']}")
    return ", ".join(parts) or None
