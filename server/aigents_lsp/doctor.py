"""`aigents-lsp doctor` and `aigents-lsp models`: the troubleshooting checklist, automated.

Each check says pass / warn / fail and, when it does not pass, the fix. The exit code is 1 when
any check fails, so scripts and CI can rely on it. The probes that ask the model itself (its
prompt cache, tool calling) are in doctor_probes.py.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

import httpx

from aigents_lsp.config import Settings
from aigents_lsp.doctor_probes import Verdict, prompt_cache_probe, tool_probe
from aigents_lsp.providers.base import (
    CompletionParams,
    ModelInfo,
    Provider,
    ProviderError,
)
from aigents_lsp.providers.lmstudio import LMStudioProvider
from aigents_lsp.providers.presets import build_provider
from aigents_lsp.settings_sources import load_settings

_MARK = {"pass": "PASS", "warn": "WARN", "fail": "FAIL", "skip": "SKIP"}


@dataclass
class Check:
    name: str
    verdict: Verdict
    detail: str
    fix: str = ""


def _root(base: str) -> str:
    parts = urlsplit(base)
    return f"{parts.scheme}://{parts.netloc}"


def _color(text: str, verdict: Verdict) -> str:
    if not sys.stdout.isatty() or os.environ.get("NO_COLOR"):
        return text
    code = {"pass": "32", "warn": "33", "fail": "31", "skip": "90"}[verdict]
    return f"\033[{code}m{text}\033[0m"


async def _port_owner(client: httpx.AsyncClient, root: str) -> str:
    """What answers at the root: "none", "lmstudio", "openai" (some other API) or "other"."""
    try:
        greeting = await client.get(f"{root}/lmstudio-greeting")
    except httpx.HTTPError:
        return "none"
    try:
        if greeting.json().get("lmstudio") is True:
            return "lmstudio"
    except (ValueError, AttributeError):
        pass
    return "other"


# How to start each preset's server, for the "server reachable" fix.
_START = {
    "ollama": "Start Ollama (`ollama serve`) and pull a model: `ollama pull qwen2.5-coder:1.5b`.",
    "llamacpp": "Start it: `llama-server -m model.gguf --port 8080 --cache-reuse 256`.",
    "llamafile": "Start it: `./model.llamafile --server --port 8080`.",
    "vllm": "Start it: `vllm serve Qwen/Qwen2.5-Coder-1.5B-Instruct --port 8000`.",
    "openai": "Check your network and OPENAI_API_KEY.",
}


async def diagnose(settings: Settings) -> list[Check]:
    checks = await _diagnose_main(settings)
    for task, route in settings.routes.items():
        checks += [await _endpoint_check(settings, task, e.provider, e.api_base) for e in route]
    return checks


async def _endpoint_check(settings: Settings, task: str, name: str, base: str | None) -> Check:
    """One provider of a route: does it answer?"""
    if name == "embedded":
        check = _embedded_check(settings)
        return Check(f"route {task}: embedded", check.verdict, check.detail, check.fix)
    key = settings.api_key.get_secret_value() if settings.api_key else None
    provider = build_provider(
        name,
        base,
        api_key=key if name == settings.provider else None,
        connect_timeout=settings.connect_timeout,
        read_timeout=30,
    )
    try:
        report = await provider.health()
    finally:
        await provider.aclose()
    where = f"{name} at {provider.base_url}"
    if report.ok:
        return Check(f"route {task}: {name}", "pass", f"{where}: {report.message}")
    return Check(
        f"route {task}: {name}", "warn", f"{where}: {report.message}", _START.get(name, "")
    )


async def _preset_checks(settings: Settings) -> list[Check]:
    """Ollama, llama.cpp, llamafile, vLLM, OpenAI: reachable, models, a test completion."""
    key = settings.api_key.get_secret_value() if settings.api_key else None
    provider = build_provider(
        settings.provider,
        settings.base_url,
        api_key=key,
        connect_timeout=settings.connect_timeout,
        read_timeout=min(settings.read_timeout, 120),
    )
    try:
        report = await provider.health()
        if not report.ok:
            fix = _START.get(settings.provider, "")
            return [Check("server reachable", "fail", report.message, fix)]
        checks = [Check("server reachable", "pass", f"{provider.name} at {provider.base_url}")]
        return checks + await _model_checks(provider, settings)
    finally:
        await provider.aclose()


async def _diagnose_main(settings: Settings) -> list[Check]:
    if settings.provider == "embedded":
        return [_embedded_check(settings)]
    if settings.provider in _START:
        return await _preset_checks(settings)
    checks: list[Check] = []
    base = settings.base_url
    root = _root(base)
    key = settings.api_key.get_secret_value() if settings.api_key else None

    async with httpx.AsyncClient(timeout=httpx.Timeout(settings.connect_timeout, read=10)) as http:
        owner = await _port_owner(http, root)
    if owner == "none":
        checks.append(
            Check(
                "server reachable",
                "fail",
                f"nothing answers at {base}",
                "Start LM Studio's server (Developer tab -> Start server, or `lms server start`), "
                "or point aigents.apiBase / AIGENTS_API_BASE at your server.",
            )
        )
        checks.append(_embedded_check(settings))
        return checks
    checks.append(Check("server reachable", "pass", f"something answers at {root}"))
    if owner == "lmstudio":
        checks.append(Check("is LM Studio", "pass", 'GET /lmstudio-greeting -> {"lmstudio":true}'))
    else:
        checks.append(
            Check(
                "is LM Studio",
                "warn" if settings.provider == "openai-compatible" else "fail",
                f"the server at {root} is not LM Studio (no /lmstudio-greeting)",
                "Another program holds this port: stop it, or move LM Studio to another port "
                "(`lms server start --port 1235`) and set aigents.apiBase to match.",
            )
        )

    provider = LMStudioProvider(
        base,
        api_key=key,
        connect_timeout=settings.connect_timeout,
        read_timeout=min(settings.read_timeout, 120),
    )
    try:
        checks += await _model_checks(provider, settings)
    finally:
        await provider.aclose()
    return checks


async def _model_checks(provider: Provider, settings: Settings) -> list[Check]:
    checks: list[Check] = []
    try:
        models = await provider.list_models()
    except ProviderError as error:
        checks.append(Check("models listed", "fail", error.message, error.hint))
        return checks
    llms = [m for m in models if m.type in ("llm", "vlm", "unknown")]
    loaded = [m for m in llms if m.state == "loaded"]
    summary = (
        ", ".join(f"{m.id} ({m.state}, ctx {m.context_length or '?'})" for m in models) or "none"
    )
    checks.append(
        Check(
            "models listed",
            "pass" if models else "fail",
            f"{len(models)} model(s): {summary}",
            ""
            if models
            else "Download a model (a code model such as Qwen2.5-Coder for completion): "
            "`lms get qwen/qwen2.5-coder-7b-instruct` in LM Studio, `ollama pull "
            "qwen2.5-coder:1.5b` in Ollama.",
        )
    )
    configured = settings.model_for("completion")
    if configured:
        known = any(m.id == configured for m in models)
        checks.append(
            Check(
                "configured model present",
                "pass" if known else "fail",
                f"aigents.model = {configured}",
                ""
                if known
                else f"Download {configured} or set aigents.model to one of the "
                "models above (`aigents-lsp models`).",
            )
        )
    checks.append(
        Check(
            "a model is loaded",
            "pass" if loaded else "warn",
            ", ".join(m.id for m in loaded) or "none loaded (LM Studio may load one just in time)",
            ""
            if loaded
            else "Load one: `lms load <model>` or the Developer tab; the first "
            "request will otherwise wait while LM Studio loads it.",
        )
    )
    try:
        model = configured or await provider.resolve_model("completion")
        started = time.perf_counter()
        result = await provider.complete(
            CompletionParams(
                prompt="def add(a, b):\n    return", model=model, max_tokens=1, temperature=0.0
            )
        )
        ms = (time.perf_counter() - started) * 1000
        checks.append(
            Check("test completion", "pass", f"{result.model or model}: {ms:.0f} ms for 1 token")
        )
    except ProviderError as error:
        checks.append(Check("test completion", "fail", error.message, error.hint))
        return checks
    checks.append(Check(*await prompt_cache_probe(provider, model, settings)))
    checks.append(Check(*await tool_probe(provider, settings)))
    if isinstance(provider, LMStudioProvider):
        from aigents_lsp.doctor_models import draft_model_check, suggestion_check

        found = await draft_model_check(provider, models, model, settings.draft_model)
        checks += [Check(*found)] if found else []
        checks.append(Check(*suggestion_check(models)))
    checks += await _next_edit_checks(provider, settings, models, model)
    embedders = [m for m in models if m.type == "embeddings"]
    checks.append(
        Check(
            "embedding model present",
            "pass" if embedders else "warn",
            ", ".join(m.id for m in embedders) or "none",
            ""
            if embedders
            else "For semantic search, download one: `lms get nomic-ai/nomic-embed-text-v1.5`.",
        )
    )
    return checks


async def _next_edit_checks(
    provider: Provider, settings: Settings, models: list[ModelInfo], fallback: str | None
) -> list[Check]:
    """The next-edit model is loaded, and its format's special tokens are single tokens."""
    from aigents_lsp.nextedit.formats import pick_format
    from aigents_lsp.nextedit.tokens import token_counts

    if not settings.next_edit:
        return [Check("next-edit model", "skip", "next-edit suggestions are off")]
    model = settings.next_edit_model or fallback
    fmt = pick_format(model, settings.next_edit_format)
    entry = next((m for m in models if m.id == model), None)
    state = entry.state if entry else "not listed"
    checks = [
        Check(
            "next-edit model loaded",
            "pass" if state == "loaded" else "warn",
            f"{model} ({state}), format {fmt.name}",
            ""
            if state == "loaded"
            else f"Load it: `lms load {model}` (or set aigents.nextEditModel to a loaded "
            "model); the first next edit will otherwise wait for a just-in-time load.",
        )
    ]
    if not fmt.special_tokens:
        return checks
    counts = await token_counts(provider, model, fmt.special_tokens)
    split = {t: n for t, n in counts.items() if n is not None and n != 1}
    unknown = [t for t, n in counts.items() if n is None]
    verdict: Verdict = "fail" if split else "warn" if unknown else "pass"
    detail = ", ".join(f"{t} = {n if n is not None else '?'} token(s)" for t, n in counts.items())
    checks.append(
        Check(
            "next-edit special tokens",
            verdict,
            detail,
            "The model's tokenizer splits its special tokens: use a GGUF converted with its "
            f"added tokens (the {fmt.name} model's own release), not a re-quantized copy."
            if split
            else "The backend reports no token counts; the tokens could not be checked."
            if unknown
            else "",
        )
    )
    return checks


