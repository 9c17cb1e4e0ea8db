"""Long-running commands: tracked tasks, cancellation that reaches the backend, live progress.

pygls answers `$/cancelRequest` for a `workspace/executeCommand` at once but lets the command's
coroutine run on (the LLM keeps generating), and a command task cancelled any other way is
never answered. So commands run as tracked jobs: `$/cancelRequest`,
`window/workDoneProgress/cancel` and `aigents.cancel` all cancel the job's task (closing the
HTTP stream), and the job always ends with an answer: a result or a "cancelled" error.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcRequestCancelled
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.language_server import lsp_method

from aigents_lsp.lsp.progress import Progress
from aigents_lsp.providers.waiting import WAIT_POLICY, WAIT_TRACKER, WaitPolicy, WaitTracker

if TYPE_CHECKING:
    from aigents_lsp.lsp.server import AigentsServer

log = logging.getLogger(__name__)
T = TypeVar("T")
REPORT_EVERY_SECONDS = 0.15  # live text is sent at most this often
BUDGET_TICK_SECONDS = 0.25


class AigentsProtocol(LanguageServerProtocol):
    """pygls' protocol, plus: `$/cancelRequest` also cancels our tracked command jobs, and
    finished handlers are forgotten."""

    def _execute_handler(
        self,
        msg_id: Any,
        handler: Any,
        callback: Any,
        args: tuple[Any, ...] | None = None,
        kwargs: dict[str, Any] | None = None,
    ) -> None:
        # pygls files the future of every async or generator handler under its id, but only
        # removes those of requests: each didOpen/didChange/didClose, async notification and
        # command body stayed there for good (a leak per keystroke).
        super()._execute_handler(msg_id, handler, callback, args, kwargs)
        future = self._request_futures.get(msg_id)
        if future is not None:
            future.add_done_callback(lambda done: self._forget(msg_id, done))

    def _send_handler_result(self, future: Any, *, msg_id: Any) -> None:
        # A command the user cancelled ends with a "cancelled" error (run_job): it is the
        # answer, not a failure. pygls logged each one at ERROR with a traceback.
        if future.done() and not future.cancelled():
            error = future.exception()
            if isinstance(error, JsonRpcRequestCancelled):
                self._request_futures.pop(msg_id, None)
                log.info("request %s: %s", msg_id, error)
                self._send_response(msg_id, error=error.to_response_error())
                return
        super()._send_handler_result(future, msg_id=msg_id)

    def _forget(self, msg_id: Any, future: Any) -> None:
        if self._request_futures.get(msg_id) is future:
            del self._request_futures[msg_id]

    def _run_generator(
        self, future: Any, *, gen: Generator[Any, Any, Any], result_future: Any
    ) -> None:
        # A command body runs as a sub-handler of pygls' executeCommand generator. When
        # $/cancelRequest has cancelled (and answered) the request, pygls returns here without
        # reading the body's outcome: "Task exception was never retrieved" in the log.
        if result_future.cancelled() and future is not None:
            _outcome_after_cancel(future)
        super()._run_generator(future, gen=gen, result_future=result_future)

    @lsp_method(types.SHUTDOWN)
    def lsp_shutdown(self, *args: Any) -> Generator[Any, Any, None]:
        """pygls' shutdown, iterating over a copy: cancelling a request runs callbacks that
        remove it from the table (pygls' loop failed with "dictionary changed size" and the
        server never reached shutdown when a command was running)."""
        if (user_handler := self.fm.features.get(types.SHUTDOWN)) is not None:
            yield user_handler, args, None
        current_id = self.msg_id
        for msg_id, future in list(self._request_futures.items()):
            if msg_id != current_id and not future.done():
                future.cancel()
        self._shutdown = True
        return None

    def _handle_cancel_notification(self, msg_id: Any) -> None:
        if not isinstance(msg_id, str | int):  # an id no request can have (a list: a crash)
            log.warning("$/cancelRequest of an impossible id %r", msg_id)
            return
        if msg_id in self._request_futures:
            super()._handle_cancel_notification(msg_id)
        else:  # already answered: routine while typing (pygls warned for each one)
            log.debug("$/cancelRequest for %r, already answered", msg_id)
        server = self._server
        jobs: JobRegistry | None = getattr(server, "jobs", None)
        if jobs is not None:
            jobs.cancel_request(msg_id)


def _outcome_after_cancel(future: Any) -> None:
    """Read the outcome of a command whose request was already answered "cancelled": the
    job's own cancellation is expected; any other error is logged, not dropped."""
    if future.cancelled():
        return
    error = future.exception()
    if error is not None and not isinstance(error, JsonRpcRequestCancelled):
        log.error("a command failed after its request was cancelled", exc_info=error)


@dataclass(eq=False)
class Job:
    """One running command."""

    title: str
    request_id: Any
    task: asyncio.Task[Any]
    token: str | None = None
    started: float = field(default_factory=time.perf_counter)


class JobRegistry:
    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}

    def __len__(self) -> int:
        return len(self._jobs)

    def add(self, job: Job) -> str:
        key = uuid.uuid4().hex[:8]
        self._jobs[key] = job
        return key

    def remove(self, key: str) -> None:
        self._jobs.pop(key, None)

    def cancel_request(self, request_id: Any) -> bool:
        found = False
        for job in list(self._jobs.values()):
            if job.request_id is not None and job.request_id == request_id:
                job.task.cancel()
                found = True
        return found

    def cancel_all(self) -> int:
        count = 0
        for job in list(self._jobs.values()):
            if not job.task.done():
                job.task.cancel()
                count += 1
        return count

    def running(self) -> list[Job]:
        return list(self._jobs.values())


