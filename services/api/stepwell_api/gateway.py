"""A small generic REST gateway: KFP's v2beta1 routes, read from the protos.

Every RPC whose method carries a ``google.api.http`` annotation becomes an HTTP route;
nothing here names a route. A request is turned into the RPC's request message the
way grpc-gateway does it (the ``body`` field or ``*`` from the JSON body, path
variables, then query parameters onto same-named fields), the same servicer method
the gRPC server uses is called, and the reply is written as protobuf JSON with the
proto field names: snake_case keys, enum names, int64 as strings, RFC 3339 times,
empty fields omitted.

Errors use grpc-gateway's body ``{"code": <gRPC code>, "message": ..., "details": []}``
(plus ``"error"``, as KFP's server sends) and its HTTP status mapping.
"""

from __future__ import annotations

import json
import logging
import re
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import grpc
from google.api import annotations_pb2
from google.protobuf import descriptor, json_format, message_factory
from google.protobuf.message import Message
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

log = logging.getLogger(__name__)

#: grpc-gateway's runtime.HTTPStatusFromCode.
HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
}
_VARIABLE = re.compile(r"\{([a-zA-Z0-9_.]+)(?:=([^}]*))?\}")
_TRUE = {"true", "1", "t", "yes"}
_FALSE = {"false", "0", "f", "no", ""}


