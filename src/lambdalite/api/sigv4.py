"""Verifying AWS Signature Version 4 on incoming requests (function URLs with AWS_IAM).

The verifier rebuilds the canonical request from what arrived on the wire, using the header
list the client says it signed, and compares signatures in constant time. Besides a bad
signature it refuses unknown keys, a scope for another region or service, a timestamp more
than five minutes away, and (when asked to) a signature it has already accepted.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import quote

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW = 300.0
_AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+),\s*"
    r"SignedHeaders=(?P<signed>[^,\s]+),\s*Signature=(?P<signature>[0-9a-f]{64})$"
)


class SignatureError(Exception):
    """The request is not validly signed; the message says why (for logs, not callers)."""


@dataclass(frozen=True)
class Credential:
    access_key: str
    secret_key: str
    account_id: str


@dataclass(frozen=True)
class Caller:
    access_key: str
    account_id: str


def parse_credentials(text: str, default_account: str) -> dict[str, Credential]:
    """``AKID:SECRET[:ACCOUNT],...`` as given to ``--credentials``."""
    found: dict[str, Credential] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        fields = item.split(":")
        if len(fields) not in (2, 3) or not all(fields):
            raise ValueError(f"credentials entry {item!r} is not ACCESS_KEY:SECRET[:ACCOUNT]")
        account = fields[2] if len(fields) == 3 else default_account
        found[fields[0]] = Credential(fields[0], fields[1], account)
    return found


def _remove_dot_segments(path: str) -> str:
    out: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if out:
                out.pop()
        elif segment != ".":
            out.append(segment)
    joined = "/".join(out)
    if not joined.startswith("/"):
        joined = "/" + joined
    if path.endswith("/") and not joined.endswith("/"):
        joined += "/"
    return joined


def canonical_request(
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Mapping[str, str],
    signed: list[str],
    payload_hash: str,
) -> str:
    path = quote(_remove_dot_segments(raw_path or "/"), safe="/~")
    pairs = sorted(pair.partition("=")[::2] for pair in raw_query.split("&") if pair)
    query = "&".join(f"{k}={v}" for k, v in pairs)
    lines = "".join(f"{name}:{' '.join(headers.get(name, '').split())}\n" for name in signed)
    return "\n".join([method.upper(), path, query, lines, ";".join(signed), payload_hash])


def _key(secret: str, date: str, region: str, service: str) -> bytes:
    key = f"AWS4{secret}".encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


class SigV4Verifier:
    def __init__(
        self,
        credentials: Mapping[str, Credential],
        region: str,
        service: str = "lambda",
        *,
        reject_replays: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.credentials = credentials
        self.region = region
        self.service = service
        self.reject_replays = reject_replays
        self.clock = clock
        self._seen: dict[str, float] = {}

    def verify(
        self, method: str, raw_path: str, raw_query: str, headers: Mapping[str, str], body: bytes
    ) -> Caller:
        """``headers`` must be a lower-cased mapping of the request's headers."""
        auth = headers.get("authorization", "")
        m = _AUTH_RE.match(auth.strip())
        if not m:
            raise SignatureError("missing or malformed Authorization header")
        parts = m["credential"].split("/")
        if len(parts) != 5 or parts[4] != "aws4_request":
            raise SignatureError("malformed credential scope")
        access_key, date, region, service = parts[:4]
        credential = self.credentials.get(access_key)
        if credential is None:
            raise SignatureError(f"unknown access key {access_key}")
        if region != self.region or service != self.service:
            raise SignatureError(f"scope {region}/{service} is not {self.region}/{self.service}")
        amz_date = headers.get("x-amz-date", "")
        try:
            signed_at = calendar.timegm(time.strptime(amz_date, "%Y%m%dT%H%M%SZ"))
        except ValueError:
            raise SignatureError("missing or malformed X-Amz-Date") from None
        if not amz_date.startswith(date):
            raise SignatureError("credential date does not match X-Amz-Date")
        now = self.clock()
        if abs(now - signed_at) > MAX_SKEW:
            raise SignatureError("signature expired or not yet valid")
        signed = m["signed"].split(";")
        if "host" not in signed or signed != sorted(signed):
            raise SignatureError("SignedHeaders must be sorted and include host")
        payload_hash = headers.get("x-amz-content-sha256") or hashlib.sha256(body).hexdigest()
        if payload_hash != "UNSIGNED-PAYLOAD" and payload_hash != hashlib.sha256(body).hexdigest():
            raise SignatureError("body does not match X-Amz-Content-Sha256")
        canonical = canonical_request(method, raw_path, raw_query, headers, signed, payload_hash)
        scope = "/".join(parts[1:])
        to_sign = "\n".join(
            [ALGORITHM, amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
        )
        key = _key(credential.secret_key, date, region, service)
        expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, m["signature"]):
            raise SignatureError("signature does not match")
        if self.reject_replays:
            self._remember(m["signature"], now)
        return Caller(access_key, credential.account_id)

    def _remember(self, signature: str, now: float) -> None:
        # Entries are in acceptance order, so expired ones are all at the front.
        while self._seen:
            oldest, seen = next(iter(self._seen.items()))
            if now - seen <= 2 * MAX_SKEW:
                break
            del self._seen[oldest]
        if signature in self._seen:
            raise SignatureError("signature already used")
        self._seen[signature] = now
