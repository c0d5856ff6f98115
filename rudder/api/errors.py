"""Every error answers JSON `{error, detail}` with the right status."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError as DBAPIDataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from rudder.api.schemas import ErrorOut
from rudder.domain.errors import DomainError

log = logging.getLogger(__name__)

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "too_many_requests",
}


def error_body(code: str, detail: Any, **extra: Any) -> dict[str, Any]:
    return {"error": code, "detail": detail, **extra}


def _field_path(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


_SCHEMAS = "#/components/schemas/"


def _document_error_bodies(schema: dict[str, Any]) -> None:
    """Make the OpenAPI document tell the truth about the error bodies the handlers send.

    FastAPI documents 422 as its own ``HTTPValidationError``, but ``validation_error`` answers
    ``{error, detail, fields}``. And every ``/api`` route answers 401 without credentials (outside
    local mode) and, when it has an id in its path, 404 for an unknown id or another
    organization's (the no-existence-leak rule of ``require_org``).
    """
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    error_schema = ErrorOut.model_json_schema(ref_template=_SCHEMAS + "{model}")
    components.update(error_schema.pop("$defs", {}))
    components["ErrorOut"] = error_schema
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    content = {"application/json": {"schema": {"$ref": _SCHEMAS + "ErrorOut"}}}
    for path, operations in schema.get("paths", {}).items():
        if not path.startswith("/api/"):
            continue
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            wanted = {"401": "No valid session or API token"}
            if "{" in path:
                wanted["404"] = "Unknown id, or one of another organization"
            for status, description in wanted.items():
                responses.setdefault(status, {"description": description})
            for status, response in responses.items():
                response.setdefault("description", status)
                if status[0] in "45" and not response.get("content"):
                    response["content"] = content
            validation = responses.get("422")
            if validation is not None:
                validation["content"] = content


def install(app: FastAPI) -> None:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            _document_error_bodies(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.exception_handler(DomainError)
    async def domain_error(_: Request, exc: DomainError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.detail), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [
            {"field": _field_path(tuple(e.get("loc", ()))), "message": e.get("msg", "invalid")}
            for e in exc.errors()
        ]
        detail = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
        return JSONResponse(error_body("invalid", detail, fields=fields), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "error")
        return JSONResponse(
            error_body(code, exc.detail), status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(DBAPIDataError)
    async def unstorable_value(request: Request, exc: DBAPIDataError) -> JSONResponse:
        # The database refused a value that came from the request (a NUL in a path id, a number
        # past the column's range): the caller's mistake, not ours. The statement's parameters
        # are left out of the log line on purpose; they may hold what the caller sent in.
        log.warning(
            "%s %s: database refused a value: %s",
            request.method,
            request.url.path,
            type(exc.orig).__name__ if exc.orig is not None else "DataError",
        )
        return JSONResponse(
            error_body("invalid", "a value in this request cannot be stored or looked up"),
            status_code=422,
        )

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return JSONResponse(
            error_body("internal", "Rudder hit an unexpected error; it has been logged."),
            status_code=500,
        )
