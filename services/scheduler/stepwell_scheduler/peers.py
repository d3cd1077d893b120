"""Lazily opened gRPC channels to peer services.

The embedded stack starts servers on port 0 and fills in ``settings.api_address`` /
``settings.metadata_address`` afterwards, so a channel is opened on first use from the
address current at that moment (and re-opened if the address changes).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import grpc

from stepwell.server import make_channel


class LazyStub:
    """A gRPC stub created on first use for the address ``address()`` returns."""

    def __init__(self, address: Callable[[], str], stub_class: Callable[[grpc.Channel], Any]) -> None:
        self._address = address
        self._stub_class = stub_class
        self._lock = threading.Lock()
        self._current = ""
        self._channel: grpc.Channel | None = None
        self._stub: Any = None

    def get(self) -> Any:
        """The stub for the current address."""
        address = self._address()
        with self._lock:
            if self._stub is None or address != self._current:
                if self._channel is not None:
                    self._channel.close()
                self._channel = make_channel(address)
                self._stub = self._stub_class(self._channel)
                self._current = address
            return self._stub

    def close(self) -> None:
        """Closes the channel, if one was opened."""
        with self._lock:
            if self._channel is not None:
                self._channel.close()
            self._channel, self._stub, self._current = None, None, ""
