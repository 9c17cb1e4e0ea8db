"""`speculative` in `aigents.stats`: how the draft model does (setting `draft_model`). LM
Studio tells draft-token counts only in whole answers, so the first `aigents.stats` after the
draft model is set starts a short measurement (`providers/speculative.py`) and says
`measuring`; later ones show its counts and the speed-up."""

from __future__ import annotations

import asyncio
import logging
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aigents_lsp.providers.base import ProviderError

if TYPE_CHECKING:
    from aigents_lsp.lsp.server import AigentsServer
    from aigents_lsp.providers.speculative import SpeculativeStats

log = logging.getLogger(__name__)


@dataclass
class _Session:
    stats: SpeculativeStats | None = None
    task: asyncio.Task[Any] | None = None
    draft_model: str | None = None


_sessions: weakref.WeakKeyDictionary[AigentsServer, _Session] = weakref.WeakKeyDictionary()


def snapshot(ls: AigentsServer) -> dict[str, Any] | None:
    """The draft model's figures (None: no draft model set); starts the measurement once."""
    from aigents_lsp.providers.speculative import SpeculativeStats

    draft = ls.settings.draft_model
    if not draft:
        return None
    state = _sessions.get(ls)
    if state is None or state.draft_model != draft:  # a new draft model: measured anew
        state = _sessions[ls] = _Session(SpeculativeStats(draft), draft_model=draft)
    assert state.stats is not None
    measuring = state.task is not None and not state.task.done()
    if state.task is None:
        state.task = ls.run_task(_measure(ls, state.stats, draft), "speculative decoding probe")
        measuring = True
    return {**state.stats.snapshot(), "state": "measuring" if measuring else "measured"}


async def _measure(ls: AigentsServer, stats: SpeculativeStats, draft: str) -> None:
    from aigents_lsp.providers.lmstudio import LMStudioProvider
    from aigents_lsp.providers.speculative import measure

    try:
        provider = await ls.backend.provider("completion")
        if not isinstance(provider, LMStudioProvider):
            stats.error = f"{provider.name} takes no draft model: only LM Studio (0.3.10+) does"
            return
        model = await ls.backend.model_for("completion")
        await measure(provider, model, draft, stats)
    except ProviderError as error:
        stats.error = str(error)
        log.info("speculative decoding probe failed: %s", error)
