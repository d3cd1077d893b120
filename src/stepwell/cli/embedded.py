"""All three services in one process, on loopback: what ``stepwell run`` and ``stepwell server`` use.

The SDK never imports a service package by name: the services register themselves under
the ``stepwell.services`` entry-point group (see pyproject.toml), and this module finds
them there. Each entry point is a factory ``create(settings_overrides) -> app`` whose app
has ``start(port, ...)`` returning a server with ``.port`` and ``stop()``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from stepwell.server.process import settle_heap

log = logging.getLogger(__name__)


def _factory(name: str) -> Any:
    found = entry_points(group="stepwell.services", name=name)
    for entry in found:
        return entry.load()
    raise RuntimeError(
        f"the Stepwell {name} service is not installed (no 'stepwell.services' entry point {name!r}); "
        "reinstall stepwell"
    )


@dataclass
class EmbeddedStack:
    """The API, scheduler and metadata services in this process, sharing one home folder.

    Ports default to 0 (free ports); ``stepwell server`` passes the standard ones.
    ``overrides`` are settings every service gets (e.g. ``database_url``, ``artifact_root``).
    ``own_process``: the stack is what this process is for (``stepwell run``, ``stepwell
    server``): once started, its heap is moved out of the garbage collector's view
    (:func:`~stepwell.server.process.settle_heap`). Left False where the stack is a guest
    (a notebook, a test), whose later garbage the freeze would keep.
    """

    home: Path
    api_port: int = 0
    http_port: int | None = None
    scheduler_port: int = 0
    metadata_port: int = 0
    overrides: dict[str, Any] = field(default_factory=dict)
    own_process: bool = False
    _apps: list[Any] = field(default_factory=list, init=False)
    api_address: str = field(default="", init=False)
    http_address: str = field(default="", init=False)

    def start(self) -> EmbeddedStack:
        """Starts the three services and wires them to each other."""
        common = {"home": self.home, **self.overrides}
        try:
            metadata = _factory("metadata")(common)
            self._apps.append(metadata)
            metadata_address = f"127.0.0.1:{metadata.start(self.metadata_port).port}"

            scheduler = _factory("scheduler")({**common, "metadata_address": metadata_address})
            self._apps.append(scheduler)
            scheduler_address = f"127.0.0.1:{scheduler.start(self.scheduler_port).port}"

            api = _factory("api")({**common, "scheduler_address": scheduler_address, "metadata_address": metadata_address})
            self._apps.append(api)
            api_server = api.start(self.api_port, self.http_port)
            self.api_address = f"127.0.0.1:{api_server.port}"
            http_port = getattr(api, "http_port", None)
            if http_port:
                self.http_address = f"127.0.0.1:{http_port}"
            # The scheduler reports run state to the API service, whose port is known only now.
            scheduler.set_api_address(self.api_address)
        except BaseException:
            self.stop()
            raise
        if self.own_process:
            settle_heap()
        return self

    def stop(self) -> None:
        """Stops the services, newest first."""
        while self._apps:
            app = self._apps.pop()
            try:
                app.stop()
            except Exception:
                log.exception("stopping %s failed", type(app).__name__)

    def __enter__(self) -> EmbeddedStack:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
