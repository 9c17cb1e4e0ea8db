"""Model management, without LSP: the model list that `aigents-lsp models` prints and
`aigents.listModels` answers, choosing a model for a task (`aigents.selectModel`), loading it in
LM Studio, and spotting two models that LM Studio's JIT auto-evict would swap back and forth.

What LM Studio's API tells (and what it does not): `/api/v0/models` and `/api/v1/models` say
which models are loaded (`state`, `loaded_instances`) and with what context, but not *how* a
loaded model was loaded (just in time or for good with `lms load`), nor whether JIT loading or
auto-evict are on. So the swap warning is given when separate completion and chat models are in
use and at most one of them is loaded: the other can only come in just in time.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from aigents_lsp.providers.base import (
    InvalidRequest,
    ModelInfo,
    Provider,
    ProviderError,
    UnknownModel,
)
from aigents_lsp.providers.lmstudio import LMStudioProvider, LoadOutcome

if TYPE_CHECKING:
    from aigents_lsp.config import Settings
    from aigents_lsp.providers.backend import Backend

Task = Literal["completion", "chat", "embedding"]
TaskChoice = Literal["completion", "chat", "embedding", "all"]
Source = Literal["session", "settings", "auto"]
TASKS: tuple[Task, ...] = ("completion", "chat", "embedding")
TASK_CHOICES: tuple[TaskChoice, ...] = ("completion", "chat", "embedding", "all")
SETTING_FOR: dict[Task, str] = {
    "completion": "completionModel",
    "chat": "chatModel",
    "embedding": "embeddingModel",
}
_INSTANCE_SUFFIX = re.compile(r"(?::\d+)?(?:@[\w.-]+)?$")


@dataclass(frozen=True)
class TaskModel:
    """Which model serves a task, and why: chosen this session, configured, or auto-picked."""

    model: str | None
    source: Source

    def to_wire(self, task: Task) -> dict[str, Any]:
        return {"model": self.model, "source": self.source, "setting": SETTING_FOR[task]}


@dataclass(frozen=True)
class ModelList:
    """The backend's models and which of them serve each task."""

    provider: str
    base_url: str
    models: tuple[ModelInfo, ...]
    tasks: dict[Task, TaskModel]
    lmstudio: bool = False  # models can be loaded (and JIT auto-evict applies)

    def used_for(self, model: ModelInfo) -> list[Task]:
        return [t for t, chosen in self.tasks.items() if chosen.model and same(chosen.model, model)]

    def to_wire(self) -> dict[str, Any]:
        """The result of `aigents.listModels` and `aigents-lsp models --json`."""
        return {
            "provider": self.provider,
            "baseUrl": self.base_url,
            "models": [{**model_to_wire(m), "usedFor": self.used_for(m)} for m in self.models],
            "tasks": {task: chosen.to_wire(task) for task, chosen in self.tasks.items()},
        }


def model_to_wire(model: ModelInfo) -> dict[str, Any]:
    return {
        "id": model.id,
        "type": model.type,
        "state": model.state,
        "quantization": model.quantization,
        "arch": model.arch,
        "publisher": model.publisher,
        "maxContextLength": model.max_context_length,
        "loadedContextLength": model.loaded_context_length,
        "capabilities": list(model.capabilities),
    }


def same(model_id: str, model: ModelInfo) -> bool:
    """`model_id` names `model` (exactly, or as another instance `:2` or variant `@q4_k_m`)."""
    return model_id == model.id or _INSTANCE_SUFFIX.sub("", model_id) == _INSTANCE_SUFFIX.sub(
        "", model.id
    )


def find(models: Iterable[ModelInfo], model_id: str) -> ModelInfo | None:
    listed = list(models)
    exact = next((m for m in listed if m.id == model_id), None)
    return exact or next((m for m in listed if same(model_id, m)), None)


def is_embedding(model: ModelInfo) -> bool:
    return model.type == "embeddings" or (model.type == "unknown" and "embed" in model.id.lower())


# --- listing ---------------------------------------------------------------------------------


async def task_models(backend: Backend) -> dict[Task, TaskModel]:
    """The model of each task: the session's choice, the settings' (`model`, a task's own
    setting, or a route's `model`), else the provider's pick (None when it has none, e.g. no
    model loaded in LM Studio)."""
    chosen: dict[Task, TaskModel] = {}
    for task in TASKS:
        override = backend.model_overrides.get(task)
        if override:
            chosen[task] = TaskModel(override, "session")
            continue
        try:
            model = await backend.model_for(task)
        except ProviderError:
            model = None
        configured = {backend.settings.model_for(task)}
        configured |= {endpoint.model for endpoint in backend.settings.routes.get(task, ())}
        source: Source = "settings" if model is not None and model in configured else "auto"
        chosen[task] = TaskModel(model, source)
    return chosen


async def list_models(backend: Backend) -> ModelList:
    """The models of the provider that serves completion, and which model serves each task;
    raises `ProviderError`."""
    provider = await backend.provider("completion")
    models = await provider.list_models()
    tasks = await task_models(backend)
    lmstudio = isinstance(provider, LMStudioProvider)
    return ModelList(provider.name, provider.base_url, tuple(models), tasks, lmstudio)


