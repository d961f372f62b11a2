"""Wire shapes shared by every resource: strict request bodies, the page of a list, the one
error shape, and the bounded scalar types that keep bad input a 4xx."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Generic, TypeVar

from fastapi import Path, Query
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

T = TypeVar("T")

MAX_ID = 2**31 - 1
# Times a key or token may expire at: far enough, and safe to convert between zones.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


class Body(BaseModel):
    """A request body: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")


class Out(BaseModel):
    """A response body."""

    model_config = ConfigDict(extra="forbid")


class FieldError(Out):
    field: str = Field(description="dotted path of the field ('' for the request as a whole)")
    message: str


class ErrorDetail(Out):
    status: int
    code: str = Field(description="machine-readable: invalid, unauthorized, forbidden, ...")
    message: str
    fields: list[FieldError] = Field(default_factory=list)


class ErrorBody(Out):
    """Every error answer has this shape."""

    error: ErrorDetail


class Page(Out, Generic[T]):
    items: list[T]
    next_after: int | None = Field(
        description="pass as `after` for the next page; null on the last page"
    )


def _plausible(value: datetime) -> datetime:
    if not EARLIEST <= value <= LATEST:
        raise ValueError("must be between the years 2000 and 9000")
    return value.astimezone(UTC)


Moment = Annotated[AwareDatetime, AfterValidator(_plausible)]
Id = Annotated[int, Path(ge=1, le=MAX_ID)]
Number = Annotated[int, Path(ge=1, le=MAX_ID)]
IdFilter = Annotated[int | None, Query(ge=1, le=MAX_ID)]
BodyId = Annotated[int, Field(ge=1, le=MAX_ID)]
Limit = Annotated[int, Query(ge=1, le=500, description="items per page")]
After = Annotated[
    int | None, Query(ge=0, le=MAX_ID, description="the `next_after` of the previous page")
]
Text = Annotated[str, Field(max_length=2000)]
Label = Annotated[str, Field(min_length=1, max_length=100)]
