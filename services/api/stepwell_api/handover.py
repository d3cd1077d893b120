"""The background loop that hands PENDING runs to the scheduler until it takes them."""

from __future__ import annotations

import logging
import threading

from stepwell_api.service import RunService

log = logging.getLogger(__name__)


class HandoverLoop:
    """Runs :meth:`RunService.hand_over_pending` every ``interval`` seconds in a thread.

    While the scheduler is unreachable the pause doubles up to ``max_backoff``; it drops
    back to ``interval`` as soon as a pass gets through. :meth:`wake` starts a pass now.
    """

    def __init__(self, service: RunService, interval: float = 1.0, max_backoff: float = 10.0) -> None:
        self.service = service
        self.interval = interval
        self.max_backoff = max(max_backoff, interval)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Starts the loop's thread (a first pass runs at once)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="stepwell-api-handover", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Starts the next pass without waiting for the pause to end."""
        self._wake.set()

    def stop(self, timeout: float = 15.0) -> None:
        """Stops the loop and waits for a pass in progress to finish."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        pause = self.interval
        while not self._stop.is_set():
            try:
                result = self.service.hand_over_pending()
                pause = min(pause * 2, self.max_backoff) if result.unreachable else self.interval
            except Exception:
                log.exception("handover pass failed")
                pause = min(pause * 2, self.max_backoff)
            self._wake.wait(pause)
            self._wake.clear()
