"""The fix for a JIT auto-evict thrash (providers/jit_thrash.py), offered to the user: the
warning comes as a question whose first answer loads the swapping models for good through
LM Studio's load API (0.4+), so that no just-in-time load evicts them any more."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from lsprotocol import types
from pygls.exceptions import JsonRpcException

from aigents_lsp.providers.base import ProviderError

if TYPE_CHECKING:
    from aigents_lsp.lsp.server import AigentsServer

log = logging.getLogger(__name__)
LOAD = "Load them for good"
LATER = "Not now"


def offer_fix(ls: AigentsServer, models: tuple[str, ...], message: str) -> None:
    """Called by the backend once it sees the thrash (synchronously: the question is a task)."""
    ls.run_task(_offer(ls, models, message), "offer the JIT thrash fix")


async def _offer(ls: AigentsServer, models: tuple[str, ...], message: str) -> None:
    question = types.ShowMessageRequestParams(
        type=types.MessageType.Warning,
        message=message,
        actions=[types.MessageActionItem(title=LOAD), types.MessageActionItem(title=LATER)],
    )
    try:
        choice = await ls.window_show_message_request_async(question)
    except JsonRpcException:  # the editor cannot ask: the warning alone
        ls.notify_user(message, "warning")
        return
    if choice is None or choice.title != LOAD:
        return
    loaded = await load_for_good(ls, models)
    if loaded:
        ls.notify_user(
            f"aigents: {' and '.join(f'`{m}`' for m in loaded)} loaded for good: JIT auto-evict "
            "no longer unloads them",
            "info",
        )


async def load_for_good(ls: AigentsServer, models: tuple[str, ...]) -> list[str]:
    """Load each model that is not loaded now through the load API; the ones loaded."""
    from aigents_lsp.load_settings import LoadTask, load_values
    from aigents_lsp.providers import load_config
    from aigents_lsp.providers.lmstudio import LMStudioProvider
    from aigents_lsp.providers.models import find, is_embedding

    done: list[str] = []
    try:
        provider = await ls.backend.provider("completion")
        if not isinstance(provider, LMStudioProvider):
            return done
        listed = await provider.list_models()
        for model in models:
            info = find(listed, model)
            if info is None or info.state == "loaded":
                continue
            embedding = is_embedding(info)
            task: LoadTask = "embedding" if embedding else "completion"
            if not embedding and ls.settings.model_for("chat") == model:
                task = "chat"
            config = load_config.settings_config(load_values(ls.settings, task))
            outcome = await load_config.load_configured(
                provider, info.id, config, embedding=embedding
            )
            if outcome.outcome.how != "loaded":
                ls.notify_user(
                    'aigents: this LM Studio has no load API (before 0.4): turn off "Only Keep '
                    'Last JIT Loaded Model" in its Developer → Server Settings instead',
                    "warning",
                )
                break
            done.append(info.id)
    except ProviderError as error:
        ls.notify_user(f"aigents: could not load the models for good: {error}", "error")
    ls.backend.forget_model_info()
    return done
