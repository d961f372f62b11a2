"""One JSON error shape for every failure, with field-level messages.

    {"error": {"status": 422, "code": "invalid", "message": "...",
               "fields": [{"field": "name", "message": "..."}]}}

Store errors map to statuses here: NotFound 404, Conflict 409, PreconditionFailed 412,
Invalid 422, an unreachable store 503. Anything unexpected is logged and answered 500 in the
same shape (a bug: bad input must never get there).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from tollway.admin.schemas import ErrorBody, ErrorDetail, FieldError
from tollway.store.errors import (
    Conflict,
    Invalid,
    NotFound,
    PreconditionFailed,
    SchemaMismatch,
    SecretKeyError,
    StoreUnavailable,
)
from tollway.store.validation import field_path, message

log = logging.getLogger("tollway.admin")

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    412: "precondition_failed",
    415: "unsupported_media_type",
    422: "invalid",
    500: "internal",
    503: "unavailable",
}


class ApiError(Exception):
    """An answer other than success, raised from a handler."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        fields: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.fields = fields or []
        self.headers = headers


def unauthorized(message: str = "a valid bearer token is required") -> ApiError:
    return ApiError(401, message, headers={"WWW-Authenticate": 'Bearer realm="tollway-admin"'})


def forbidden(message: str) -> ApiError:
    return ApiError(403, message)


def error_response(
    status: int,
    message: str,
    fields: list[FieldError] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = ErrorBody(
        error=ErrorDetail(
            status=status, code=_CODES.get(status, "error"), message=message, fields=fields or []
        )
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=headers)


def _validation_fields(errors: Any) -> list[FieldError]:
    out = []
    for error in errors:
        loc = tuple(error.get("loc", ()))
        if loc and loc[0] == "body":
            loc = loc[1:]
        field = field_path(loc)
        text = message(error["type"], str(error["msg"]))
        if field == "header.if-match":
            text = 'must be an ETag given by this API, such as "3" (or *)'
        out.append(FieldError(field=field, message=text))
    return out


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api(_request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.fields, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = _validation_fields(exc.errors())
        return error_response(422, "the request is not valid", fields)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        text = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 404 and text == "Not Found":
            text = "no such resource"
        return error_response(exc.status_code, text, headers=exc.headers)

    @app.exception_handler(NotFound)
    async def _not_found(_request: Request, exc: NotFound) -> JSONResponse:
        return error_response(404, f"{exc.entity} {exc.key} not found")

    @app.exception_handler(Conflict)
    async def _conflict(_request: Request, exc: Conflict) -> JSONResponse:
        fields = [FieldError(field=exc.field, message=str(exc))] if exc.field else []
        return error_response(409, str(exc), fields)

    @app.exception_handler(PreconditionFailed)
    async def _stale(_request: Request, exc: PreconditionFailed) -> JSONResponse:
        return error_response(412, str(exc))

    @app.exception_handler(Invalid)
    async def _invalid(_request: Request, exc: Invalid) -> JSONResponse:
        fields = [FieldError(field=p.field, message=p.message) for p in exc.problems]
        return error_response(422, "the request is not valid", fields)

    @app.exception_handler(DataError)
    async def _data(_request: Request, exc: DataError) -> JSONResponse:
        # A value the database refuses (one the validation should have caught).
        log.warning("the store refused a value: %s", str(exc.orig).strip()[:200])
        return error_response(422, "a value in the request cannot be stored")

    @app.exception_handler(SecretKeyError)
    async def _secret(_request: Request, exc: SecretKeyError) -> JSONResponse:
        return error_response(503, str(exc))

    @app.exception_handler(StoreUnavailable)
    async def _unavailable(_request: Request, exc: StoreUnavailable) -> JSONResponse:
        log.error("store unavailable: %s", exc)
        return error_response(503, "the store is unavailable", headers={"Retry-After": "5"})

    @app.exception_handler(SchemaMismatch)
    async def _schema(_request: Request, exc: SchemaMismatch) -> JSONResponse:
        return error_response(503, str(exc))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("admin API error on %s %s", request.method, request.url.path)
        return error_response(500, "internal error (logged)")
