"""What every handler does at its edge: check the params pygls handed it, read a command's one
argument, and fail a valid request that cannot be carried out (`RequestFailed`)."""

from __future__ import annotations

from typing import Any, TypeVar

from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams

P = TypeVar("P")


class RequestFailed(JsonRpcException):
    """LSP `RequestFailed` (-32803): the request was valid but could not be carried out."""

    CODE = -32803


def expect(params: object, kind: type[P]) -> P:
    """pygls hands a handler the raw dict when params do not match the method's type:
    answer that with InvalidParams instead of failing inside the handler."""
    if not isinstance(params, kind):
        raise JsonRpcInvalidParams(message=f"invalid params: expected {kind.__name__}")
    return params


def command_argument(args: tuple[Any, ...]) -> dict[str, Any]:
    """Commands take one object argument; editors sometimes wrap it in a list."""
    if len(args) == 1 and isinstance(args[0], dict):
        return args[0]
    if not args:
        return {}
    raise JsonRpcInvalidParams(message="expected one object argument, e.g. {uri, range}")
