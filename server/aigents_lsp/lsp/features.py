"""The one place every feature is registered: `create_server` builds the server and hands it to
each handler module's `register(server)`. Handler modules never import `lsp/server.py` at run
time, and `server.py` imports no handler module, so the layers of `lsp/` have no circle.

pygls injects the server into a feature handler by its first parameter's name, `ls`, so the
annotation `AigentsServer` may be a type-only import. A *command* handler's annotations are read
at run time (to convert its arguments): command handlers take no `ls` and use the server of the
`register(server)` closure instead."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aigents_lsp.lsp import (
    code_actions,
    commands,
    completion,
    downloads,
    lifecycle,
    models,
    nextedit,
    search,
)
from aigents_lsp.lsp.server import AigentsServer

if TYPE_CHECKING:
    from aigents_lsp.config import Settings

# Registration order is the order of the capabilities' handlers in pygls' tables.
FEATURES = (lifecycle, completion, commands, models, downloads, code_actions, search, nextedit)


def create_server(settings: Settings | None = None) -> AigentsServer:
    """Build the server with every feature that exists registered (nothing advertised that
    is not built)."""
    server = AigentsServer(settings)
    for feature in FEATURES:
        feature.register(server)
    return server
