"""The baseline for benchmarks/startup.py: a bare pygls server with one feature."""

from lsprotocol import types
from pygls.lsp.server import LanguageServer

server = LanguageServer("bare", "0")


@server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
def inline(ls: LanguageServer, params: types.InlineCompletionParams) -> None:
    return None


if __name__ == "__main__":
    server.start_io()
