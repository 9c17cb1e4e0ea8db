"""A recording HTTP proxy in front of the real embedded engine, for the real-model benchmarks.

The server under test talks to it as to any OpenAI-compatible backend (LM Studio's shape);
the proxy forwards every request to the llama.cpp child unchanged, streams the answer back,
and keeps what the benchmark needs to know: each completion request's body, and the
`timings` llama.cpp put in the answer (`prompt_n` tokens read, `cache_n` tokens reused).
A client that closes the connection closes the upstream stream too, so the engine stops
generating as it would for a direct client.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class Exchange:
    path: str
    body: dict[str, Any]
    timings: dict[str, Any] | None = None
    closed_early: bool = True  # the client left before the answer ended
    # time.perf_counter(): the request arrived, the first answer byte, the last one
    arrived: float = field(default_factory=time.perf_counter)
    first_byte: float | None = None
    ended: float | None = None


@dataclass
class EngineProxy:
    upstream: str  # http://127.0.0.1:PORT (the engine's root, without /v1)
    exchanges: list[Exchange] = field(default_factory=list)
    _server: asyncio.Server | None = None
    _client: httpx.AsyncClient | None = None

    async def start(self) -> str:
        # No keep-alive: llama.cpp closes idle connections, and a reused one fails at once.
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(120.0, connect=5.0),
            limits=httpx.Limits(max_keepalive_connections=0),
        )
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
        if self._client is not None:
            await self._client.aclose()

    async def metrics(self) -> dict[str, float]:
        """llama.cpp's `/metrics` counters (`llamacpp:` prefix dropped)."""
        assert self._client is not None
        response = await self._client.get(f"{self.upstream}/metrics")
        values: dict[str, float] = {}
        for line in response.text.splitlines():
            if line.startswith("llamacpp:"):
                name, _, value = line.partition(" ")
                values[name.removeprefix("llamacpp:")] = float(value)
        return values

    async def tokens(self, text: str) -> int:
        assert self._client is not None
        response = await self._client.post(f"{self.upstream}/tokenize", json={"content": text})
        return len(response.json()["tokens"])

    async def replay(self, body: dict[str, Any]) -> tuple[float, dict[str, Any] | None]:
        """Send `body` straight to the engine, read to the end: (seconds, timings)."""
        assert self._client is not None
        loop = asyncio.get_running_loop()
        started = loop.time()
        timings = None
        async with self._client.stream(
            "POST", f"{self.upstream}/v1/completions", json={**body, "stream": True}
        ) as response:
            async for line in response.aiter_lines():
                if line.startswith("data: {"):
                    chunk = json.loads(line[6:])
                    timings = chunk.get("timings", timings)
        return loop.time() - started, timings

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._one(reader, writer)  # one request per connection (connection: close)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        raw = await reader.readexactly(length) if length else b""
        exchange = None
        if path.endswith("/completions") and raw:
            exchange = Exchange(path, json.loads(raw))
            self.exchanges.append(exchange)
        assert self._client is not None
        request = self._client.build_request(
            method,
            self.upstream + path,
            content=raw,
            headers={"content-type": headers.get("content-type", "application/json")},
        )
        response = await self._client.send(request, stream=True)
        relay = asyncio.ensure_future(self._relay(response, writer, exchange))
        left = asyncio.ensure_future(reader.read(1))  # b"": the client closed the connection
        try:
            await asyncio.wait({relay, left}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (relay, left):
                task.cancel()
            await asyncio.gather(relay, left, return_exceptions=True)
            await response.aclose()

    async def _relay(
        self, response: httpx.Response, writer: asyncio.StreamWriter, exchange: Exchange | None
    ) -> None:
        kind = response.headers.get("content-type", "application/json")
        writer.write(
            f"HTTP/1.1 {response.status_code} OK\r\ncontent-type: {kind}\r\n"
            "transfer-encoding: chunked\r\nconnection: close\r\n\r\n".encode()
        )
        buffer = b""
        async for data in response.aiter_raw():
            if exchange is not None:
                exchange.first_byte = exchange.first_byte or time.perf_counter()
                buffer += data
                *complete, buffer = buffer.split(b"\n")
                for line in complete:
                    if line.startswith(b"data: {"):
                        chunk = json.loads(line[6:])
                        exchange.timings = chunk.get("timings", exchange.timings)
            writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            await writer.drain()  # raises when the client left: the upstream closes
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        if exchange is not None:
            exchange.closed_early = False
            exchange.ended = time.perf_counter()
