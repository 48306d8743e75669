"""Function URLs over real HTTP (httpx and curl): configuration, mapping, CORS, auth, limits."""

from __future__ import annotations

import base64
import datetime
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.e2e.harness import ServerProcess, create, zip_files

KEY, SECRET = "AKIDLAMBDALITE", "url-secret"


class LoopbackHttp:
    """httpx, connecting to 127.0.0.1 whatever the URL's host, which it still sends as Host.

    ``*.localhost`` names resolve to loopback in browsers, curl and systemd-resolved, but not
    through every resolver; the server routes on the Host header either way.
    """

    def request(self, method: str, url: str, **kw: Any) -> httpx.Response:
        parts = httpx.URL(url)
        headers = httpx.Headers(kw.pop("headers", None))
        headers["host"] = f"{parts.host}:{parts.port}" if parts.port else parts.host
        local = parts.copy_with(host="127.0.0.1")
        return httpx.request(method, local, headers=headers, timeout=kw.pop("timeout", 30), **kw)

    def get(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("GET", url, **kw)

    def post(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("POST", url, **kw)

    def put(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("PUT", url, **kw)

    def options(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("OPTIONS", url, **kw)


http = LoopbackHttp()


@pytest.fixture(scope="module")
def url_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path_factory.mktemp("urls"), credentials=f"{KEY}:{SECRET}").start()
    yield server
    assert server.stop() == 0


@pytest.fixture(scope="module")
def api(url_server: ServerProcess) -> Any:
    return url_server.client()


def public_url(api: Any, name: str, **extra: Any) -> str:
    create(api, name, fixture="web")
    url: str = api.create_function_url_config(FunctionName=name, AuthType="NONE", **extra)[
        "FunctionUrl"
    ]
    api.add_permission(
        FunctionName=name,
        StatementId="public",
        Action="lambda:InvokeFunctionUrl",
        Principal="*",
        FunctionUrlAuthType="NONE",
    )
    return url.rstrip("/")


def test_configuration_lifecycle(url_server: ServerProcess, api: Any, name: str) -> None:
    create(api, name, fixture="web")
    created = api.create_function_url_config(FunctionName=name, AuthType="NONE")
    url = created["FunctionUrl"]
    assert (
        url.startswith("http://") and f".lambda-url.us-east-1.localhost:{url_server.port}/" in url
    )
    assert len(url.split("//")[1].split(".")[0]) == 32
    assert created["FunctionArn"].endswith(f":function:{name}")
    assert created["InvokeMode"] == "BUFFERED" and "CreationTime" in created
    with pytest.raises(api.exceptions.ResourceConflictException):
        api.create_function_url_config(FunctionName=name, AuthType="NONE")
    updated = api.update_function_url_config(
        FunctionName=name, AuthType="AWS_IAM", Cors={"AllowOrigins": ["*"]}
    )
    assert updated["AuthType"] == "AWS_IAM" and updated["Cors"] == {"AllowOrigins": ["*"]}
    assert api.get_function_url_config(FunctionName=name)["FunctionUrl"] == url
    api.publish_version(FunctionName=name)
    api.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    aliased = api.create_function_url_config(FunctionName=name, Qualifier="live", AuthType="NONE")
    assert aliased["FunctionArn"].endswith(":live") and aliased["FunctionUrl"] != url
    assert len(api.list_function_url_configs(FunctionName=name)["FunctionUrlConfigs"]) == 2
    raw = url_server.client(parameter_validation=False)
    with pytest.raises(raw.exceptions.ClientError) as exc:
        raw.create_function_url_config(FunctionName=name, Qualifier="1", AuthType="NONE")
    assert exc.value.response["Error"]["Code"] == "ValidationException"
    api.delete_function_url_config(FunctionName=name)
    with pytest.raises(api.exceptions.ResourceNotFoundException):
        api.get_function_url_config(FunctionName=name)
    assert http.get(url).status_code == 403
    again = api.create_function_url_config(FunctionName=name, AuthType="NONE")["FunctionUrl"]
    assert again != url


def test_auth_none_needs_a_resource_policy(api: Any, name: str) -> None:
    create(api, name, fixture="web")
    url = api.create_function_url_config(FunctionName=name, AuthType="NONE")["FunctionUrl"]
    denied = http.get(url + "plain")
    assert denied.status_code == 403 and denied.json() == {"Message": "Forbidden"}
    api.add_permission(
        FunctionName=name,
        StatementId="url",
        Action="lambda:InvokeFunctionUrl",
        Principal="*",
        FunctionUrlAuthType="NONE",
    )
    assert http.get(url + "plain").json() == {"plain": True}
    assert http.get("http://" + "0" * 32 + url.split("//")[1][32:]).status_code == 403


def test_request_mapping(api: Any, name: str) -> None:
    url = public_url(api, name)
    response = http.post(
        url + "/echo?a=1&a=2&b=x%20y",
        content=b'{"k": "v"}',
        headers=[
            ("Content-Type", "application/json"),
            ("X-Multi", "one"),
            ("X-Multi", "two"),
            ("Cookie", "c1=v1; c2=v2"),
            ("User-Agent", "lambdalite-test"),
        ],
    )
    assert response.status_code == 200
    event = response.json()
    assert event["version"] == "2.0" and event["routeKey"] == "$default"
    assert event["rawPath"] == "/echo" and event["rawQueryString"] == "a=1&a=2&b=x%20y"
    assert event["queryStringParameters"] == {"a": "1,2", "b": "x y"}
    assert event["headers"]["x-multi"] == "one,two"
    assert "cookie" not in event["headers"] and event["cookies"] == ["c1=v1", "c2=v2"]
    assert event["body"] == '{"k": "v"}' and event["isBase64Encoded"] is False
    ctx = event["requestContext"]
    assert ctx["http"] == {
        "method": "POST",
        "path": "/echo",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
        "userAgent": "lambdalite-test",
    }
    assert ctx["apiId"] == url.split("//")[1][:32] and ctx["stage"] == "$default"
    assert ctx["requestId"] == response.headers["x-amzn-requestid"]
    assert isinstance(ctx["timeEpoch"], int) and "+0000" in ctx["time"]
    assert ctx["domainName"].startswith(ctx["apiId"] + ".lambda-url.")
    binary = http.post(
        url + "/echo",
        content=bytes(range(256)),
        headers={"Content-Type": "application/octet-stream"},
    ).json()
    assert binary["isBase64Encoded"] is True
    assert base64.b64decode(binary["body"]) == bytes(range(256))


def test_response_mapping(api: Any, name: str) -> None:
    url = public_url(api, name)
    plain = http.get(url + "/plain")
    assert plain.status_code == 200 and plain.headers["content-type"] == "application/json"
    assert plain.json() == {"plain": True}
    text = http.get(url + "/string")
    assert text.content == b'"Hello, world!"'
    binary = http.get(url + "/binary")
    assert binary.status_code == 201 and binary.content == bytes(range(256))
    assert binary.headers["x-custom"] == "7"
    assert binary.headers.get_list("set-cookie") == ["a=1; Path=/", "b=2"]
    for path in ("/fail", "/invalid"):
        failed = http.get(url + path)
        assert failed.status_code == 502 and failed.text == "Internal Server Error"
        assert "Traceback" not in failed.text and "URL handler failure" not in failed.text


def test_path_form_and_curl(url_server: ServerProcess, api: Any, name: str) -> None:
    url = public_url(api, name)
    url_id = url.split("//")[1][:32]
    by_path = httpx.get(f"{url_server.endpoint}/lambda-url/{url_id}/plain")
    assert by_path.json() == {"plain": True}
    done = subprocess.run(["curl", "-s", "-i", url + "/binary"], capture_output=True, timeout=30)
    head, _, body = done.stdout.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 201") and body == bytes(range(256))
    assert head.lower().count(b"set-cookie:") == 2


def test_cors(api: Any, name: str) -> None:
    cors = {
        "AllowOrigins": ["https://app.example"],
        "AllowMethods": ["GET", "POST"],
        "AllowHeaders": ["x-token"],
        "ExposeHeaders": ["x-custom"],
        "MaxAge": 300,
        "AllowCredentials": True,
    }
    url = public_url(api, name, Cors=cors)
    preflight = http.options(
        url + "/cors",
        headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://app.example"
    assert preflight.headers["access-control-allow-methods"] == "GET,POST"
    assert preflight.headers["access-control-allow-headers"] == "x-token"
    assert preflight.headers["access-control-max-age"] == "300"
    assert preflight.headers["access-control-allow-credentials"] == "true"
    simple = http.get(url + "/cors", headers={"Origin": "https://app.example"})
    assert simple.text == "cors"
    assert simple.headers["access-control-allow-origin"] == "https://app.example"
    assert simple.headers["access-control-expose-headers"] == "x-custom"
    other = http.get(url + "/cors", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def signed(
    url: str, secret: str = SECRET, when: datetime.datetime | None = None, body: bytes = b""
) -> httpx.Response:
    request = AWSRequest(
        method="POST", url=url, data=body, headers={"Content-Type": "application/json"}
    )
    auth = SigV4Auth(Credentials(KEY, secret), "lambda", "us-east-1")
    if when is not None:

        class Frozen(datetime.datetime):
            @classmethod
            def utcnow(cls) -> datetime.datetime:  # type: ignore[override]
                return when

            @classmethod
            def now(cls, tz: Any = None) -> datetime.datetime:  # type: ignore[override]
                return when if tz is None else when.replace(tzinfo=tz)

        original = datetime.datetime
        import botocore.auth

        botocore.auth.datetime.datetime = Frozen  # type: ignore[misc]
        try:
            auth.add_auth(request)
        finally:
            botocore.auth.datetime.datetime = original  # type: ignore[misc]
    else:
        auth.add_auth(request)
    return http.post(url, content=body, headers=dict(request.headers.items()))


def test_aws_iam_auth(api: Any, name: str) -> None:
    create(api, name, fixture="web")
    url = api.create_function_url_config(FunctionName=name, AuthType="AWS_IAM")["FunctionUrl"]
    good = signed(url + "echo", body=b'{"signed": 1}')
    assert good.status_code == 200, good.text
    iam = good.json()["requestContext"]["authorizer"]["iam"]
    assert iam["accessKey"] == KEY and iam["accountId"] == "000000000000"
    assert http.post(url + "echo").status_code == 403
    assert signed(url + "echo", secret="wrong").status_code == 403
    stale = datetime.datetime.utcnow() - datetime.timedelta(minutes=10)
    assert signed(url + "echo", when=stale).status_code == 403
    request = AWSRequest(method="POST", url=url + "echo", data=b"{}")
    SigV4Auth(Credentials(KEY, SECRET), "lambda", "us-east-1").add_auth(request)
    headers = dict(request.headers.items())
    assert http.post(url + "echo", content=b"{}", headers=headers).status_code == 200
    assert http.post(url + "echo", content=b"{}", headers=headers).status_code == 403  # replayed
    tampered = dict(headers)
    assert http.post(url + "echo", content=b'{"x": 1}', headers=tampered).status_code == 403


def test_limits_and_throttles(api: Any, name: str) -> None:
    url = public_url(api, name)
    too_big = http.post(url + "/echo", content=b"x" * (6 * 1024 * 1024 + 1))
    assert too_big.status_code == 413
    api.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    assert http.get(url + "/plain").status_code == 429
    api.delete_function_concurrency(FunctionName=name)
    assert http.get(url + "/plain").status_code == 200


FASTAPI_APP = """
from fastapi import FastAPI, Response
from mangum import Mangum

app = FastAPI()
items = {}


@app.get("/items/{item_id}")
def read_item(item_id: int, q: str | None = None):
    if item_id not in items:
        return Response(status_code=404, content="missing")
    return {"id": item_id, "name": items[item_id], "q": q}


@app.put("/items/{item_id}")
def put_item(item_id: int, body: dict):
    items[item_id] = body["name"]
    return {"stored": item_id}


@app.get("/health")
def health():
    return {"ok": True}


handler = Mangum(app, lifespan="off")
"""


@pytest.fixture(scope="module")
def fastapi_package(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    target = tmp_path_factory.mktemp("fastapi")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--target",
            str(target),
            "fastapi",
            "mangum",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        pytest.fail(f"could not install fastapi and mangum: {done.stderr[-2000:]}")
    files: dict[str, str | bytes] = {"main.py": FASTAPI_APP}
    for path in sorted(Path(target).rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and "bin" not in path.parts[:1]:
            files[str(path.relative_to(target))] = path.read_bytes()
    return zip_files(files)


def test_fastapi_through_mangum(api: Any, name: str, fastapi_package: bytes) -> None:
    create(api, name, Code={"ZipFile": fastapi_package}, Handler="main.handler", Timeout=30)
    url = api.create_function_url_config(FunctionName=name, AuthType="NONE")["FunctionUrl"].rstrip(
        "/"
    )
    api.add_permission(
        FunctionName=name,
        StatementId="public",
        Action="lambda:InvokeFunctionUrl",
        Principal="*",
        FunctionUrlAuthType="NONE",
    )
    assert http.get(url + "/health", timeout=60).json() == {"ok": True}
    assert http.get(url + "/items/1").status_code == 404
    stored = http.put(url + "/items/1", json={"name": "widget"})
    assert stored.status_code == 200 and stored.json() == {"stored": 1}
    got = http.get(url + "/items/1?q=find")
    assert got.json() == {"id": 1, "name": "widget", "q": "find"}
    invalid = http.get(url + "/items/not-a-number")
    assert invalid.status_code == 422
    assert http.get(url + "/nowhere").status_code == 404
