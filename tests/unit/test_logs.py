"""The editor log handler: records from worker threads reach the editor from the event loop."""

from __future__ import annotations

import asyncio
import logging
import threading

from aigents_lsp.lsp.logs import EditorLogHandler


async def test_a_record_from_a_worker_thread_is_sent_from_the_event_loop() -> None:
    sent: list[tuple[int, str, int]] = []
    arrived = asyncio.Event()

    def send(level: int, message: str) -> None:
        sent.append((level, message, threading.get_ident()))
        if len(sent) == 2:
            arrived.set()

    handler = EditorLogHandler(send)  # the loop is learnt from the first record logged on it
    logger = logging.getLogger("aigents_lsp.test_logs")
    logger.addHandler(handler)
    try:
        logger.error("on the loop")
        await asyncio.to_thread(logger.warning, "index: %s unreadable", "a.py")
        await arrived.wait()
    finally:
        logger.removeHandler(handler)
    loop_thread = threading.get_ident()
    assert sent == [
        (logging.ERROR, "on the loop", loop_thread),
        (logging.WARNING, "index: a.py unreadable", loop_thread),  # not the worker's thread
    ]


async def test_a_bound_loop_gets_records_from_threads_before_any_of_its_own() -> None:
    sent: list[int] = []
    arrived = asyncio.Event()

    def send(level: int, message: str) -> None:
        sent.append(threading.get_ident())
        arrived.set()

    handler = EditorLogHandler(send)
    handler.bind(asyncio.get_running_loop())
    logger = logging.getLogger("aigents_lsp.test_logs")
    logger.addHandler(handler)
    try:
        await asyncio.to_thread(logger.warning, "from a worker")
        await arrived.wait()
    finally:
        logger.removeHandler(handler)
    assert sent == [threading.get_ident()]


async def test_pygls_records_and_records_logged_while_sending_are_dropped() -> None:
    sent: list[str] = []
    logger = logging.getLogger("aigents_lsp.test_logs")

    def send(level: int, message: str) -> None:
        sent.append(message)
        logger.warning("sending failed")  # would loop through the editor

    handler = EditorLogHandler(send)
    logger.addHandler(handler)
    logging.getLogger("pygls.protocol").addHandler(handler)
    try:
        logging.getLogger("pygls.protocol").warning("a pygls record")
        logger.warning("ours")
    finally:
        logger.removeHandler(handler)
        logging.getLogger("pygls.protocol").removeHandler(handler)
    assert sent == ["ours"]
