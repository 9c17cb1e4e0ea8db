"""Command line: `aigents-lsp [--tcp HOST:PORT]` serves; `doctor`, `models`, `demo` help.

Heavy imports (pygls, lsprotocol, httpx) happen inside each verb so `--help` stays instant.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from aigents_lsp import __version__

if TYPE_CHECKING:
    import argparse

    from aigents_lsp.providers.backend import Backend

DEFAULT_TCP_HOST = "127.0.0.1"


def _parse_hostport(value: str) -> tuple[str, int]:
    import argparse

    host, _, port = value.rpartition(":")
    if not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT or PORT, got {value!r}")
    return host or DEFAULT_TCP_HOST, int(port)


def build_parser() -> argparse.ArgumentParser:
    import argparse  # not on the path editors take (`main` serves without parsing)

    parser = argparse.ArgumentParser(
        prog="aigents-lsp",
        description="A language server that turns a local LLM server (LM Studio first, or an "
        "embedded llama.cpp engine) into AI features for every LSP editor.",
    )
    parser.add_argument("--version", action="version", version=f"aigents-lsp {__version__}")
    parser.add_argument(
        "--stdio", action="store_true", help="serve LSP over stdin/stdout (the default)"
    )
    parser.add_argument(
        "--tcp",
        metavar="HOST:PORT",
        type=_parse_hostport,
        help="serve LSP over TCP instead (host defaults to 127.0.0.1)",
    )
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    sub.add_parser("serve", help="serve LSP (same as no verb)")
    doctor = sub.add_parser(
        "doctor", help="check the backend step by step and say how to fix what fails"
    )
    doctor.add_argument("--json", action="store_true", help="print the report as JSON")
    models = sub.add_parser(
        "models", help="list the backend's models as a table (`models load ID` loads one)"
    )
    models.add_argument("--json", action="store_true", help="print the models as JSON")
    models_sub = models.add_subparsers(dest="models_action", metavar="ACTION")
    load = models_sub.add_parser(
        "load", help="load a model in LM Studio (for good on 0.4+, else just in time)"
    )
    load.add_argument("model", help="the model id, as `aigents-lsp models` lists it")
    load.add_argument("--context-length", type=int, help="tokens of context (context_length)")
    load.add_argument(
        "--flash-attention", action=argparse.BooleanOptionalAction, help="flash attention"
    )
    load.add_argument(
        "--gpu-offload",
        action=argparse.BooleanOptionalAction,
        help="keep the KV cache in GPU memory (offload_kv_cache_to_gpu)",
    )
    load.add_argument(
        "--ttl", type=int, help="idle seconds before LM Studio unloads it (a just-in-time load)"
    )
    download = models_sub.add_parser(
        "download", help="download a model in LM Studio (0.4+), with a progress bar"
    )
    download.add_argument(
        "model",
        metavar="ID[@QUANT]",
        help="a catalog id (ibm/granite-4-micro) or a Hugging Face URL, optionally @Q4_K_M",
    )
    demo = sub.add_parser(
        "demo",
        help="a scripted editor session over the real LSP protocol: spawn the server, open a "
        "sample file, request completions, print results and timings",
    )
    demo.add_argument("--file", help="a source file to use instead of the built-in sample")
    demo.add_argument(
        "--provider", help="force a provider for the demo (auto, lmstudio, embedded, ...)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if words in ([], ["--stdio"], ["serve"]):
        # What editors run: serve at once. Building the parser costs a few ms of start-up
        # (argparse's help formatter imports shutil, bz2, lzma) that the editor waits for.
        return serve(None)
    args = build_parser().parse_args(words)
    verb = args.verb or "serve"
    if verb == "serve":
        return serve(args.tcp)
    if verb == "doctor":
        from aigents_lsp.doctor import run_doctor

        return asyncio.run(run_doctor(as_json=args.json))
    if verb == "models":
        if args.models_action == "load":
            options = {
                "context_length": args.context_length,
                "flash_attention": args.flash_attention,
                "gpu_offload": args.gpu_offload,
                "ttl": args.ttl,
            }
            return asyncio.run(load_model(args.model, options))
        if args.models_action == "download":
            return asyncio.run(download_model(args.model))
        return asyncio.run(list_models(as_json=args.json))
    if verb == "demo":
        from aigents_lsp.demo import run_demo

        return asyncio.run(run_demo(file=args.file, provider=args.provider))
    return 2


def _backend() -> Backend:
    from pathlib import Path

    from aigents_lsp.providers.backend import Backend
    from aigents_lsp.settings_sources import load_settings

    settings, problems = load_settings([Path.cwd()])
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    return Backend(settings)


async def list_models(as_json: bool = False) -> int:
    """`aigents-lsp models`: what `aigents.listModels` answers, as a table or JSON."""
    from aigents_lsp.providers import models
    from aigents_lsp.providers.base import ProviderError
    from aigents_lsp.providers.lmstudio import DEFAULT_BASE_URL

    backend = _backend()
    try:
        listing = await models.list_models(backend)
    except ProviderError as error:
        print(f"aigents-lsp models: {error}", file=sys.stderr)
        return 1
    finally:
        await backend.aclose()
    print(json.dumps(listing.to_wire(), indent=2) if as_json else models.model_table(listing))
    warning = models.listing_swap_warning(listing)
    if warning:
        print(f"warning: {warning.removeprefix('aigents: ')}", file=sys.stderr)
    if backend.settings.provider == "auto" and listing.provider == "embedded":
        where = backend.settings.api_base or DEFAULT_BASE_URL
        print(
            f"aigents-lsp models: nothing answers at {where} (LM Studio); "
            "these are the embedded engine's models, which serve instead",
            file=sys.stderr,
        )
        return 1
    return 0


async def load_model(model_id: str, options: dict[str, object] | None = None) -> int:
    """`aigents-lsp models load ID [--context-length N] [--[no-]flash-attention]
    [--[no-]gpu-offload] [--ttl S]`: load a model in LM Studio, as `aigents.selectModel`
    does, then print the configuration LM Studio reads back."""
    from aigents_lsp.load_settings import load_values
    from aigents_lsp.providers import load_config, models
    from aigents_lsp.providers.base import ProviderError
    from aigents_lsp.providers.lmstudio import LMStudioProvider

    backend = _backend()
    running: dict[str, object] | None = None
    try:
        explicit = load_config.parse_load_config(options or {})
        provider = await backend.provider("completion")
        if not isinstance(provider, LMStudioProvider):
            print(
                f"aigents-lsp models load: {provider.name} loads models by itself; only LM "
                "Studio loads them on request",
                file=sys.stderr,
            )
            return 1
        listed = await provider.list_models()
        selection = models.plan_selection(listed, model_id, "all", backend.settings)
        settings = load_config.settings_config(load_values(backend.settings, selection.tasks[0]))
        config = explicit if explicit.ttl else explicit.over(settings)
        print(f"Loading {selection.model}…", file=sys.stderr, flush=True)
        done = await load_config.load_selection(
            provider, selection, config, explicit=not explicit.empty
        )
        running = (await load_config.loaded_configs(provider)).get(selection.model)
    except ProviderError as error:
        print(f"aigents-lsp models load: {error}", file=sys.stderr)
        return 1
    finally:
        await backend.aclose()
    outcome = done.outcome if done is not None else None
    if outcome is None:
        print(f"{selection.model} is already loaded")
    elif outcome.how == "loaded":
        print(f"Loaded {outcome.model} in {outcome.seconds:.1f} s")
    else:
        print(
            f"Loaded {outcome.model} just in time in {outcome.seconds:.1f} s (it unloads after "
            "its idle TTL, or when JIT auto-evict loads another model)"
        )
    if running:
        print("Runs with: " + ", ".join(f"{k} {v}" for k, v in running.items()))
    return 0


def progress_bar(percent: int | None, text: str, width: int = 30) -> str:
    """`[#########---------------------]  30 %  ...` (no bar while the percent is unknown)."""
    if percent is None:
        return f"[{'?' * width}] {text}"
    filled = width * percent // 100
    return f"[{'#' * filled}{'-' * (width - filled)}] {text}"


async def download_model(spec: str) -> int:
    """`aigents-lsp models download ID[@QUANT]`: what `aigents.downloadModel` does, with a
    progress bar on stderr (one line per update when stderr is not a terminal)."""
    from aigents_lsp.providers.base import ProviderError
    from aigents_lsp.providers.lmstudio import LMStudioProvider
    from aigents_lsp.providers.lmstudio_download import (
        ModelDownloader,
        downloaded_id,
        parse_target,
    )

    backend = _backend()
    tty = sys.stderr.isatty()
    try:
        request = parse_target(spec)
        provider = await backend.provider("completion")
        if not isinstance(provider, LMStudioProvider):
            print(
                f"aigents-lsp models download: {provider.name} does not download on request; "
                "only LM Studio (0.4+) does",
                file=sys.stderr,
            )
            return 1
        downloader = ModelDownloader(provider)

        def show(status: object) -> None:
            from aigents_lsp.providers.lmstudio_download import DownloadStatus

            assert isinstance(status, DownloadStatus)
            line = progress_bar(status.percent, status.describe())
            print(f"\r\033[K{line}" if tty else line, end="" if tty else "\n", file=sys.stderr)

        print(f"Downloading {request.model}…", file=sys.stderr, flush=True)
        final = await downloader.follow(request, await downloader.start(request), show)
    except ProviderError as error:
        print(f"\naigents-lsp models download: {error}", file=sys.stderr)
        return 1
    finally:
        await backend.aclose()
    if tty:
        print(file=sys.stderr)
    if final.status == "already_downloaded":
        print(f"{request.model} is already downloaded")
    else:
        listed = downloaded_id(request.model)
        print(f"Downloaded {request.model}; load it with `aigents-lsp models load {listed}`")
    return 0


def serve(tcp: tuple[str, int] | None) -> int:
    import gc

    # The imports below allocate hundreds of thousands of long-lived objects (lsprotocol's
    # types and converters): the cyclic collector would walk them all several times while the
    # editor waits for `initialize`. Not collected while they are made, then frozen: later
    # collections skip them (benchmarks/startup.py: 1.20x -> 1.09x a bare pygls server).
    gc.disable()
    try:
        from aigents_lsp.lsp.features import create_server
        from aigents_lsp.lsp.logs import setup_logging

        setup_logging()
        server = create_server()
    finally:
        gc.enable()
    gc.freeze()
    try:
        if tcp is not None:
            host, port = tcp
            from aigents_lsp.addresses import is_loopback_host

            if not is_loopback_host(host):
                print(
                    f"aigents-lsp: warning: listening on {host}: anyone who can reach it can "
                    "read your code through the server",
                    file=sys.stderr,
                )
            server.start_tcp(host, port)
        else:
            server.start_io()
    finally:
        _stop_engines(server)
    return 0


def _stop_engines(server: object) -> None:
    """The event loop is gone after `start_io`: stop child engines synchronously. Only a
    backend that exists: the `backend` property would build one (settings, pydantic) to stop."""
    backend = getattr(server, "_backend", None)
    stop = getattr(backend, "stop_sync", None)
    if callable(stop):
        stop()


if __name__ == "__main__":
    raise SystemExit(main())
