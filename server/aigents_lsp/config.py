"""Settings: one validated pydantic model, every setting documented (docs/settings.md and the
editors' JSON schema are generated from it: `python -m aigents_lsp.config > docs/settings.md`).

Where the values come from and how they are merged (files, environment, the editor's layers,
a bad value reported by name) is aigents_lsp/settings_sources.py.
Keys are snake_case in Python and TOML, camelCase on the wire; both spellings are accepted.
"""

from __future__ import annotations

import sys
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic.alias_generators import to_camel

from aigents_lsp import load_settings as load
from aigents_lsp.addresses import default_base
from aigents_lsp.next_edit_settings import NextEditSettings

ProviderName = Literal[
    "auto",
    "lmstudio",
    "embedded",
    "ollama",
    "llamacpp",
    "llamafile",
    "vllm",
    "openai",
    "openai-compatible",
]
EndpointName = Literal[
    "lmstudio", "embedded", "ollama", "llamacpp", "llamafile", "vllm", "openai", "openai-compatible"
]
TaskName = Literal["completion", "chat", "embedding"]
_URL_PATTERN = r"^https?://[^\s/]+(/\S*)?$"
ENV_PREFIX = "AIGENTS_"
USER_CONFIG_NAME = "config.toml"
WORKSPACE_CONFIG_NAME = ".aigents.toml"


class UserAction(BaseModel):
    """A code action of your own: `{title, prompt, edit}`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    title: str = Field(min_length=1, max_length=80)
    prompt: str = Field(
        min_length=1,
        description="Template with `{selection}`, `{file}`, `{language}`, `{diagnostics}`.",
    )
    edit: bool = Field(
        False, description="True: the answer replaces the selection; false: it is shown."
    )


class Endpoint(BaseModel):
    """One provider in a route: `"ollama"`, `"ollama@http://gpu-box:11434/v1"`, or a table
    `{provider, api_base, model, api_key_env}`."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True
    )

    provider: EndpointName
    api_base: str | None = Field(
        None, pattern=_URL_PATTERN, description="Unset: the preset's default address."
    )
    model: str | None = Field(None, description="Model id on this provider (unset: picked).")
    api_key_env: str | None = Field(
        None,
        description="Environment variable holding this provider's API key (unset: `api_key` "
        "when it is the main `provider`, else the preset's variable such as OPENAI_API_KEY).",
    )

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        if isinstance(value, str):
            name, _, base = value.partition("@")
            return {"provider": name.strip(), "api_base": base.strip() or None}
        return value

    def label(self) -> str:
        return f"{self.provider}@{self.api_base}" if self.api_base else self.provider


