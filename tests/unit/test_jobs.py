"""A command whose request `$/cancelRequest` already answered: its outcome is read, never
dropped ("Task exception was never retrieved"), and a real error in it is logged."""

from __future__ import annotations

import asyncio

import pytest
from pygls.exceptions import JsonRpcRequestCancelled

from aigents_lsp.lsp.jobs import _outcome_after_cancel


async def _finished(error: BaseException | None) -> asyncio.Future[None]:
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
    return future


async def test_the_jobs_own_cancellation_is_read_quietly(caplog: pytest.LogCaptureFixture) -> None:
    for outcome in (JsonRpcRequestCancelled("aigents: thinking: cancelled"), None):
        _outcome_after_cancel(await _finished(outcome))
    cancelled = asyncio.get_running_loop().create_future()
    cancelled.cancel()
    _outcome_after_cancel(cancelled)
    assert caplog.records == []


async def test_a_real_error_after_the_cancel_is_logged_with_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    _outcome_after_cancel(await _finished(RuntimeError("the answer file is unwritable")))
    [record] = caplog.records
    assert record.levelname == "ERROR" and record.exc_info is not None
    assert "unwritable" in str(record.exc_info[1])
