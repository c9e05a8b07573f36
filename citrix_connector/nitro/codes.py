"""Every NITRO ``errorcode`` the agent gives a meaning to (``nitro-api.md`` §5), in one place.

Only the codes below change what the agent does; any other code is an error like any other. Code
outside the NITRO client asks the predicates here (``file_exists(exc)``) instead of comparing numbers.
"""

from __future__ import annotations

from ..errors import NitroError

__all__ = [
    "CERT_DOES_NOT_EXIST",
    "FILE_EXISTS",
    "FILE_NOT_FOUND",
    "ISSUER_MISMATCH",
    "LINK_BROKEN_BY_UPDATE",
    "LOGIN_REQUIRED",
    "MISSING",
    "NOT_LOGGED_IN",
    "NO_SUCH_PARTITION",
    "NO_SUCH_RESOURCE",
    "NO_SUCH_VSERVER",
    "OPERATION_IN_PROGRESS",
    "RELOGIN",
    "RESOURCE_EXISTS",
    "SESSION_EXPIRED",
    "ca_link_broken_by_update",
    "duplicate_content",
    "file_exists",
    "file_missing",
    "issuer_mismatch",
    "no_such_partition",
]

NO_SUCH_RESOURCE = 258  # 404: GET/DELETE/update of a missing object
RESOURCE_EXISTS = 273  # 409: duplicate add, or the same certificate content under another name
OPERATION_IN_PROGRESS = 293  # a concurrent ``save ns config``: retried
LOGIN_REQUIRED = 352
SESSION_EXPIRED = 444  # 401: log in again
NO_SUCH_VSERVER = 461
NOT_LOGGED_IN = 1027  # 401: log in again
CERT_DOES_NOT_EXIST = 1540
BULK_FAILED = 1243  # 207: a bulk request in which an item failed (its own code in "response")
FILE_EXISTS = 1642  # 409: systemfile add / key or CSR create on an existing name
NO_SUCH_PARTITION = 2755
FILE_NOT_FOUND = 3441  # systemfile GET/DELETE of a missing file (unconfirmed)

#: 401 errorcodes that mean "log in again" (session expired/killed, not logged in, login required)
RELOGIN = frozenset({SESSION_EXPIRED, NOT_LOGGED_IN, LOGIN_REQUIRED})
#: errorcodes that mean "no such object" on GET
MISSING = frozenset({NO_SUCH_RESOURCE, NO_SUCH_VSERVER, CERT_DOES_NOT_EXIST, FILE_NOT_FOUND})
#: an update refused (or reported) because it breaks the certkey's CA link (expired/not-yet-valid variants)
LINK_BROKEN_BY_UPDATE = frozenset({1587, 1590, 1591})
#: a link to a CA certkey that did not issue the certificate
ISSUER_MISMATCH = frozenset({1548, 3669})
_FILE_MISSING = frozenset({NO_SUCH_RESOURCE, FILE_NOT_FOUND})


def file_exists(exc: NitroError) -> bool:
    """An upload (or key/CSR create) refused because the file name is taken."""
    return exc.errorcode == FILE_EXISTS


def file_missing(exc: NitroError) -> bool:
    """A file operation on a file that is not there (HTTP 404, 258 or 3441)."""
    return exc.status == 404 or exc.errorcode in _FILE_MISSING


def duplicate_content(exc: NitroError) -> bool:
    """A certkey add refused as "already exists" (its name, or its certificate under another name)."""
    return exc.errorcode == RESOURCE_EXISTS


def ca_link_broken_by_update(exc: NitroError) -> bool:
    """An in-place update refused because it would break the certkey's link to its CA."""
    return exc.errorcode in LINK_BROKEN_BY_UPDATE


def issuer_mismatch(exc: NitroError) -> bool:
    """A link refused because the CA certkey is not the certificate's issuer."""
    return exc.errorcode in ISSUER_MISMATCH


def no_such_partition(exc: NitroError) -> bool:
    """A partition switch to a partition the appliance does not have."""
    return exc.errorcode == NO_SUCH_PARTITION