class LiveProgress(Progress):
    """`$/progress` for one job: cancellable, reporting the text so far and the speed.
    Silent when the client does not support server-initiated progress."""

    def __init__(self, ls: AigentsServer, title: str, job_task: asyncio.Task[Any]) -> None:
        super().__init__(ls, title, cancellable=True)
        self._task = job_task
        self._last_report = 0.0
        self._started = time.perf_counter()
        self.so_far = ""

    async def begin(self, message: str = "", percentage: int | None = None) -> bool:
        if not await super().begin(message, percentage):
            return False
        assert self.token is not None
        cancel = self._ls.work_done_progress.tokens.get(self.token)
        if cancel is not None:
            # window/workDoneProgress/cancel cancels this future: cancel the job with it.
            cancel.add_done_callback(lambda f: f.cancelled() and self._task.cancel())
        return True

    def text(self, so_far: str) -> None:
        """Report the answer so far (throttled), with the generation speed."""
        self.so_far = so_far  # kept for the error if the stream fails later
        now = time.perf_counter()
        if self.token is None or now - self._last_report < REPORT_EVERY_SECONDS:
            return
        self._last_report = now
        elapsed = max(now - self._started, 1e-3)
        tail = so_far[-200:].replace("\n", " ")
        self.report(f"{tail} ({len(so_far) / elapsed / 3.5:.0f} tok/s)")

    def note(self, message: str) -> None:
        self.report(message)


def _wait_policy(ls: AigentsServer, progress: LiveProgress) -> WaitPolicy:
    settings = ls.settings
    return WaitPolicy(
        first_token=settings.first_token_timeout,
        stall=settings.stall_timeout,
        load=settings.load_timeout,
        on_wait=progress.note,
    )


class _Budget:
    """`command_timeout` counts the time spent on the model only: while the model's answer
    is complete and the job waits for the editor (to apply an edit, show a document), the
    deadline moves on. The editor gets `command_timeout` of its own."""

    def __init__(self, timeout: float, tracker: WaitTracker, scope: asyncio.Timeout) -> None:
        self.timeout = timeout
        self.editor_seconds = 0.0
        self._tracker = tracker
        self._scope = scope
        self._handle: asyncio.TimerHandle | None = None
        self._tick()

    def waiting_for_editor(self) -> bool:
        return self._tracker.phase == "done" and self._tracker.active == 0

    def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        if self.waiting_for_editor() and self.editor_seconds < self.timeout:
            self.editor_seconds += BUDGET_TICK_SECONDS
            when = self._scope.when()
            if when is not None:
                self._scope.reschedule(when + BUDGET_TICK_SECONDS)
        self._handle = loop.call_later(BUDGET_TICK_SECONDS, self._tick)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()


def _failed(title: str, error: JsonRpcException, so_far: str) -> JsonRpcException:
    """The error, with what the model had already written (never lost) in its data."""
    if not so_far:
        return error
    data = error.data if isinstance(error.data, dict) else {}
    error.data = {**data, "partial": so_far}
    error.message = (
        f"{error.message} (the {len(so_far)} characters received before it are kept in the "
        "error's data.partial)"
    )
    return error


async def run_job(
    ls: AigentsServer,
    title: str,
    work: Callable[[LiveProgress], Awaitable[T]],
) -> T:
    """Run `work` as a tracked, cancellable job with live progress; always answer. `$/progress`
    says what is waited for (a model load, the first token, the editor) and for how long; the
    first-token, stall and load deadlines come from the settings (`WaitPolicy`)."""
    task = asyncio.current_task()
    assert task is not None
    job = Job(title, ls.protocol.msg_id, task)
    key = ls.jobs.add(job)
    progress = LiveProgress(ls, title, task)
    timeout = ls.settings.command_timeout
    tracker = WaitTracker()
    WAIT_TRACKER.set(tracker)  # this job's task and what it starts only
    WAIT_POLICY.set(_wait_policy(ls, progress))
    budget: _Budget | None = None
    try:
        await progress.begin()
        async with asyncio.timeout(timeout) as scope:
            budget = _Budget(timeout, tracker, scope)
            result = await work(progress)
        progress.end("done")
        return result
    except TimeoutError:
        progress.end("timed out")
        if budget is not None and budget.waiting_for_editor():
            message = (
                f"{title}: the model had answered, but the editor did not answer for "
                f"{budget.editor_seconds:.0f} s (applying the edit or showing the answer)"
            )
        else:
            message = (
                f"{title}: no complete answer after {timeout:.0f} s (setting command_timeout); "
                f"it was waiting for {tracker.describe()}"
            )
        raise _failed(title, JsonRpcException(message=message), progress.so_far) from None
    except asyncio.CancelledError:
        progress.end("cancelled")
        # An exception the client can be answered with (a bare CancelledError never is).
        raise JsonRpcRequestCancelled(f"{title}: cancelled") from None
    except JsonRpcException as error:
        progress.end("failed")
        raise _failed(title, error, progress.so_far) from None
    except BaseException:
        progress.end("failed")
        raise
    finally:
        if budget is not None:
            budget.stop()
        ls.jobs.remove(key)
