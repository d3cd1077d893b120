"""One error hierarchy for Stepwell, mapped to gRPC status codes in one place.

Services raise these from their service layer; servicers turn them into gRPC status
codes with :func:`grpc_code_for`; clients turn gRPC errors back into them with
:func:`from_rpc_error`. Messages are written for people: say what is wrong and,
where it helps, what to do.

This module does not import grpc at import time, so the SDK and the in-task runtime
can use the error classes without paying for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import grpc


class StepwellError(Exception):
    """Base class of every error Stepwell raises on purpose."""

    #: Name of the ``grpc.StatusCode`` member this error maps to.
    grpc_code_name: str = "INTERNAL"
    http_status: int = 500


class InvalidArgument(StepwellError):
    """The caller sent something malformed: a bad spec, an unknown or ill-typed parameter."""

    grpc_code_name = "INVALID_ARGUMENT"
    http_status = 400


class NotFound(StepwellError):
    """The named resource does not exist."""

    grpc_code_name = "NOT_FOUND"
    http_status = 404


class AlreadyExists(StepwellError):
    """A resource with that identity already exists."""

    grpc_code_name = "ALREADY_EXISTS"
    http_status = 409


class FailedPrecondition(StepwellError):
    """The request is valid but the resource is in the wrong state for it."""

    grpc_code_name = "FAILED_PRECONDITION"
    http_status = 400


class Unavailable(StepwellError):
    """A peer service could not be reached; retrying later may succeed."""

    grpc_code_name = "UNAVAILABLE"
    http_status = 503


_KNOWN: tuple[type[StepwellError], ...] = (
    InvalidArgument,
    NotFound,
    AlreadyExists,
    FailedPrecondition,
    Unavailable,
)


def grpc_code_for(error: BaseException) -> grpc.StatusCode:
    """The gRPC status code a servicer answers with for ``error``."""
    import grpc

    name = error.grpc_code_name if isinstance(error, StepwellError) else "INTERNAL"
    return grpc.StatusCode[name]


def from_grpc_code(code: Any, message: str) -> StepwellError:
    """The Stepwell error a client raises for a gRPC failure with status ``code``."""
    name = getattr(code, "name", str(code))
    for cls in _KNOWN:
        if cls.grpc_code_name == name:
            return cls(message)
    return StepwellError(message)


def from_rpc_error(error: Exception) -> StepwellError:
    """Converts a ``grpc.RpcError`` raised by a stub call into a Stepwell error."""
    code = error.code() if hasattr(error, "code") else None
    details = error.details() if hasattr(error, "details") else str(error)
    return from_grpc_code(code, details or str(code))
