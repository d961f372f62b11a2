"""ETags and If-Match: optimistic concurrency for updates.

Every entity's ETag is its revision ("3"); an update or delete that carries
`If-Match: "3"` succeeds only while the entity is still at revision 3, otherwise 412. No
If-Match (or `*`) updates unconditionally.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends, Header, Response

from tollway.admin.errors import ApiError

_TAG = re.compile(r'\s*(?:W/)?"(\d{1,10})"\s*')


def etag(revision: int) -> str:
    return f'"{revision}"'


def tag(response: Response, revision: int) -> None:
    response.headers["ETag"] = etag(revision)


def _expected(
    if_match: Annotated[
        str | None,
        Header(
            max_length=40,
            pattern=r'^\s*(\*|(W/)?"[0-9]{1,10}")\s*$',
            description='the ETag read earlier ("3"): the change fails with 412 if the '
            "entity has changed since",
        ),
    ] = None,
) -> int | None:
    if if_match is None or if_match.strip() == "*":
        return None
    found = _TAG.fullmatch(if_match)
    if found is None:  # the header's pattern lets nothing else through
        raise ApiError(422, 'If-Match must be an ETag given by this API, such as "3"')
    return int(found.group(1))


IfMatch = Annotated[int | None, Depends(_expected)]
