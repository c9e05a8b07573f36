"""A simulated NetScaler (Citrix ADC 13.x) speaking the NITRO v1 ``config`` API over real HTTPS.

It keeps state the way an appliance does — files under ``/nsconfig/ssl``, certkeys with the facts parsed
from their files at add/update time, CA links, SSL vservers of the four kinds and one binding table —
and enforces the appliance's validations with the appliance's error codes and HTTP statuses
(``reference/nitro-api.md`` §7). The agent's NITRO client must not be able to tell it from a real box.

Python hooks for tests and the demo (all thread-safe):

* seeding: :meth:`add_vserver`, :meth:`add_user`, :meth:`add_partition`, :meth:`set_ha`, :meth:`put_file`,
  :meth:`install_certkey`, :meth:`bind_certkey`; sessions: :meth:`expire_sessions`; :meth:`reboot`
  (drops unsaved configuration, like a reload).
* inspection: :meth:`state`, :meth:`get_file`, :meth:`serving_certificate`, :meth:`count_writes`,
  :meth:`timeline`, :meth:`gaps` (every write after which a vserver that had a certificate had none).
* knobs (plain attributes, see ``NetScalerSimulator.__init__``): session timeout, save-in-progress,
  domain-check mode, what an update does to broken links/SNI bindings, secondary-node behaviour,
  alternative error codes.

The same hooks are reachable over HTTP under ``/_sim/`` (see :mod:`.control`).

Layout: :mod:`.server` (routing, dispatch, Python hooks), :mod:`.auth` (login, sessions, the Secondary
guard), :mod:`.control` (``/_sim/`` routes), :mod:`.model` (the state), :mod:`.protocol` and
:mod:`.errors` (NITRO plumbing), :mod:`.pki` (what is parsed from certificate/key files), and one module
per resource family: :mod:`.files`, :mod:`.certkeys`, :mod:`.links`, :mod:`.keys` (on-box keys, CSRs),
:mod:`.vservers` (vservers and bindings), :mod:`.system` (nsversion, HA, partitions), :mod:`.nsconfig`.

Choices where the reference leaves room (documented, so tests and the client can rely on *this* sandbox):

* errors on reads (GET) of missing objects answer HTTP 404 (258, or 461/1540 for the SSL binding
  views); SSL semantic errors on writes answer 599; argument errors 400; duplicates 409.
* bad certkey name characters → 400/1232, certkey name longer than 31 → 400/1106; systemfile name longer
  than 63 → 400/1106.
* a missing input file (cert, key, CSR key) → 599/1647 (knob ``legacy_missing_file_codes`` → 1631/1632).
* a missing systemfile → 404/258 (knob ``systemfile_missing_errorcode = 3441``).
* ``sslcertkey_sslvserver_binding`` rows carry the vserver's name in ``servername`` only (plus
  ``vserver: true``), never in ``vservername``.
* on a Secondary node writes succeed with warning 1028 (HTTP 200/201, severity WARNING) — the reference's
  default; knob ``secondary_writes = "reject"`` refuses them with 599/1028 instead.
* admin partitions keep their files under ``/var/partitions/<name>/ssl``; inside one, input paths elsewhere
  give 599/1647 and output paths elsewhere 599/1645. The default partition refuses ``/var/partitions/...``.
* warnings (1028, 1546, 1587, 3637, 3638) come back in the body with HTTP 200/201; with ``?warning=yes`` (or
  body ``params.warning = YES``) as HTTP 209 plus an ``X-NITRO-WARNING`` header.
* update: the domain check compares CN + SAN DNS names (``domain_check``: any overlap, or equality); a CA
  link the new certificate no longer verifies against is dropped (the leaf's own link, and links of certs
  pointing at an updated CA) with warning 1587; SNI bindings left without CN / with a duplicate CN are
  removed with warning 3638 / 3637. ``link_break_mode``/``sni_break_mode = "error"`` refuse the update.
* link while already linked → 409/273 (knob ``link_when_linked = "replace"``); a second non-SNI server
  cert replaces the first in place with warning 1546 (knobs: ``"silent"``, ``"error"`` → 599/1546).
* partition ``Switch`` needs a login session (header auth → 599/257, knob ``switch_without_session``); the
  verb is matched case-insensitively; unknown partition → 599/2755; a user limited to other partitions →
  599/2138; ``nsconfig save`` with ``all`` outside the default partition → 599/2772.
* hanode: a standalone box lists only node 0 (state Primary); ``stat/hanode`` says ``hacurstatus`` NO.
* sslcertreq: ``digestmethod`` SHA256/384/512 (SHA1 → 400/1097: the crypto library will not sign it);
  ``subjectaltname`` is space-separated ``DNS:``/``IP:``/``email:``/``URI:`` entries (commas → 400/1097).
* ``count_writes()`` counts non-GET ``/nitro`` requests in the request log (so ``clear_requests()``
  resets it; requests answered by an injected fault count too), except login, logout and Switch.
* bulk (list) payloads: a bulk ``POST systemfile`` adds each file in order; ``onerror`` (``params`` in the
  body, else the ``X-NITRO-ONERROR`` header) ``exit`` stops at the first failure, ``continue``
  tries every file, ``rollback`` is not simulated (400/1097); with neither, ``exit`` (Citrix documents
  the three values, not the default: exit is the one that never goes on past a failure). Any failure
  answers 207/1243 with one envelope per file tried under ``response`` (Citrix's documented shape).
  Other bulk payloads are not simulated (400/1234).
"""

from .ha import HaPair
from .model import DEFAULT_SSL_DIR, VSERVER_KINDS, TimelineEntry
from .server import NetScalerSimulator

__all__ = ["DEFAULT_SSL_DIR", "HaPair", "NetScalerSimulator", "TimelineEntry", "VSERVER_KINDS"]
