"""AWS Signature Version 4 for requests to AWS services (Bedrock), from AWS's specification.

Tested against AWS's published signature test vectors and against botocore's signer. The
canonical URI of non-S3 services encodes each path segment twice (the request path is already
encoded once), as the specification requires.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

ALGORITHM = "AWS4-HMAC-SHA256"


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def amz_date(now: float | None = None) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))


@dataclass(frozen=True, slots=True)
class SigV4Signer:
    access_key: str
    secret_key: str = field(repr=False)
    region: str
    service: str
    session_token: str | None = field(default=None, repr=False)

    def signing_key(self, day: str) -> bytes:
        key = _hmac(("AWS4" + self.secret_key).encode(), day)
        key = _hmac(key, self.region)
        key = _hmac(key, self.service)
        return _hmac(key, "aws4_request")

    def canonical_request(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes
    ) -> tuple[str, str]:
        """The canonical request and its signed-headers list."""
        canonical_path = "/".join(quote(segment, safe="-_.~") for segment in path.split("/"))
        # The query arrives encoded as sent; canonical form encodes the raw values once.
        pairs = sorted(
            (quote(unquote(k), safe="-_.~"), quote(unquote(v), safe="-_.~"))
            for k, _, v in (part.partition("=") for part in query.split("&") if part)
        )
        canonical_query = "&".join(f"{k}={v}" for k, v in pairs)
        names = sorted(name.lower() for name in headers)
        lowered = {name.lower(): " ".join(value.strip().split()) for name, value in headers.items()}
        canonical_headers = "".join(f"{name}:{lowered[name]}\n" for name in names)
        signed = ";".join(names)
        return (
            "\n".join(
                [
                    method,
                    canonical_path or "/",
                    canonical_query,
                    canonical_headers,
                    signed,
                    hashlib.sha256(body).hexdigest(),
                ]
            ),
            signed,
        )

    def authorization(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes
    ) -> str:
        """The Authorization header; `headers` must hold x-amz-date and every header to sign
        (host included)."""
        stamp = next(v for k, v in headers.items() if k.lower() == "x-amz-date")
        day = stamp[:8]
        scope = f"{day}/{self.region}/{self.service}/aws4_request"
        canonical, signed = self.canonical_request(method, path, query, headers, body)
        to_sign = "\n".join(
            [ALGORITHM, stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()]
        )
        signature = hmac.new(self.signing_key(day), to_sign.encode(), hashlib.sha256).hexdigest()
        return (
            f"{ALGORITHM} Credential={self.access_key}/{scope}, SignedHeaders={signed}, "
            f"Signature={signature}"
        )

    def headers_for(
        self, method: str, host: str, path_and_query: str, body: bytes, now: float | None = None
    ) -> tuple[tuple[bytes, bytes], ...]:
        """The headers that sign one request: x-amz-date, the session token if any, and
        Authorization (over host, x-amz-date, x-amz-security-token)."""
        path, _, query = path_and_query.partition("?")
        signed = {"host": host, "x-amz-date": amz_date(now)}
        if self.session_token:
            signed["x-amz-security-token"] = self.session_token
        auth = self.authorization(method, path, query, signed, body)
        out = [(b"x-amz-date", signed["x-amz-date"].encode())]
        if self.session_token:
            out.append((b"x-amz-security-token", self.session_token.encode()))
        out.append((b"authorization", auth.encode()))
        return tuple(out)
