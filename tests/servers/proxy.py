"""A TCP proxy on 127.0.0.1 that can go silent: the connections it holds stay open but carry
nothing more, as when a NAT or firewall drops state. New connections pass as usual."""

from __future__ import annotations

import asyncio
import contextlib
import threading


class SilentProxy:
    host = "127.0.0.1"

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._generation = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self.connections = 0

    @classmethod
    def start(cls, target_host: str, target_port: int) -> SilentProxy:
        proxy = cls(target_host, target_port)
        proxy._thread.start()
        proxy._ready.wait(10)
        return proxy

    def silence(self) -> None:
        """From now on, every connection already open forwards nothing, in either direction."""
        self._generation += 1

    def stop(self) -> None:
        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, self.host, 0)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        generation = self._generation
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        await asyncio.gather(
            self._pump(reader, up_writer, generation), self._pump(up_reader, writer, generation)
        )

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, generation: int
    ) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                if generation == self._generation:
                    writer.write(data)
                    await writer.drain()
        if generation == self._generation:
            writer.close()
