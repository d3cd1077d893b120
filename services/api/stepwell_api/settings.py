"""Settings of the API service, read from ``STEPWELL_*`` environment variables."""

from __future__ import annotations

from stepwell.server import ServiceSettings


class ApiSettings(ServiceSettings):
    """What the API service reads at start-up (on top of :class:`ServiceSettings`).

    Environment variables: ``STEPWELL_PORT``, ``STEPWELL_HTTP_PORT``, ``STEPWELL_NAMESPACE``,
    ``STEPWELL_HANDOVER_INTERVAL``, ``STEPWELL_HANDOVER_MAX_BACKOFF``,
    ``STEPWELL_SCHEDULER_TIMEOUT``, ``STEPWELL_COMMIT_SHA``, ``STEPWELL_TRIGGER_INTERVAL``,
    ``STEPWELL_MAX_UPLOAD_BYTES``, ``STEPWELL_MAX_REQUEST_BYTES`` and the shared ones
    (``STEPWELL_DATABASE_URL``, ``STEPWELL_SCHEDULER_ADDRESS``, ``STEPWELL_HOME`` ...).
    """

    #: gRPC port of the ``stepwell.v1`` API services.
    port: int = 8887
    #: HTTP port of the REST surface (KFP v2beta1) and the UI.
    http_port: int = 8888
    #: Host both servers bind to.
    host: str = "127.0.0.1"
    #: Namespace a run gets when the request names none (single-user mode: "").
    namespace: str = ""
    #: Seconds between passes of the loop that hands PENDING runs to the scheduler.
    handover_interval: float = 1.0
    #: Longest pause between passes while the scheduler keeps failing.
    handover_max_backoff: float = 10.0
    #: Deadline in seconds of each call to the scheduler.
    scheduler_timeout: float = 10.0
    #: Reported by the healthz endpoint.
    commit_sha: str = "unknown"
    #: Seconds between passes of the loop that fires due recurring runs.
    trigger_interval: float = 1.0
    #: Largest pipeline package an upload may send (bytes).
    max_upload_bytes: int = 32 * 1024 * 1024
    #: Largest JSON request body the REST gateway reads (bytes).
    max_request_bytes: int = 64 * 1024 * 1024
