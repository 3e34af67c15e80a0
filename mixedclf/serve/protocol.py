"""How uvicorn serves the app: its options from ServeSettings, and its h11 protocol with a deadline on the
request head.

uvicorn bounds only the idle time between requests (`timeout_keep_alive`); a connection that sends nothing,
or sends its request line and headers a byte at a time, is held for ever (a head sent at 20 bytes a second
has no deadline at all). `HeadDeadlineH11` closes any connection whose request head
(request line + headers) is not complete `header_timeout_s` after its first byte (or after the connection
opened), with a bare `408 Request Timeout`. The body has its own deadline in `guards.BodyGuard`.

This subclasses uvicorn's h11 protocol, so the server always speaks h11 (also where httptools is installed);
tests/test_serve_network.py checks the behaviour against the installed uvicorn.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.h11_impl import H11Protocol

from mixedclf.serve.settings import ServeSettings

_HEAD_TIMEOUT_TEXT = b"the request head did not arrive in time (--header-timeout)\n"
_HEAD_TIMEOUT_408 = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
    b"content-length: %d\r\n\r\n%s" % (len(_HEAD_TIMEOUT_TEXT), _HEAD_TIMEOUT_TEXT)
)


class HeadDeadlineH11(H11Protocol):
    header_timeout_s: float = 10.0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        if self._head_timer is None and (self.cycle is None or self.cycle.response_complete):
            self._arm_head_timer()  # the first bytes of the next request's head
        super().data_received(data)

    def handle_events(self) -> None:
        cycle = self.cycle
        super().handle_events()
        if self.cycle is not cycle:  # a whole head arrived and a request started
            self._cancel_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.transport.write(_HEAD_TIMEOUT_408)
            self.transport.close()


def uvicorn_options(settings: ServeSettings) -> dict:
    """Keyword arguments for uvicorn.run / uvicorn.Config that carry the server's settings."""
    protocol = type("HeadDeadlineH11", (HeadDeadlineH11,), {"header_timeout_s": settings.header_timeout})
    return {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "access_log": settings.access_log,
        "timeout_graceful_shutdown": settings.graceful_timeout_s,
        "timeout_keep_alive": settings.keep_alive_timeout,
        "http": protocol,
    }
