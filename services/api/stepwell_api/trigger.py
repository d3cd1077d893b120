"""The background loop that fires recurring runs when they are due."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from stepwell_api.recurring import RecurringRunService

log = logging.getLogger(__name__)


class TriggerLoop:
    """Calls :meth:`RecurringRunService.fire_due` every ``interval`` seconds in a thread;
    ``on_fired`` (e.g. waking the handover loop) runs after a pass that created runs."""

    def __init__(
        self, service: RecurringRunService, interval: float = 1.0, on_fired: Callable[[], None] | None = None
    ) -> None:
        self.service = service
        self.interval = interval
        self.on_fired = on_fired
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="stepwell-api-trigger", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self.service.fire_due() and self.on_fired is not None:
                    self.on_fired()
            except Exception:
                log.exception("trigger pass failed")
            self._stop.wait(self.interval)