class Settings(NextEditSettings):
    """Every setting of aigents-lsp. The docs in `docs/settings.md` are generated from this."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        frozen=True,
        validate_default=True,
    )

    provider: ProviderName = Field(
        "auto",
        description=(
            "Which backend serves the model. `auto`: LM Studio when it answers at `api_base`, "
            "otherwise the embedded llama.cpp engine. `lmstudio`: LM Studio only, never a "
            "fallback. `embedded`: always the embedded engine. Presets with their own defaults "
            "and strengths: `ollama` (localhost:11434, native FIM), `llamacpp` / `llamafile` "
            "(localhost:8080, native FIM through /infill), `vllm` (localhost:8000), `openai` "
            "(api.openai.com, key from OPENAI_API_KEY; code leaves your machine). "
            "`openai-compatible`: any server speaking the OpenAI API at `api_base`."
        ),
    )
    api_base: str | None = Field(
        None,
        description="Base URL of the OpenAI-compatible API. Unset: the provider's default "
        "(LM Studio http://localhost:1234/v1, Ollama http://localhost:11434/v1, llama.cpp and "
        "llamafile http://localhost:8080/v1, vLLM http://localhost:8000/v1, OpenAI "
        "https://api.openai.com/v1).",
        pattern=_URL_PATTERN,
    )
    routes: dict[TaskName, tuple[Endpoint, ...]] = Field(
        default_factory=dict,
        description="Hybrid routing: per task (`completion`, `chat`, `embedding`), an ordered "
        'list of providers tried in turn, e.g. `{chat = ["lmstudio", "ollama", "openai"]}`. '
        "A provider that stops answering is skipped until its health check passes again; "
        "the status says which one serves. A provider on another machine is used only when "
        "listed here, and you are told when it takes over. Unset task: `provider`.",
    )
    api_key: SecretStr | None = Field(
        None,
        description=(
            "API token sent as `Authorization: Bearer`. For LM Studio, `LM_API_TOKEN` or "
            "`LMSTUDIO_API_TOKEN` are read when this is unset. Never logged."
        ),
    )
    model: str | None = Field(
        None,
        description="Model id for every task unless a task-specific model is set. Unset: the "
        "server picks a loaded model (a code model for completion, an instruct model for chat).",
    )
    completion_model: str | None = Field(
        None, description="Model id for code completion (overrides `model`)."
    )
    chat_model: str | None = Field(
        None, description="Model id for chat commands and code actions (overrides `model`)."
    )
    embedding_model: str | None = Field(
        None, description="Model id for embeddings (semantic search)."
    )
    ttl: int | None = Field(
        None,
        ge=1,
        description="Seconds LM Studio keeps a just-in-time loaded model idle before unloading "
        "it (sent as `ttl`). Unset: LM Studio's default (60 minutes).",
    )
    # How LM Studio loads each task's model, and the draft model (load_settings.py).
    completion_context_length: int | None = load.context_field("completion")
    completion_flash_attention: bool | None = load.flash_field("completion")
    completion_gpu_offload: bool | None = load.gpu_field("completion")
    chat_context_length: int | None = load.context_field("chat")
    chat_flash_attention: bool | None = load.flash_field("chat")
    chat_gpu_offload: bool | None = load.gpu_field("chat")
    embedding_context_length: int | None = load.context_field("embedding")
    embedding_flash_attention: bool | None = load.flash_field("embedding")
    embedding_gpu_offload: bool | None = load.gpu_field("embedding")
    draft_model: str | None = Field(None, description=load.DRAFT_MODEL_DESCRIPTION)
    completion_temperature: float = Field(
        0.2, ge=0.0, le=2.0, description="Sampling temperature for code completion."
    )
    chat_temperature: float = Field(
        0.3, ge=0.0, le=2.0, description="Sampling temperature for chat and explanations."
    )
    edit_temperature: float = Field(
        0.2, ge=0.0, le=2.0, description="Sampling temperature for edits, fixes and tests."
    )
    completion_max_tokens: int = Field(
        128, ge=1, le=4096, description="Most tokens generated for one completion."
    )
    chat_max_tokens: int = Field(
        1024, ge=1, le=32768, description="Most tokens generated for one chat answer or edit."
    )
    connect_timeout: float = Field(
        3.0, gt=0, le=120, description="Seconds to wait for a TCP connection to the backend."
    )
    read_timeout: float = Field(
        600.0,
        gt=0,
        le=7200,
        description="Seconds to wait for the backend between bytes. Generous on purpose: "
        "LM Studio may be loading a model just in time.",
    )
    completion_timeout: float = Field(
        20.0,
        gt=0,
        le=600,
        description="Seconds after which a completion request gives up, whatever it waits for "
        "(an upper bound on `completion_deadline`).",
    )
    completion_deadline: float = Field(
        5.0,
        gt=0,
        le=600,
        description="The typing deadline: seconds a completion waits for a loaded model "
        "(measured with the embedded engine on a busy 2-core CPU, `benchmarks/"
        "completion_latency.py`: 5 s lets 9 in 10 completions that continue a line through, "
        "3 s half of them; on a GPU they take well under a second). Past it the editor gets an "
        "empty answer and you are told once what was waited for; a generation still reading "
        "its prompt goes on in the background (until `completion_timeout`) to warm the "
        "backend's prompt cache, one already streaming is closed. A model being loaded just "
        "in time is not waited for: completions are empty, with progress, until it is loaded.",
    )
    first_token_timeout: float = Field(
        60.0,
        gt=0,
        le=3600,
        description="Seconds a chat command or code action waits for the first token of a "
        "loaded model (long prompts on a CPU take a while). Time spent loading the model is "
        "not counted. A server that answers nothing, not even its model list, is reported "
        "as hung after about 8 s.",
    )
    stall_timeout: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="Seconds without a new token, once an answer started streaming, after "
        "which it ends with an error (a backend dripping bytes but no token counts as "
        "stalled). An answer that still sends a token now and then but, over this many "
        "seconds, comes at under a tenth of the model's usual speed (and under 2 tokens/s) "
        "ends too. What was received is kept. A slow but steady model is never cut off.",
    )
    load_timeout: float = Field(
        300.0,
        gt=0,
        le=7200,
        description="Seconds a just-in-time model load (LM Studio) may take, reported with "
        "progress while it runs.",
    )
    command_timeout: float = Field(
        300.0,
        gt=0,
        le=7200,
        description="Seconds after which a chat command or code action gives up (the backend "
        "stream is closed).",
    )
    debounce_ms: int = Field(
        120, ge=0, le=5000, description="Milliseconds of typing pause before a completion runs."
    )
    adaptive_debounce: bool = Field(
        True,
        description="Learn each document's typing rhythm: a pause counts as the end of typing "
        "when it is longer than your usual gaps between keys. A steady fast typist waits less "
        "than `debounce_ms` (at least half of it), an uneven or slow one longer (at most 2.5 "
        "times as long). Off: always `debounce_ms`.",
    )
    completion_prompt_tokens: int | None = Field(
        None,
        ge=128,
        le=131072,
        description="Most tokens of code context in a completion prompt (also capped by the "
        "model's loaded context length). Larger gives better context but slower answers. "
        "Unset: sized by the backend's measured prompt speed to `completion_latency_ms`.",
    )
    completion_latency_ms: int = Field(
        1500,
        ge=200,
        le=60000,
        description="Time a completion may take when the backend has none of its prompt "
        "cached (e.g. after a jump to another part of the file). The prompt is sized so the "
        "backend reads it in three quarters of this time, measured from its answers: large "
        "on a GPU, small on a CPU. Consecutive requests in a file share their prompt's head "
        "and are much faster. Ignored when `completion_prompt_tokens` is set.",
    )
    completion_prefill_lines: int = Field(
        32,
        ge=0,
        le=400,
        description="After a suggestion, the backend reads this many lines below the cursor "
        "ahead of time (generating one token), so that moving down a little and typing "
        "reuses its prompt cache instead of reading those lines then. Done only where the "
        "backend was measured to need more than 0.15 s for them (a CPU, not a GPU); costs a "
        "short burst of backend work after a suggestion. 0 turns it off.",
    )
    completion_template: str | None = Field(
        None,
        description="Fill-in-the-middle template: a built-in name (`qwen-coder`, "
        "`deepseek-coder`, `starcoder`, `starcoder2`, `codellama`, `codestral`, `codegemma`, "
        "`granite-code`, `chat`, `prefix-only`) or your own string with `{prefix}`, `{suffix}` "
        "and optionally `{file}`. Unset: picked from the model id and its architecture.",
    )
    completion_mode: Literal["auto", "inline", "items", "off"] = Field(
        "auto",
        description="How completions are offered: `inline` ghost text, classic completion "
        "`items`, `auto` (ghost text when the editor supports it, items otherwise) or `off`.",
    )
    embedded_threads: int = Field(
        0, ge=0, le=256, description="CPU threads of the embedded engine (0: all cores)."
    )
    embedded_context_length: int = Field(
        4096, ge=512, le=131072, description="Context length the embedded engine loads with."
    )
    actions: tuple[UserAction, ...] = Field(
        (),
        description="Your own AI code actions, listed with the built-in ones: a list of "
        '`{title, prompt, edit}`, e.g. `{title = "AI: Translate comments to English", '
        'prompt = "Translate the comments in {selection} to English", edit = true}`. The '
        "prompt may use `{selection}`, `{file}`, `{language}` and `{diagnostics}`.",
    )
    tool_steps: int = Field(
        4, ge=0, le=16, description="Most tool-calling rounds in one chat or explanation."
    )
    index: Literal["auto", "on", "off"] = Field(
        "auto",
        description="The semantic index of the workspace, used by `aigents.search` and the "
        "model's `search_codebase` tool; kept in the user state dir and updated on save. "
        "`auto`: built in the background, with vectors when the provider has an embedding "
        "model (keyword search otherwise; the embedded engine is not started for it). `on`: "
        "vectors from the embedded engine too (slow on a CPU). `off`: no index; the model's "
        "search falls back to plain text search.",
    )
    index_max_files: int = Field(
        20000,
        ge=1,
        le=1_000_000,
        description="Most files the semantic index reads; the rest of a larger workspace is "
        "left out of it.",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Level of the log written to stderr and to `log_file`."
    )
    log_file: str | None = Field(
        None,
        description="Log file path. Unset: `aigents-lsp.log` in the user's log directory.",
    )

    @property
    def base_url(self) -> str:
        """`api_base`, else the default address of `provider`."""
        return self.api_base or default_base(self.provider)

    def model_for(self, task: Literal["completion", "chat", "embedding"]) -> str | None:
        """The configured model id for a task, or None to let the provider choose."""
        if task == "completion":
            return self.completion_model or self.model
        if task == "chat":
            return self.chat_model or self.model
        return self.embedding_model

    def public_dict(self) -> dict[str, Any]:
        """Settings as shown to users and logs: the API key masked."""
        data = self.model_dump()
        if self.api_key is not None:
            data["api_key"] = "***"
        return data


def settings_markdown() -> str:
    """The settings reference (docs/settings.md), generated from the model."""
    lines = [
        "# Settings reference",
        "",
        "<!-- Generated from `aigents_lsp.config.Settings` by "
        "`python -m aigents_lsp.config > docs/settings.md`. Do not edit by hand. -->",
        "",
        "Each setting can be given, lowest priority first, in `~/.config/aigents/config.toml`, "
        "in the workspace's `.aigents.toml`, as an `AIGENTS_*` environment variable, in the "
        "editor's `initializationOptions`, or in the editor's settings under the `aigents` "
        "section (`workspace/configuration`). TOML files use snake_case (optionally inside an "
        "`[aigents]` table); editors use camelCase.",
        "",
        "| setting (editor) | TOML key | environment | default | description |",
        "|---|---|---|---|---|",
    ]
    for name, info in Settings.model_fields.items():
        default = info.get_default(call_default_factory=True)
        shown = "unset" if default in (None, {}, ()) else f"`{default}`"
        annotation = str(info.annotation).replace("typing.", "").replace("|", "or")
        desc = (info.description or "").replace("|", "\\|")
        if "Literal" in annotation and "Endpoint" not in annotation:
            desc += f" One of: {annotation.split('[', 1)[1].rstrip(']')}."
        lines.append(
            f"| `aigents.{to_camel(name)}` | `{name}` | `{ENV_PREFIX}{name.upper()}` "
            f"| {shown} | {desc} |"
        )
    return "\n".join(lines) + "\n"


def settings_json_schema() -> dict[str, Any]:
    """JSON schema of the settings, camelCase keys (editors contribute their settings from it)."""
    return Settings.model_json_schema(by_alias=True)


if __name__ == "__main__":
    sys.stdout.write(settings_markdown())