class GatewayAbort(Exception):
    """Raised by :meth:`GatewayContext.abort` (as grpc's own abort raises)."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def error_response(code: grpc.StatusCode, message: str) -> JSONResponse:
    """KFP's (grpc-gateway's) error body with the mapped HTTP status."""
    body = {"error": message, "code": code.value[0], "message": message, "details": []}
    return JSONResponse(body, status_code=HTTP_STATUS.get(code, 500))


class GatewayContext:
    """The bits of ``grpc.ServicerContext`` the servicers use, for calls made over HTTP."""

    def __init__(self, request: Request) -> None:
        self._headers = request.headers

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise GatewayAbort(code, details)

    def invocation_metadata(self) -> list[tuple[str, str]]:
        return [(k.lower(), v) for k, v in self._headers.items()]

    def is_active(self) -> bool:
        return True

    def time_remaining(self) -> float | None:
        return None

    def set_code(self, code: grpc.StatusCode) -> None:
        return None

    def set_details(self, details: str) -> None:
        return None


@dataclass
class Route:
    """One annotated RPC as an HTTP route."""

    verb: str
    template: str
    pattern: re.Pattern[str]
    variables: list[str]
    body: str
    request_class: type[Message]
    handler: Callable[[Any, Any], Message]
    name: str

    @property
    def literal_length(self) -> int:
        return len(_VARIABLE.sub("", self.template))


def _compile(template: str) -> tuple[re.Pattern[str], list[str]]:
    variables: list[str] = []
    parts: list[str] = []
    last = 0
    for match in _VARIABLE.finditer(template):
        parts.append(re.escape(template[last : match.start()]))
        variables.append(match.group(1))
        multi = match.group(2) == "**"
        parts.append(f"(?P<v{len(variables) - 1}>{'.+' if multi else '[^/]+'})")
        last = match.end()
    parts.append(re.escape(template[last:]))
    return re.compile("^" + "".join(parts) + "$"), variables


def routes_for(servicers: Iterable[tuple[descriptor.ServiceDescriptor, Any]]) -> list[Route]:
    """Routes for every annotated method of the services, most specific first."""
    routes: list[Route] = []
    for service, servicer in servicers:
        for method in service.methods:
            options = method.GetOptions()
            if not options.HasExtension(annotations_pb2.http):
                continue
            rule = options.Extensions[annotations_pb2.http]
            verb = rule.WhichOneof("pattern")
            if verb is None or verb == "custom":
                continue
            template = getattr(rule, verb)
            pattern, variables = _compile(template)
            routes.append(
                Route(
                    verb=verb.upper(),
                    template=template,
                    pattern=pattern,
                    variables=variables,
                    body=rule.body,
                    request_class=message_factory.GetMessageClass(method.input_type),
                    handler=getattr(servicer, method.name),
                    name=method.full_name,
                )
            )
    routes.sort(key=lambda r: (-r.literal_length, r.template))
    return routes


def _field_path(message: Message, path: str) -> tuple[Message, Any] | None:
    parts = path.split(".")
    for part in parts[:-1]:
        field = message.DESCRIPTOR.fields_by_name.get(part)
        if field is None or field.message_type is None or field.is_repeated:
            return None
        message = getattr(message, part)
    field = message.DESCRIPTOR.fields_by_name.get(parts[-1])
    return (message, field) if field is not None else None


def _scalar(field: Any, text: str) -> Any:
    kind = field.type
    if kind == field.TYPE_STRING:
        return text
    if kind == field.TYPE_BOOL:
        lowered = text.lower()
        if lowered in _TRUE or lowered in _FALSE:
            return lowered in _TRUE
        raise ValueError(f"{text!r} is not a boolean")
    if kind == field.TYPE_ENUM:
        enum = field.enum_type
        value = enum.values_by_name.get(text)
        if value is not None:
            return value.number
        if text.lstrip("-").isdigit() and int(text) in enum.values_by_number:
            return int(text)
        raise ValueError(f"{text!r} is not one of {[v.name for v in enum.values]}")
    if kind in (field.TYPE_DOUBLE, field.TYPE_FLOAT):
        return float(text)
    if kind == field.TYPE_BYTES:
        return text.encode()
    if field.message_type is not None:
        raise ValueError("is a message field; it cannot be set from the URL")
    return int(text)


def _set(message: Message, path: str, values: list[str], strict: bool) -> None:
    found = _field_path(message, path)
    if found is None:
        if strict:
            raise GatewayAbort(grpc.StatusCode.INVALID_ARGUMENT, f"unknown path field {path!r}")
        return  # grpc-gateway ignores query parameters that name no field
    target, field = found
    try:
        if field.is_repeated:
            getattr(target, field.name).extend(_scalar(field, v) for v in values)
        else:
            setattr(target, field.name, _scalar(field, values[-1]))
    except (ValueError, TypeError) as err:
        raise GatewayAbort(grpc.StatusCode.INVALID_ARGUMENT, f"parameter {path!r}: {err}") from None


class Gateway:
    """Dispatches HTTP requests to the servicers by their ``google.api.http`` routes."""

    def __init__(self, routes: list[Route], max_body_bytes: int) -> None:
        self.routes = routes
        self.max_body_bytes = max_body_bytes

    async def __call__(self, request: Request) -> JSONResponse:
        path = request.url.path
        matched = [(r, m) for r in self.routes if (m := r.pattern.match(path))]
        if not matched:
            return error_response(grpc.StatusCode.NOT_FOUND, f"no route for {path}")
        for route, match in matched:
            if route.verb == request.method:
                try:
                    return await self._call(route, match, request)
                except GatewayAbort as abort:
                    return error_response(abort.code, abort.message)
        allowed = sorted({r.verb for r, _ in matched})
        response = error_response(grpc.StatusCode.UNIMPLEMENTED, f"method {request.method} not allowed for {path}")
        response.status_code = 405
        response.headers["Allow"] = ", ".join(allowed)
        return response

    async def _call(self, route: Route, match: re.Match[str], request: Request) -> JSONResponse:
        message = route.request_class()
        covered: set[str] = set()
        if route.body:
            text = (await read_body(request, self.max_body_bytes)).decode("utf-8", errors="replace").strip() or "{}"
            target = message if route.body == "*" else getattr(message, route.body)
            try:
                if not isinstance(json.loads(text), dict):
                    raise json_format.ParseError("the body must be a JSON object")
                json_format.Parse(text, target)
            except (json_format.ParseError, json.JSONDecodeError, RecursionError) as err:
                raise GatewayAbort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid request body: {err}") from None
            covered.add(route.body)
        for index, variable in enumerate(route.variables):
            _set(message, variable, [urllib.parse.unquote(match.group(f"v{index}"))], strict=True)
            covered.add(variable)
        if route.body != "*":
            for key in request.query_params:
                if key not in covered and key.split(".")[0] != route.body:
                    _set(message, key, request.query_params.getlist(key), strict=False)
        reply = await run_in_threadpool(route.handler, message, GatewayContext(request))
        return JSONResponse(json_format.MessageToDict(reply, preserving_proto_field_name=True))


async def read_body(request: Request, limit: int) -> bytes:
    """The request body; a body over ``limit`` bytes is INVALID_ARGUMENT.

    An oversized body is read to its end and dropped (not kept in memory), so the
    client, still sending, gets the 400 rather than a reset connection.
    """
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
        elif chunks:
            chunks.clear()
    if size > limit:
        raise GatewayAbort(grpc.StatusCode.INVALID_ARGUMENT, f"request body is larger than the limit of {limit} bytes")
    return b"".join(chunks)
