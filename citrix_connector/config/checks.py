"""Pure checks of single values: names, host names, URLs, header-safe text. Each returns ``""`` when
the value is fine, else the message (never echoing a secret)."""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import ipaddress
import re
from urllib.parse import urlsplit

CERTKEY_NAME_MAX = 31
PROFILE_NAME_MAX = 63
VSERVER_NAME_MAX = 127

_NS_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_#.:@=-]*$")
_PROFILE_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_#.@=-]*$")
_VSERVER_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_#.:@= -]*$")
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL"} | {f"{p}{i}" for p in ("COM", "LPT") for i in range(1, 10)}
_LABEL_RE = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# what an HTTP header value may hold: printable Latin-1, no CR/LF or other control characters
_HEADER_BAD_RE = re.compile("[^\t\x20-\x7e\xa0-\xff]")


def type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "mapping"
    if isinstance(value, (tuple, list)):
        return "list"
    if isinstance(value, _dt.date):
        return "date"
    return type(value).__name__


def shown(value: object, limit: int = 60) -> str:
    """``repr`` of a scalar for a message, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def header_problem(value: str, *, secret: bool = False) -> str:
    """'' when ``value`` can travel in an HTTP header (printable Latin-1, no CR/LF)."""
    match = _HEADER_BAD_RE.search(value)
    if match is None:
        return ""
    char = match.group()
    what = f"character U+{ord(char):04X}"
    if char in "\r\n":
        what = "a line break (CR/LF)"
    elif ord(char) > 0xFF:
        what = f"{what} outside Latin-1"
    else:
        what = f"control {what}"
    where = "" if secret else f" at position {match.start() + 1}"
    return f"contains {what}{where}; it is sent in an HTTP header"


def ns_name_problem(name: str, what: str = "NetScaler name") -> str:
    if not _NS_NAME_RE.match(name):
        return (
            f"invalid {what} {name!r}: must start with a letter, digit or '_' and contain "
            "only letters, digits and _ # . : @ = -"
        )
    return ""


def certkey_name_problem(name: str) -> str:
    if len(name) > CERTKEY_NAME_MAX:
        return f"longer than {CERTKEY_NAME_MAX} characters (NetScaler limit): {name!r}"
    return ns_name_problem(name)


def vserver_name_problem(name: str) -> str:
    if len(name) > VSERVER_NAME_MAX or not _VSERVER_NAME_RE.match(name):
        return f"invalid vserver name {shown(name)}"
    return ""


def profile_name_problem(name: str) -> str:
    if len(name) > PROFILE_NAME_MAX:
        return f"longer than {PROFILE_NAME_MAX} characters: {shown(name)}"
    if not _PROFILE_NAME_RE.match(name):
        return (
            f"invalid profile name {name!r}: must start with a letter, digit or '_' and contain "
            "only letters, digits and _ # . @ = -"
        )
    if name.split(".")[0].upper() in _WINDOWS_RESERVED:
        return f"{name!r} is a reserved file name on Windows"
    return ""


def derive_certkey_name(profile_name: str) -> str:
    """A valid NetScaler certkey name (<= 31 chars) derived from a profile name.

    Invalid characters become ``-``; a name too long is cut and suffixed with ``-`` + 6 hex
    characters of the SHA-256 of the full profile name, so different long names stay distinct.
    """
    name = re.sub(r"[^A-Za-z0-9_#.:@=-]", "-", profile_name)
    if not name or not re.match(r"[A-Za-z0-9_]", name[0]):
        name = "c" + name
    if len(name) > CERTKEY_NAME_MAX:
        digest = hashlib.sha256(profile_name.encode("utf-8")).hexdigest()[:6]
        name = name[: CERTKEY_NAME_MAX - 7] + "-" + digest
    return name


@functools.lru_cache(maxsize=4096)  # pure; a fleet's profiles repeat the same appliance host names
def host_name_problem(name: str) -> str:
    """'' when ``name`` is a valid DNS name (leftmost ``*`` label allowed) or an IP address."""
    # only digits and dots (IPv4) or a colon (IPv6) can be an address: a host name is not tried
    # as one (a refused address costs two exceptions, and a fleet has thousands of names)
    if ":" in name or name.replace(".", "").isdigit():
        try:
            ipaddress.ip_address(name)
            return ""
        except ValueError:
            pass
    if not name.isascii():
        return f"{shown(name)} is not ASCII; use the IDNA form (xn--...)"
    if len(name) > 253:
        return f"{shown(name)} is longer than 253 characters"
    labels = name.split(".")
    for i, label in enumerate(labels):
        if label == "*" and i == 0:
            continue
        if "*" in label:
            return f"{name!r}: a wildcard must be the whole leftmost label ('*.example.com')"
        if not _LABEL_RE.match(label):
            return f"{shown(name)} is not a valid DNS name (bad label {shown(label)})"
    if labels[0] == "*" and len(labels) < 3:
        return f"{name!r}: a wildcard needs at least two labels after it"
    if labels[-1].isdigit():
        return f"{name!r} is neither a valid DNS name nor an IP address"
    return ""


def email_problem(value: str) -> str:
    return "" if _EMAIL_RE.match(value) else f"not an e-mail address: {shown(value)}"


@functools.lru_cache(maxsize=4096)  # pure; every profile of an appliance names the same URL
def url_problem(value: str, *, allow_http: bool = False) -> str:
    """'' when ``value`` is an https:// (or, with ``allow_http``, http://) URL without credentials."""
    try:
        parts = urlsplit(value)
    except ValueError:  # e.g. an unclosed "[" of an IPv6 address; the URL may hold a password
        return "not a valid URL"
    # before any message that echoes the URL: a password in it must never be shown
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        return "must not contain credentials (user:password@); use the username/password keys"
    if any(ch.isspace() for ch in value):
        return f"not a valid URL: {shown(value)} (contains whitespace)"
    if header_problem(value):
        return f"not a valid URL: {header_problem(value)}"
    scheme = parts.scheme.lower()
    if scheme == "http" and not allow_http:
        return f"must be an https:// URL, got {shown(value)} (http:// needs allow_http: true)"
    if scheme not in ("https", "http"):
        return f"must be an https:// URL, got {shown(value)}"
    if not parts.hostname:
        return f"not a valid URL (no host name): {shown(value)}"
    if parts.query or parts.fragment:
        return f"must not contain a query or fragment: {shown(value)}"
    try:
        port = parts.port
    except ValueError:
        return f"invalid port in URL {shown(value)}"
    if port == 0:
        return f"invalid port in URL {shown(value)} (1-65535)"
    return ""


def proxy_url_problem(value: str) -> str:
    """'' when ``value`` is an http:// or https:// proxy URL (credentials allowed, never echoed)."""
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return "not a valid proxy URL (bad host or port)"
    if parts.scheme.lower() not in ("http", "https"):
        return "must be an http:// or https:// proxy URL (or none)"
    if not parts.hostname:
        return "not a valid proxy URL (no host name)"
    if any(ch.isspace() for ch in value) or header_problem(value):
        return "not a valid proxy URL (whitespace or control characters)"
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return "a proxy URL has no path, query or fragment"
    if port == 0:
        return "not a valid proxy URL (port 1-65535)"
    return ""
