"""The files one install attempt uploaded, journalled before the certkey step names them.

A deployment uploads its files under fresh names, then adds or updates the certkey. When that step
(or a later one, rolled back) fails, the uploaded files are referenced by no certkey and would stay on
the appliance for good (reference §6, CTX579137). :class:`UploadedFiles` is deploy's
``before_certkey`` hook: it records the files in the journal's ``stale_files`` (saved at once, so a
crash leaves them known) before the add/update runs; after a failure :meth:`UploadedFiles.clean_up`
deletes those no certkey refers to, and what it could not delete stays journalled, removed after
the next saved deployment. After a success the attempt's files (in use) leave the list again.
An HA secondary keeps its synced copies (a file sync copies, it never deletes).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from ..errors import CitrixAgentError
from ..nitro.deploy import remove_unreferenced_files
from ..state import ProfileState
from .context import ApplianceSession, Context

__all__ = ["UploadedFiles"]

log = logging.getLogger("citrixagent")


class UploadedFiles:
    """Deploy's hook for one attempt of ``state``'s profile (``target``) on ``session``."""

    def __init__(
        self,
        ctx: Context,
        state: ProfileState,
        session: ApplianceSession,
        target: str | None,
        then: Callable[[Sequence[str]], None] | None = None,
    ) -> None:
        self.ctx, self.state, self.session, self.target, self.then = ctx, state, session, target, then
        self.files: list[str] = []

    def _journalled(self) -> list[str] | None:
        """The journal's list for this target (None: a target without a record yet keeps none)."""
        if self.target is not None and self.state.deployment(self.target) is None:
            return None
        return self.state.stale_files_of(self.target)

    def __call__(self, files: Sequence[str]) -> None:
        self.files.extend(files)
        stale = self._journalled()
        if stale is not None:
            stale.extend(f for f in files if f not in stale)
            self.ctx.store.save(self.state)
        if self.then is not None:
            self.then(files)

    def clean_up(self, profile_name: str) -> None:
        """After a failed attempt: delete its uploads no certkey refers to (best effort)."""
        if not self.files:
            return
        try:
            view = self.session.view()  # read again after the failure; the next profile reuses it
            removed = remove_unreferenced_files(
                self.session.nitro, self.files, certkeys=list(view.certkeys.values())
            )
            if removed:
                view.forget_files()
        except CitrixAgentError as exc:
            log.warning(
                "%s: could not remove the failed attempt's files on %s (removed after the next "
                "saved deployment): %s",
                profile_name,
                self.session.node,
                exc,
            )
            return
        stale = self._journalled()
        if stale is not None:
            stale[:] = [f for f in stale if f not in removed]
        if removed:
            self.state.add_event("removed-files", files=removed, why="failed install attempt")
            log.info("%s: removed the failed attempt's files %s", profile_name, ", ".join(removed))
        self.ctx.store.save(self.state)

    def settled(self) -> None:
        """After a success: the attempt's files are in use (the leaf's and its CA's), not stale; the
        journal's list is as before the attempt (no extra certkey listing at the save)."""
        stale = self._journalled()
        if stale is not None and self.files:
            stale[:] = [f for f in stale if f not in self.files]
