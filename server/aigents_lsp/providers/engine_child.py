"""The embedded engine's child process: one llama.cpp server (xllamacpp) for one GGUF model.

    python -m aigents_lsp.providers.engine_child --model PATH --alias NAME --ctx N --threads N
        [--embedding]

Prints exactly one line on stdout, `LISTENING <url>` or `ERROR <message>`, then serves until
SIGTERM. xllamacpp has no `stop()` and tearing its server down mid-request can deadlock, so the
process is never shut down from inside: it dies by signal or by `os._exit`. It also dies as soon
as its parent does (stdin reaches EOF, or the parent pid changes), so a SIGKILLed language
server leaves nothing running. Imports nothing from aigents_lsp: it starts fast and alone.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from typing import TextIO

PARENT_POLL_SECONDS = 1.0
CACHE_REUSE_TOKENS = 64  # the shortest matching run of a cached prompt that is moved, not read
_SERVERS: list[object] = []  # never collected: deleting a server can deadlock


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="aigents_lsp.providers.engine_child")
    parser.add_argument("--model", required=True, help="path of the GGUF file")
    parser.add_argument("--alias", required=True, help="model id shown by /v1/models")
    parser.add_argument("--ctx", type=int, default=4096, help="context length")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: all cores)")
    parser.add_argument("--embedding", action="store_true", help="also serve /v1/embeddings")
    return parser.parse_args(argv)


def _exit_when_stdin_closes() -> None:
    """The parent holds our stdin open; EOF means it is gone (even after SIGKILL)."""
    try:
        while sys.stdin.buffer.read(4096):
            pass
    except (OSError, ValueError):
        pass
    os._exit(0)


def _start_server(args: argparse.Namespace) -> str:
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = args.model
    params.model_alias = {args.alias}
    params.port = 0  # a free port, chosen by the OS
    params.n_ctx = args.ctx
    params.n_parallel = 1
    threads = args.threads or os.cpu_count() or 2
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.verbosity = 1
    params.endpoint_metrics = True
    # Gemma 3 uses sliding-window attention: without a full-size SWA cache llama.cpp can reuse
    # a cached prompt head only when the new prompt diverges within the last window (512
    # tokens), so moving the cursor up a little re-read the whole prompt. It costs little
    # memory for the small embedded models.
    params.swa_full = True
    # A prompt is read in steps of this many tokens, and a closed request stops between two:
    # with llama.cpp's 2,048 a cancelled 1,500-token prompt kept the CPU for seconds.
    params.n_batch = 256
    params.n_ubatch = 256
    # A completion window that moves down the file drops its first lines: the rest of the
    # cached prompt is then moved to the front (a KV shift) instead of being read again, for
    # any run of at least this many tokens that matches (llama.cpp `--cache-reuse`). Needs
    # the full-size SWA cache above.
    params.n_cache_reuse = CACHE_REUSE_TOKENS
    if args.embedding:
        params.embedding = True
        params.pooling_type = xllamacpp.llama_pooling_type.LLAMA_POOLING_TYPE_MEAN
    server = xllamacpp.Server(params)
    _SERVERS.append(server)
    return str(server.listening_address)


def _report(out: TextIO, line: str) -> None:
    out.write(line.replace("\n", " ") + "\n")
    out.flush()


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    # Ctrl-C in the editor's terminal reaches the whole process group: the parent decides.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()
    threading.Thread(target=_exit_when_stdin_closes, name="parent-watch", daemon=True).start()

    # Only our one line may reach the parent's pipe: native code writing to fd 1 goes to stderr.
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())

    try:
        url = _start_server(args)
    except ImportError as exc:
        _report(out, f"ERROR xllamacpp is not installed ({exc})")
        return 2
    except Exception as exc:  # llama.cpp reports a bad model or busy port as RuntimeError
        _report(out, f"ERROR {type(exc).__name__}: {exc}")
        os._exit(1)  # the half-built server must not be torn down by interpreter exit
    _report(out, f"LISTENING {url}")

    while os.getppid() == parent:
        time.sleep(PARENT_POLL_SECONDS)
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