def model_table(listing: ModelList) -> str:
    """`aigents-lsp models`: one row per model, then which model serves each task."""
    header = ("MODEL", "TYPE", "STATE", "CONTEXT", "MAX CONTEXT", "ARCH", "QUANT")
    rows = [
        (
            m.id,
            m.type,
            m.state,
            str(m.loaded_context_length or "-"),
            str(m.max_context_length or "-"),
            m.arch or "-",
            m.quantization or "-",
        )
        for m in listing.models
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    if not rows:
        lines = ["No models."]
    lines.append("")
    for task, chosen in listing.tasks.items():
        why = {"session": "chosen this session", "settings": SETTING_FOR[task], "auto": "auto"}
        lines.append(f"{task}: {chosen.model or '(none)'} ({why[chosen.source]})")
    return "\n".join(lines)


# --- choosing ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Selection:
    """What `aigents.selectModel` will do: the tasks a model takes over and how an editor
    persists the choice (`settings`: names to write; None removes a setting that would
    otherwise shadow the choice)."""

    model: str
    info: ModelInfo | None
    tasks: tuple[Task, ...]
    setting: str
    settings: dict[str, str | None] = field(default_factory=dict)

    @property
    def needs_load(self) -> bool:
        return self.info is not None and self.info.state == "not-loaded"


def plan_selection(
    models: Sequence[ModelInfo], model_id: str, task: TaskChoice, settings: Settings
) -> Selection:
    """Check `model_id` against the backend's list and decide the tasks it takes: `all`
    means every task the model can serve (completion and chat, or embeddings)."""
    info = find(models, model_id)
    if info is None and models:
        known = ", ".join(m.id for m in models[:6])
        raise UnknownModel(
            f'No model "{model_id}" here',
            hint=f"Pick one of the backend's models ({known}"
            f"{', …' if len(models) > 6 else ''}); `aigents-lsp models` lists them all",
        )
    embedder = info is not None and is_embedding(info)
    if task == "all":
        tasks: tuple[Task, ...] = ("embedding",) if embedder else ("completion", "chat")
    else:
        tasks = (task,)
    if info is not None and info.type != "unknown" and embedder != (tasks == ("embedding",)):
        kind = "an embedding model" if embedder else f"a {info.type} model, not an embedding model"
        raise InvalidRequest(
            f"{model_id} is {kind}: it cannot serve {' and '.join(tasks)}",
            hint="choose an embedding model for `embedding` and a language model for "
            "`completion` and `chat`",
        )
    model = info.id if info is not None else model_id
    if tasks == ("completion", "chat"):
        persist: dict[str, str | None] = {"model": model}
        # Task-specific settings would shadow `model`: the editor removes them.
        if settings.completion_model is not None:
            persist["completionModel"] = None
        if settings.chat_model is not None:
            persist["chatModel"] = None
        return Selection(model, info, tasks, "model", persist)
    name = SETTING_FOR[tasks[0]]
    return Selection(model, info, tasks, name, {name: model})


def apply_selection(backend: Backend, selection: Selection) -> None:
    """The choice takes effect at once, for this session, over the settings."""
    for task in selection.tasks:
        backend.model_overrides[task] = selection.model


async def load_if_needed(provider: Provider, selection: Selection) -> LoadOutcome | None:
    """Load the chosen model in LM Studio when it is not loaded (None: nothing to do)."""
    if not isinstance(provider, LMStudioProvider) or not selection.needs_load:
        return None
    current = find(await provider.list_models(), selection.model)
    if current is not None and current.state == "loaded":  # loaded meanwhile
        return None
    return await provider.load_model(selection.model, embedding=selection.tasks == ("embedding",))


def selection_result(
    selection: Selection, outcome: LoadOutcome | None, state: str | None
) -> dict[str, Any]:
    """The result of `aigents.selectModel`."""
    load: dict[str, Any] | None = None
    if outcome is not None:
        load = {"how": outcome.how, "seconds": round(outcome.seconds, 2)}
    return {
        "model": selection.model,
        "tasks": list(selection.tasks),
        "state": state,
        "load": load,
        "setting": selection.setting,
        "settings": selection.settings,
    }


# --- the JIT swap warning ----------------------------------------------------------------------


def swap_warning(
    models: Sequence[ModelInfo], completion: str | None, chat: str | None
) -> str | None:
    """Why completion and chat may keep unloading each other in LM Studio, or None.

    With JIT auto-evict (LM Studio's default) a just-in-time load unloads the previous
    just-in-time model; models loaded for good (`lms load`, the app, the load API) stay. Two
    separate models of which at most one is loaded would thus swap on every switch."""
    if not completion or not chat:
        return None
    first, second = find(models, completion), find(models, chat)
    if first is None or second is None or first.id == second.id:
        return None
    pair = (first, second)
    if any(m.state == "unknown" for m in pair):
        return None  # the list says nothing about what is loaded
    loaded = [m for m in pair if m.state == "loaded"]
    if len(loaded) == 2:
        return None
    cold = [m.id for m in pair if m.state != "loaded"]
    now = f"only `{loaded[0].id}` is loaded" if loaded else "neither is loaded"
    return (
        f"aigents: completion uses `{first.id}` and chat uses `{second.id}`, but {now} in LM "
        f"Studio, so {' and '.join(f'`{m}`' for m in cold)} can only be loaded just in time. "
        "With JIT auto-evict (on by default) each just-in-time load unloads the previous "
        "one, and the two models would swap on every switch between completion and chat. "
        f"Load both for good (`lms load {first.id}` and `lms load {second.id}`, or in LM "
        "Studio's app; `aigents.selectModel` does it on LM Studio 0.4+), or turn off "
        '"Only Keep Last JIT Loaded Model" in LM Studio\'s server settings.'
    )


def listing_swap_warning(listing: ModelList) -> str | None:
    """`swap_warning` for a listing, on LM Studio only."""
    if not listing.lmstudio:
        return None
    return swap_warning(
        listing.models, listing.tasks["completion"].model, listing.tasks["chat"].model
    )
