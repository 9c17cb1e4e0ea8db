"""Model management commands: `aigents.listModels` and `aigents.selectModel` (see
docs/commands.md). The work is in `providers/models.py`; this module adds the LSP around it:
arguments, a `$/progress` job while LM Studio loads a model, errors as `RequestFailed`, and the
one-time warning about models that JIT auto-evict would swap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pygls.exceptions import JsonRpcInvalidParams

from aigents_lsp.lsp.jobs import LiveProgress, run_job
from aigents_lsp.lsp.requests import RequestFailed, command_argument
from aigents_lsp.providers.base import BadResponse, ProviderError, WrongRoute

if TYPE_CHECKING:
    from aigents_lsp.lsp.server import AigentsServer

    # providers.models and .lmstudio bring httpx (~40 ms): loaded after the `initialize` answer.
    from aigents_lsp.providers import load_config, models
    from aigents_lsp.providers.base import Provider

log = logging.getLogger(__name__)

LIST_COMMAND = "aigents.listModels"
SELECT_COMMAND = "aigents.selectModel"
TICK_SECONDS = 1.0  # elapsed time is reported this often while a model loads


@dataclass
class ModelSession:
    """Per-server state: the swap warning is given once; loads do not overlap (LM Studio's
    load endpoint is not idempotent: a second load of a model adds an instance `:2`)."""

    warned: bool = False
    load_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


_sessions: weakref.WeakKeyDictionary[AigentsServer, ModelSession] = weakref.WeakKeyDictionary()


def session(ls: AigentsServer) -> ModelSession:
    found = _sessions.get(ls)
    if found is None:
        found = _sessions[ls] = ModelSession()
    return found


def warn_once(ls: AigentsServer, listing: models.ModelList) -> None:
    from aigents_lsp.providers import models

    state = session(ls)
    message = models.listing_swap_warning(listing)
    if message and not state.warned:
        state.warned = True
        ls.notify_user(message, "warning")


async def check_at_start(ls: AigentsServer) -> None:
    """When the settings name separate completion and chat models, check once at start that
    LM Studio will not swap them (a model list request; nothing when they are the same)."""
    from aigents_lsp.providers import models

    settings = ls.settings
    completion, chat = settings.model_for("completion"), settings.model_for("chat")
    if not completion or not chat or completion == chat:
        return
    try:
        warn_once(ls, await models.list_models(ls.backend))
    except ProviderError as error:
        log.debug("model swap check skipped: %s", error)


async def list_command(ls: AigentsServer, arg: dict[str, Any]) -> dict[str, Any]:
    from aigents_lsp.providers import models

    try:
        listing = await models.list_models(ls.backend)
    except ProviderError as error:
        raise RequestFailed(message=f"aigents: cannot list models: {error}") from None
    warn_once(ls, listing)
    wire = listing.to_wire()
    await _with_load_configs(ls, wire)
    wire.update(_suggestions(listing))
    return wire


def _suggestions(listing: models.ModelList) -> dict[str, Any]:
    """What to download for the tasks no model suits (LM Studio downloads; others do not)."""
    from aigents_lsp.providers import suggestions

    if not listing.lmstudio:
        return {"suggestions": [], "memory": None}
    memory = suggestions.machine_memory()
    found = suggestions.suggestions(listing.models, memory)
    return {"suggestions": [s.to_wire() for s in found], "memory": memory.to_wire()}


async def _with_load_configs(ls: AigentsServer, wire: dict[str, Any]) -> None:
    """Each loaded model's `loadConfig` as LM Studio 0.4 reads it back (None: not loaded, or
    an LM Studio that does not say)."""
    from aigents_lsp.providers import load_config
    from aigents_lsp.providers.lmstudio import LMStudioProvider

    provider = await ls.backend.provider("completion")
    configs: dict[str, dict[str, Any]] = {}
    if isinstance(provider, LMStudioProvider):
        try:
            configs = await load_config.loaded_configs(provider)
        except ProviderError as error:
            log.debug("loaded configs not read: %s", error)
    for model in wire["models"]:
        model["loadConfig"] = configs.get(model["id"])


def _task(value: Any) -> models.TaskChoice:
    from aigents_lsp.providers import models

    for choice in models.TASK_CHOICES:
        if value == choice:
            return choice
    raise JsonRpcInvalidParams(
        message=f"`task` is one of {', '.join(models.TASK_CHOICES)} (got {value!r})"
    )


async def select_command(ls: AigentsServer, arg: dict[str, Any]) -> dict[str, Any]:
    from aigents_lsp.providers import models
    from aigents_lsp.providers.lmstudio import LMStudioProvider

    model = arg.get("model")
    if not isinstance(model, str) or not model.strip():
        raise JsonRpcInvalidParams(message="`model` (a model id) is required")
    task = _task(arg.get("task", "all"))
    explicit = _load_config(arg)
    backend = ls.backend
    try:
        provider = await backend.provider("completion" if task == "all" else task)
        try:
            listed = await provider.list_models()
        except (WrongRoute, BadResponse) as error:
            if isinstance(provider, LMStudioProvider):
                raise
            log.info("%s lists no models (%s): %s taken as given", provider.name, error, model)
            listed = []
        selection = models.plan_selection(listed, model.strip(), task, ls.settings)
    except ProviderError as error:
        raise RequestFailed(message=f"aigents: cannot use {model}: {error}") from None
    if not explicit.empty and not isinstance(provider, LMStudioProvider):
        raise RequestFailed(
            message=f"aigents: {provider.name} loads its models by itself: only LM Studio takes "
            "a load configuration (contextLength, flashAttention, gpuOffload, ttl)"
        )
    # A TTL makes it a just-in-time load, which takes none of the settings' configuration.
    config = explicit if explicit.ttl else explicit.over(_settings_config(ls, selection.tasks[0]))
    outcome = None
    if selection.needs_load or (not explicit.empty and isinstance(provider, LMStudioProvider)):
        outcome = await run_job(
            ls,
            f"aigents: loading {selection.model}…",
            lambda p: _load(ls, selection, p, config, explicit=not explicit.empty),
        )
    models.apply_selection(backend, selection)
    backend.forget_model_info()  # a model just loaded runs with its loaded context length
    backend.mark_ready(selection.model if "completion" in selection.tasks else None)
    state = selection.info.state if selection.info else None
    try:
        listing = await models.list_models(backend)
        found = models.find(listing.models, selection.model)
        state = found.state if found else state
        warn_once(ls, listing)
    except ProviderError as error:
        log.debug("model list after selecting failed: %s", error)
    log.info("model %s selected for %s", selection.model, ", ".join(selection.tasks))
    result = models.selection_result(
        selection, outcome.outcome if outcome is not None else None, state
    )
    result["loadConfig"] = await _running_config(provider, selection.model, outcome)
    return result


def _load_config(arg: dict[str, Any]) -> load_config.LoadConfig:
    from aigents_lsp.providers import load_config

    try:
        return load_config.parse_load_config(arg)
    except ProviderError as error:
        raise JsonRpcInvalidParams(message=f"aigents: {error}") from None


def _settings_config(ls: AigentsServer, task: models.Task) -> load_config.LoadConfig:
    from aigents_lsp.load_settings import load_values
    from aigents_lsp.providers import load_config

    return load_config.settings_config(load_values(ls.settings, task))


async def _running_config(
    provider: Provider, model: str, outcome: load_config.ConfiguredLoad | None
) -> dict[str, Any] | None:
    """What LM Studio says the model runs with (`loaded_instances[].config`, else what its
    load answer echoed); None when it does not say (not LM Studio 0.4, not loaded)."""
    from aigents_lsp.providers import load_config
    from aigents_lsp.providers.lmstudio import LMStudioProvider

    if not isinstance(provider, LMStudioProvider):
        return None
    try:
        running = (await load_config.loaded_configs(provider)).get(model)
    except ProviderError as error:
        log.debug("loaded config not read: %s", error)
        running = None
    return running or (outcome.config if outcome is not None else None)


async def _load(
    ls: AigentsServer,
    selection: models.Selection,
    progress: LiveProgress,
    config: load_config.LoadConfig,
    *,
    explicit: bool,
) -> load_config.ConfiguredLoad | None:
    """Load in LM Studio, reporting the time elapsed (its load endpoint is blocking: no
    percentage to show)."""
    from aigents_lsp.providers import load_config, models
    from aigents_lsp.providers.lmstudio import LMStudioProvider

    started = time.perf_counter()

    async def tick() -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            progress.note(f"{time.perf_counter() - started:.0f} s")

    ticker = asyncio.get_running_loop().create_task(tick())
    try:
        async with session(ls).load_lock:
            provider = await ls.backend.provider(selection.tasks[0])
            if not isinstance(provider, LMStudioProvider):
                outcome = await models.load_if_needed(provider, selection)
                return None if outcome is None else load_config.ConfiguredLoad(outcome, None)
            return await load_config.load_selection(provider, selection, config, explicit=explicit)
    except ProviderError as error:
        raise RequestFailed(message=f"aigents: {selection.model} did not load: {error}") from None
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker


def register(server: AigentsServer) -> None:
    @server.command(LIST_COMMAND)
    async def list_models(*args: Any) -> dict[str, Any]:
        """The backend's models and which serves each task."""
        return await list_command(server, command_argument(args))

    @server.command(SELECT_COMMAND)
    async def set_model(*args: Any) -> dict[str, Any]:
        """{model, task?}: use a model from now on (loaded in LM Studio when it is not)."""
        return await select_command(server, command_argument(args))
