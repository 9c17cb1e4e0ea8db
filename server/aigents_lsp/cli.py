"""Command line: `aigents-lsp [--tcp HOST:PORT]` serves; `doctor`, `models`, `demo` help.

Heavy imports (pygls, lsprotocol, httpx) happen inside each verb so `--help` stays instant.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from aigents_lsp import __version__

DEFAULT_TCP_HOST = "127.0.0.1"


def _parse_hostport(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT or PORT, got {value!r}")
    return host or DEFAULT_TCP_HOST, int(port)


def build_parser() -> argparse.ArgumentParser:
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
    models = sub.add_parser("models", help="list the backend's models as a table")
    models.add_argument("--json", action="store_true", help="print the models as JSON")
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
    args = build_parser().parse_args(argv)
    verb = args.verb or "serve"
    if verb == "serve":
        return serve(args.tcp)
    if verb == "doctor":
        from aigents_lsp.doctor import run_doctor

        return asyncio.run(run_doctor(as_json=args.json))
    if verb == "models":
        from aigents_lsp.doctor import run_models

        return asyncio.run(run_models(as_json=args.json))
    if verb == "demo":
        from aigents_lsp.demo import run_demo

        return asyncio.run(run_demo(file=args.file, provider=args.provider))
    return 2


def serve(tcp: tuple[str, int] | None) -> int:
    from aigents_lsp.lsp.logs import setup_logging
    from aigents_lsp.lsp.server import create_server

    setup_logging()
    server = create_server()
    try:
        if tcp is not None:
            host, port = tcp
            if host not in ("127.0.0.1", "localhost", "::1"):
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
    """The event loop is gone after `start_io`: stop child engines synchronously."""
    backend = getattr(server, "backend", None)
    stop = getattr(backend, "stop_sync", None)
    if callable(stop):
        stop()


if __name__ == "__main__":
    raise SystemExit(main())
