"""Model management without LSP: choosing a model for a task, loading it in LM Studio (native
load, JIT on older servers), the model list, and the JIT swap warning."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from aigents_lsp.config import Settings
from aigents_lsp.providers import models
from aigents_lsp.providers.backend import Backend
from aigents_lsp.providers.base import (
    InvalidRequest,
    ModelInfo,
    ModelLoadFailed,
    UnknownModel,
    WrongRoute,
)
from aigents_lsp.providers.lmstudio import LMStudioProvider, no_load_route
from tests.fakes.lmstudio_server import FakeLMStudio

CODER = ModelInfo("qwen2.5-coder-7b-instruct", "llm", "loaded", 32768, 4096, "qwen2", "Q4_K_M")
CHAT = ModelInfo("llama-3.1-8b-instruct", "llm", "not-loaded", 131072, None, "llama", "Q4_K_M")
EMBED = ModelInfo("text-embedding-nomic-embed-text-v1.5", "embeddings", "loaded", 2048, 2048)
LISTED = [CODER, CHAT, EMBED]


@pytest.fixture
async def lmstudio(fake_lmstudio: FakeLMStudio) -> AsyncIterator[LMStudioProvider]:
    provider = LMStudioProvider(fake_lmstudio.base_url, ttl=300)
    yield provider
    await provider.aclose()


# --- choosing ------------------------------------------------------------------------------


def test_all_means_completion_and_chat_for_a_language_model() -> None:
    selection = models.plan_selection(LISTED, CHAT.id, "all", Settings())
    assert selection.tasks == ("completion", "chat")
    assert selection.setting == "model" and selection.settings == {"model": CHAT.id}
    assert selection.needs_load


def test_all_means_embedding_for_an_embedding_model() -> None:
    selection = models.plan_selection(LISTED, EMBED.id, "all", Settings())
    assert selection.tasks == ("embedding",)
    assert selection.settings == {"embeddingModel": EMBED.id}
    assert not selection.needs_load


def test_task_specific_settings_that_would_shadow_the_choice_are_removed() -> None:
    settings = Settings(completion_model=CODER.id, chat_model=CHAT.id)
    selection = models.plan_selection(LISTED, CHAT.id, "all", settings)
    assert selection.settings == {"model": CHAT.id, "completionModel": None, "chatModel": None}
    one = models.plan_selection(LISTED, CHAT.id, "chat", settings)
    assert one.setting == "chatModel" and one.settings == {"chatModel": CHAT.id}


def test_an_unknown_model_names_the_ones_there_are() -> None:
    with pytest.raises(UnknownModel) as error:
        models.plan_selection(LISTED, "o4-mini", "all", Settings())
    assert 'No model "o4-mini"' in str(error.value) and CODER.id in str(error.value)


def test_a_variant_or_instance_id_is_the_listed_model() -> None:
    for spelling in (f"{CHAT.id}@q4_k_m", f"{CHAT.id}:2"):
        assert models.plan_selection(LISTED, spelling, "chat", Settings()).info == CHAT


def test_the_wrong_kind_of_model_for_a_task_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="embedding model"):
        models.plan_selection(LISTED, EMBED.id, "completion", Settings())
    with pytest.raises(InvalidRequest, match="not an embedding model"):
        models.plan_selection(LISTED, CODER.id, "embedding", Settings())


def test_a_backend_without_a_list_takes_the_id_as_given() -> None:
    selection = models.plan_selection([], "my-model", "completion", Settings())
    assert selection.model == "my-model" and selection.info is None and not selection.needs_load


def test_apply_selection_overrides_the_settings_for_its_tasks() -> None:
    backend = Backend(Settings(model=CODER.id))
    models.apply_selection(backend, models.plan_selection(LISTED, CHAT.id, "chat", Settings()))
    assert backend.model_overrides == {"chat": CHAT.id}


async def test_a_changed_setting_ends_the_session_choice() -> None:
    backend = Backend(Settings())
    backend.model_overrides["chat"] = CHAT.id
    backend.model_overrides["completion"] = CODER.id
    await backend.update_settings(Settings(chat_model="another"))
    assert backend.model_overrides == {"completion": CODER.id}


# --- listing -------------------------------------------------------------------------------


async def test_task_models_say_where_each_choice_comes_from(fake_lmstudio: FakeLMStudio) -> None:
    backend = Backend(
        Settings(provider="lmstudio", api_base=fake_lmstudio.base_url, chat_model="qwen/qwen3-8b")
    )
    backend.model_overrides["completion"] = "llama-3.2-3b-instruct"
    try:
        listing = await models.list_models(backend)
    finally:
        await backend.aclose()
    assert listing.lmstudio and listing.provider == "lmstudio"
    assert listing.tasks == {
        "completion": models.TaskModel("llama-3.2-3b-instruct", "session"),
        "chat": models.TaskModel("qwen/qwen3-8b", "settings"),
        "embedding": models.TaskModel("text-embedding-nomic-embed-text-v1.5", "auto"),
    }
    wire = listing.to_wire()
    qwen3 = next(m for m in wire["models"] if m["id"] == "qwen/qwen3-8b")
    assert qwen3["usedFor"] == ["chat"] and qwen3["state"] == "not-loaded"
    assert wire["tasks"]["chat"] == {
        "model": "qwen/qwen3-8b",
        "source": "settings",
        "setting": "chatModel",
    }


async def test_nothing_loaded_lists_models_with_no_auto_pick(fake_lmstudio: FakeLMStudio) -> None:
    fake_lmstudio.configure(no_model_loaded=True)
    backend = Backend(Settings(provider="lmstudio", api_base=fake_lmstudio.base_url))
    try:
        listing = await models.list_models(backend)
    finally:
        await backend.aclose()
    assert listing.models and listing.tasks["completion"] == models.TaskModel(None, "auto")


def test_model_table_shows_the_tasks() -> None:
    listing = models.ModelList(
        "lmstudio",
        "http://localhost:1234/v1",
        tuple(LISTED),
        {
            "completion": models.TaskModel(CODER.id, "settings"),
            "chat": models.TaskModel(CODER.id, "session"),
            "embedding": models.TaskModel(None, "auto"),
        },
    )
    table = models.model_table(listing)
    assert table.splitlines()[0].split()[:3] == ["MODEL", "TYPE", "STATE"]
    assert f"completion: {CODER.id} (completionModel)" in table
    assert f"chat: {CODER.id} (chosen this session)" in table
    assert "embedding: (none) (auto)" in table


# --- the JIT swap warning ------------------------------------------------------------------


def test_swap_warning_when_one_of_two_models_is_loaded() -> None:
    warning = models.swap_warning(LISTED, CODER.id, CHAT.id)
    assert warning is not None
    assert f"only `{CODER.id}` is loaded" in warning
    assert f"`lms load {CHAT.id}`" in warning and "auto-evict" in warning


def test_swap_warning_when_neither_is_loaded() -> None:
    cold = ModelInfo(CODER.id, "llm", "not-loaded")
    warning = models.swap_warning([cold, CHAT], CODER.id, CHAT.id)
    assert warning is not None and "neither is loaded" in warning


def test_no_swap_warning_when_it_cannot_happen_or_is_not_known() -> None:
    both = [CODER, ModelInfo(CHAT.id, "llm", "loaded")]
    assert models.swap_warning(both, CODER.id, CHAT.id) is None  # both loaded
    assert models.swap_warning(LISTED, CODER.id, CODER.id) is None  # one model
    assert models.swap_warning(LISTED, CODER.id, f"{CODER.id}:2") is None  # its instance
    assert models.swap_warning(LISTED, CODER.id, None) is None
    assert models.swap_warning(LISTED, CODER.id, "not-listed") is None
    ids_only = [ModelInfo(CODER.id), ModelInfo(CHAT.id)]  # /v1/models: no state
    assert models.swap_warning(ids_only, CODER.id, CHAT.id) is None


# --- loading in LM Studio -------------------------------------------------------------------


async def test_load_through_the_native_api(
    fake_lmstudio: FakeLMStudio, lmstudio: LMStudioProvider
) -> None:
    fake_lmstudio.configure(load_delay=0.2)
    outcome = await lmstudio.load_model("qwen/qwen3-8b")
    assert outcome.how == "loaded" and outcome.instance_id == "qwen/qwen3-8b"
    assert outcome.seconds >= 0.2
    assert fake_lmstudio.last_request("/api/v1/models/load").body == {"model": "qwen/qwen3-8b"}
    info = await lmstudio.model_info("qwen/qwen3-8b")  # the cached list was dropped
    assert info is not None and info.state == "loaded"
    assert fake_lmstudio.jit_loaded == []  # loaded for good: auto-evict leaves it alone


async def test_load_just_in_time_without_api_v1(
    fake_lmstudio: FakeLMStudio, lmstudio: LMStudioProvider
) -> None:
    fake_lmstudio.configure(api_v1=False)
    outcome = await lmstudio.load_model("qwen/qwen3-8b")
    assert outcome.how == "just-in-time"
    body = fake_lmstudio.last_request("/v1/chat/completions").body
    assert body["model"] == "qwen/qwen3-8b" and body["max_tokens"] == 1 and body["ttl"] == 300
    assert fake_lmstudio.jit_loaded == ["qwen/qwen3-8b"]


async def test_embedding_models_are_warmed_up_with_an_embedding(
    fake_lmstudio: FakeLMStudio,
) -> None:
    fake_lmstudio.configure(api_v1=False)
    entry = next(m for m in fake_lmstudio.behaviour.models if m["type"] == "embeddings")
    entry["state"] = "not-loaded"
    provider = LMStudioProvider(fake_lmstudio.base_url)
    try:
        outcome = await provider.load_model(entry["id"], embedding=True)
    finally:
        await provider.aclose()
    assert outcome.how == "just-in-time"
    assert fake_lmstudio.last_request("/v1/embeddings").body["model"] == entry["id"]


async def test_a_proxy_answering_404_means_just_in_time() -> None:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if request.url.path == "/api/v1/models/load":
            return httpx.Response(404, text="Cannot POST /api/v1/models/load")
        return httpx.Response(
            200,
            headers={"content-type": "text/event-stream"},
            text='data: {"choices":[{"index":0,"delta":{"content":"H"},"finish_reason":"length"}]}'
            "\n\ndata: [DONE]\n\n",
        )

    client = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    provider = LMStudioProvider("http://127.0.0.1:9/v1", client=client)
    try:
        outcome = await provider.load_model("qwen/qwen3-8b")
    finally:
        await client.aclose()
    assert outcome.how == "just-in-time"
    assert seen == ["/api/v1/models/load", "/v1/chat/completions"]


async def test_a_failed_load_keeps_lmstudios_words(
    fake_lmstudio: FakeLMStudio, lmstudio: LMStudioProvider
) -> None:
    fake_lmstudio.configure(load_failure="Engine protocol startup was aborted.")
    with pytest.raises(ModelLoadFailed) as error:
        await lmstudio.load_model("qwen/qwen3-8b")
    assert error.value.message == (
        'Failed to load model "qwen/qwen3-8b". Error: Engine protocol startup was aborted.'
    )
    assert "lms log stream" in error.value.hint
    assert not any(r.path == "/v1/chat/completions" for r in fake_lmstudio.requests)


async def test_load_if_needed_skips_loaded_models_and_other_providers(
    fake_lmstudio: FakeLMStudio, lmstudio: LMStudioProvider
) -> None:
    listed = await lmstudio.list_models()
    loaded = models.plan_selection(listed, "llama-3.2-3b-instruct", "all", Settings())
    assert await models.load_if_needed(lmstudio, loaded) is None
    cold = models.plan_selection(listed, "qwen/qwen3-8b", "all", Settings())
    fake_lmstudio.behaviour.models[-1]["state"] = "loaded"  # loaded meanwhile (lms load)
    assert await models.load_if_needed(lmstudio, cold) is None
    assert not any(r.path == "/api/v1/models/load" for r in fake_lmstudio.requests)


def test_no_load_route() -> None:
    assert no_load_route(WrongRoute("Unexpected endpoint or method. (POST /api/v1/models/load)"))
    assert no_load_route(InvalidRequest("HTTP 404: Cannot POST", status=404))
    assert not no_load_route(UnknownModel('Invalid model identifier "x"', status=404))
    assert not no_load_route(ModelLoadFailed('Failed to load model "x"', status=400))