def _embedded_check(settings: Settings) -> Check:
    from aigents_lsp.providers.engine_process import embedded_available

    if settings.provider == "lmstudio":
        return Check("embedded engine", "skip", "provider is `lmstudio`: no fallback by choice")
    if embedded_available():
        return Check(
            "embedded engine",
            "pass",
            "installed: with provider `auto` the server falls back to it while LM Studio is off",
        )
    return Check(
        "embedded engine",
        "warn",
        "not installed",
        "pip install 'aigents-lsp[embedded]' for a fallback that works without LM Studio.",
    )


def _settings() -> Settings:
    from pathlib import Path

    settings, problems = load_settings([Path.cwd()])
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    return settings


def completion_stats() -> dict[str, object] | None:
    """The completion metrics the server saved last (local only, never sent anywhere)."""
    from aigents_lsp.lsp.logs import stats_path

    try:
        data = json.loads(stats_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


async def run_doctor(as_json: bool = False) -> int:
    settings = _settings()
    checks = await diagnose(settings)
    failed = any(c.verdict == "fail" for c in checks)
    stats = completion_stats()
    if as_json:
        report = {"ok": not failed, "checks": [asdict(c) for c in checks], "stats": stats}
        print(json.dumps(report, indent=2))
        return 1 if failed else 0
    print(f"aigents-lsp doctor — provider {settings.provider}, api base {settings.base_url}")
    for check in checks:
        mark = _color(_MARK[check.verdict], check.verdict)
        print(f"  [{mark}] {check.name}: {check.detail}")
        if check.fix and check.verdict != "pass":
            print(f"         fix: {check.fix}")
    print("All checks passed." if not failed else "Some checks failed: see the fixes above.")
    completion = stats.get("completion") if stats else None
    if isinstance(completion, dict):
        shown = ", ".join(
            f"{k.replace('_', ' ')} {v}" for k, v in completion.items() if v is not None
        )
        print(f"Completion metrics of the last session (local only): {shown}")
    return 1 if failed else 0
