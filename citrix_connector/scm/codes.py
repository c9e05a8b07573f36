"""Every SCM error code the clients give a meaning to, in one place.

Only documented codes change how an answer is read (``reference/scm-rest-api.md`` §2.12 and §3.3,
``reference/sectigo-connector-and-enrollment-api.md`` §2.6); every other code is an ordinary
refusal. Nothing outside :mod:`citrix_connector.scm` compares these numbers: the clients turn them
into specific errors (:mod:`citrix_connector.errors`) and :class:`~citrix_connector.scm.base.CollectResult`.
"""

from __future__ import annotations

__all__ = [
    "ADMIN_NOT_READY",
    "ALREADY_REVOKED",
    "AUTH_FAILED",
    "DECLINED",
    "ENROLLMENT_NOT_READY",
    "NOT_FOUND",
    "NOT_ISSUED",
    "ONLY_ISSUED_REVOCABLE",
    "REVOKED",
    "TRANSIENT",
]

#: Collect (admin API, HTTP 400): "Being processed by Sectigo" (0), "not collectable" (-183),
#: "being processed" (-1400), "not available now" (-109).
ADMIN_NOT_READY = frozenset({0, -183, -1400, -109})
#: Download (Enrollment API, HTTP 404): "not collected yet" (-103), "not available now" (-109).
ENROLLMENT_NOT_READY = frozenset({-103, -109})

#: "Temporarily unavailable, try again": CSR decoding (-140), CA unavailable (-195), CA connection
#: error (-129), internal errors (-2, -65). Retried where nothing can have been done (see
#: :func:`citrix_connector.scm._transport.is_transient_scm`).
TRANSIENT = frozenset({-195, -140, -129, -2, -65})

#: The certificate is revoked and can never be collected (-110; -192 seen on S/MIME).
REVOKED = frozenset({-110, -192})
#: Collect of a declined order ("cannot be approved in state Declined").
DECLINED = frozenset({-1112})

#: Revoke of an order SCM already revoked ("Your certificate already revoked").
ALREADY_REVOKED = -159
#: Revoke of an order that is not issued ("Only issued certificates could be revoked"); some SCM
#: versions answer it for an already revoked order too, so the client asks the order's status.
ONLY_ISSUED_REVOCABLE = -102
#: Renew or replace of an order that is not issued (``SSL state is not 'ISSUED': <state>``).
NOT_ISSUED = -130

#: Unknown user (-16), incorrect login credentials (-970).
AUTH_FAILED = frozenset({-16, -970})
#: Certificate not found (-5101), wrong SSL id (-124), SSL is null (-1117).
NOT_FOUND = frozenset({-5101, -124, -1117})
