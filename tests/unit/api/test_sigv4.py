"""SigV4 verification against signatures made by botocore's own signer."""

from __future__ import annotations

import datetime
from urllib.parse import urlsplit

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from lambdalite.api.sigv4 import Credential, SignatureError, SigV4Verifier, parse_credentials


def sign(url: str, body: bytes, secret: str = "s3cret", region: str = "us-east-1") -> AWSRequest:
    request = AWSRequest(method="POST", url=url, data=body, headers={"X-Extra": "  a   b "})
    SigV4Auth(Credentials("AKID", secret), "lambda", region).add_auth(request)
    return request


def verify(verifier: SigV4Verifier, request: AWSRequest, body: bytes) -> object:
    parts = urlsplit(request.url)
    headers = {k.lower(): v for k, v in request.headers.items()}
    headers["host"] = parts.netloc  # sent by every HTTP client; botocore signs it from the URL
    return verifier.verify(request.method, parts.path, parts.query, headers, body)


@pytest.fixture
def verifier() -> SigV4Verifier:
    return SigV4Verifier({"AKID": Credential("AKID", "s3cret", "111122223333")}, "us-east-1")


def test_accepts_botocore_signatures(verifier: SigV4Verifier) -> None:
    url = "http://abc.lambda-url.us-east-1.localhost:4566/a%20b/c?z=1&a=2&a=1"
    request = sign(url, b'{"x": 1}')
    caller = verify(verifier, request, b'{"x": 1}')
    assert caller.account_id == "111122223333"  # type: ignore[attr-defined]


def test_rejections(verifier: SigV4Verifier) -> None:
    url = "http://h.localhost/p"
    with pytest.raises(SignatureError, match="does not match"):
        verify(verifier, sign(url, b"a", secret="other"), b"a")
    with pytest.raises(SignatureError, match=r"X-Amz-Content-Sha256|does not match"):
        verify(verifier, sign(url, b"a"), b"b")
    with pytest.raises(SignatureError, match="scope"):
        verify(verifier, sign(url, b"a", region="eu-west-1"), b"a")
    request = sign(url, b"a")
    verify(verifier, request, b"a")
    with pytest.raises(SignatureError, match="already used"):
        verify(verifier, request, b"a")
    late = SigV4Verifier(
        verifier.credentials, "us-east-1", clock=lambda: datetime.datetime.now().timestamp() + 600
    )
    with pytest.raises(SignatureError, match="expired"):
        verify(late, sign(url, b"a"), b"a")
    with pytest.raises(SignatureError, match="Authorization"):
        verifier.verify("GET", "/", "", {}, b"")


def test_parse_credentials() -> None:
    found = parse_credentials("A:s, B:t:999988887777", "000000000000")
    assert found["A"].account_id == "000000000000" and found["B"].secret_key == "t"
    with pytest.raises(ValueError):
        parse_credentials("broken", "000000000000")
