"""The Python bootstrap's invoke loop, run under every installed runtime."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from lambdalite.runtimes import RuntimeCommand, bootstrap_path

from .peer import NBSP, Event, run_bootstrap, write_code

CONTEXT_ECHO = """
    import os

    def handler(event, context):
        return {
            "event": event,
            "aws_request_id": context.aws_request_id,
            "invoked_function_arn": context.invoked_function_arn,
            "function_name": context.function_name,
            "function_version": context.function_version,
            "memory_limit_in_mb": context.memory_limit_in_mb,
            "log_group_name": context.log_group_name,
            "log_stream_name": context.log_stream_name,
            "tenant_id": context.tenant_id,
            "remaining": context.get_remaining_time_in_millis(),
            "client_context": None if context.client_context is None else {
                "custom": context.client_context.custom,
                "env": context.client_context.env,
                "installation_id": context.client_context.client.installation_id,
                "app_title": context.client_context.client.app_title,
            },
            "identity": [
                context.identity.cognito_identity_id,
                context.identity.cognito_identity_pool_id,
            ],
            "trace": os.environ.get("_X_AMZN_TRACE_ID"),
        }
"""


def test_success_returns_context_fields(runtime: RuntimeCommand, tmp_path: Path) -> None:
    write_code(tmp_path, {"app.py": CONTEXT_ECHO})
    event = Event(body=b'{"key": "value", "n": [1, 2]}')
    run = run_bootstrap(runtime, tmp_path, "app.handler", [event])

    assert run.returncode == 0, run.stderr
    posted = run.peer.responses[event.request_id]
    assert posted.headers["Content-Type"] == "application/json"
    result = posted.json()
    assert result["event"] == {"key": "value", "n": [1, 2]}
    assert result["aws_request_id"] == event.request_id
    assert result["invoked_function_arn"] == "arn:aws:lambda:us-east-1:000000000000:function:fn"
    assert result["function_name"] == "fn"
    assert result["function_version"] == "$LATEST"
    assert result["memory_limit_in_mb"] == "256"
    assert result["log_group_name"] == "/aws/lambda/fn"
    assert result["log_stream_name"].startswith("2024/01/01/[$LATEST]")
    assert result["tenant_id"] is None
    assert 0 < result["remaining"] <= 60_000
    assert result["client_context"] is None
    assert result["identity"] == [None, None]
    assert result["trace"] is None


def test_remaining_time_comes_from_the_deadline(runtime: RuntimeCommand, tmp_path: Path) -> None:
    write_code(tmp_path, {"app.py": CONTEXT_ECHO})
    passed = Event(deadline_ms=1_000)
    run = run_bootstrap(runtime, tmp_path, "app.handler", [passed])
    assert run.response(passed)["remaining"] == 0


def test_client_context_identity_and_trace_header(runtime: RuntimeCommand, tmp_path: Path) -> None:
    write_code(tmp_path, {"app.py": CONTEXT_ECHO})
    client_context = {
        "client": {"installation_id": "inst-1", "app_title": "Demo"},
        "custom": {"k": "v"},
        "env": {"platform": "linux"},
    }
    identity = {"cognitoIdentityId": "id-1", "cognitoIdentityPoolId": "pool-1"}
    trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    rich = Event(
        headers={
            "Lambda-Runtime-Client-Context": json.dumps(client_context),
            "Lambda-Runtime-Cognito-Identity": json.dumps(identity),
            "Lambda-Runtime-Trace-Id": trace,
            "Lambda-Runtime-Aws-Tenant-Id": "tenant-7",
        }
    )
    plain = Event()
    run = run_bootstrap(runtime, tmp_path, "app.handler", [rich, plain])

    first = run.response(rich)
    assert first["client_context"] == {
        "custom": {"k": "v"},
        "env": {"platform": "linux"},
        "installation_id": "inst-1",
        "app_title": "Demo",
    }
    assert first["identity"] == ["id-1", "pool-1"]
    assert first["trace"] == trace
    assert first["tenant_id"] == "tenant-7"
    second = run.response(plain)
    assert second["client_context"] is None
    assert second["identity"] == [None, None]
    assert second["trace"] is None, "the trace id of a previous invocation must not leak"


def test_handler_exception_is_reported_like_aws(runtime: RuntimeCommand, tmp_path: Path) -> None:
    write_code(
        tmp_path,
        {
            "app.py": """
                def check(value):
                    raise ValueError("boom " + value)

                def handler(event, context):
                    check("now")
            """
        },
    )
    event = Event()
    run = run_bootstrap(runtime, tmp_path, "app.handler", [event])

    posted = run.error(event)
    assert "Lambda-Runtime-Function-Error-Type" not in posted.headers
    cause = json.loads(posted.headers["Lambda-Runtime-Function-XRay-Error-Cause"])
    assert cause["exceptions"][0]["type"] == "ValueError"
    app = str(tmp_path / "app.py")
    assert posted.json() == {
        "errorMessage": "boom now",
        "errorType": "ValueError",
        "requestId": event.request_id,
        "stackTrace": [
            f'  File "{app}", line 6, in handler\n    check("now")\n',
            f'  File "{app}", line 3, in check\n    raise ValueError("boom " + value)\n',
        ],
    }
    assert run.stdout_lines() == [
        "\r".join(
            [
                "[ERROR] ValueError: boom now",
                "Traceback (most recent call last):",
                f'{NBSP * 2}File "{app}", line 6, in handler',
                f'{NBSP * 4}check("now")',
                f'{NBSP * 2}File "{app}", line 3, in check',
                f'{NBSP * 4}raise ValueError("boom " + value)',
            ]
        )
    ]
    assert run.returncode == 0, "a handler exception keeps the environment alive"


def test_marshal_error(runtime: RuntimeCommand, tmp_path: Path) -> None:
    write_code(tmp_path, {"app.py": "def handler(event, context):\n    return {1, 2}\n"})
    event = Event()
    run = run_bootstrap(runtime, tmp_path, "app.handler", [event])
    assert run.error(event).json() == {
        "errorMessage": "Unable to marshal response: Object of type set is not JSON serializable",
        "errorType": "Runtime.MarshalError",
        "requestId": event.request_id,
        "stackTrace": [],
    }
    assert run.stdout_lines() == [
        "[ERROR] Runtime.MarshalError: Unable to marshal response: "
        "Object of type set is not JSON serializable\rTraceback (most recent call last):"
    ]


def test_unmarshal_error(runtime: RuntimeCommand, tmp_path: Path) -> None:
    write_code(tmp_path, {"app.py": "def handler(event, context):\n    return 1\n"})
    event = Event(body=b"not json")
    run = run_bootstrap(runtime, tmp_path, "app.handler", [event])
    assert run.error(event).json() == {
        "errorMessage": "Unable to unmarshal input: Expecting value: line 1 column 1 (char 0)",
        "errorType": "Runtime.UnmarshalError",
        "requestId": event.request_id,
        "stackTrace": [],
    }


def test_result_encodings(runtime: RuntimeCommand, tmp_path: Path) -> None:
    write_code(
        tmp_path,
        {
            "app.py": """
                from decimal import Decimal

                def handler(event, context):
                    if event == "bytes":
                        return b"\\x00raw"
                    if event == "decimal":
                        return {"price": Decimal("12.3400"), "big": Decimal("1e+40")}
                    return None
            """
        },
    )
    raw, decimal, none = Event(body=b'"bytes"'), Event(body=b'"decimal"'), Event()
    run = run_bootstrap(runtime, tmp_path, "app.handler", [raw, decimal, none])
    posted = run.peer.responses[raw.request_id]
    assert (posted.body, posted.headers["Content-Type"]) == (b"\x00raw", "application/unknown")
    assert run.peer.responses[decimal.request_id].body == b'{"price": 12.3400, "big": 1E+40}'
    assert run.peer.responses[none.request_id].body == b"null"


def test_non_ascii_output_follows_the_execution_env(
    runtime: RuntimeCommand, tmp_path: Path
) -> None:
    write_code(tmp_path, {"app.py": "def handler(event, context):\n    return 'caf\\u00e9'\n"})
    old, new = Event(), Event()
    run_old = run_bootstrap(
        runtime, tmp_path, "app.handler", [old], {"AWS_EXECUTION_ENV": "AWS_Lambda_python3.11"}
    )
    run_new = run_bootstrap(
        runtime, tmp_path, "app.handler", [new], {"AWS_EXECUTION_ENV": "AWS_Lambda_python3.12"}
    )
    assert run_old.peer.responses[old.request_id].body == b'"caf\\u00e9"'
    assert run_new.peer.responses[new.request_id].body == '"café"'.encode()


def test_globals_persist_across_invocations(runtime: RuntimeCommand, tmp_path: Path) -> None:
    write_code(
        tmp_path,
        {
            "app.py": """
                import os
                calls = 0

                def handler(event, context):
                    global calls
                    calls += 1
                    return [calls, os.getpid()]
            """
        },
    )
    events = [Event(), Event(), Event()]
    run = run_bootstrap(runtime, tmp_path, "app.handler", events)
    results = [run.response(e) for e in events]
    assert [r[0] for r in results] == [1, 2, 3]
    assert len({r[1] for r in results}) == 1


def test_reconnects_when_the_server_drops_the_connection(
    runtime: RuntimeCommand, tmp_path: Path
) -> None:
    write_code(tmp_path, {"app.py": "def handler(event, context):\n    return event\n"})
    events = [Event(body=b"1"), Event(body=b"2")]
    run = run_bootstrap(runtime, tmp_path, "app.handler", events, close_after_next=True)
    assert [run.response(e) for e in events] == [1, 2]


def test_exits_with_an_error_when_next_fails(runtime: RuntimeCommand, tmp_path: Path) -> None:
    write_code(tmp_path, {"app.py": "def handler(event, context):\n    return event\n"})
    served = Event(body=b"1")
    run = run_bootstrap(runtime, tmp_path, "app.handler", [served, Event(action="fail")])
    assert run.response(served) == 1
    assert run.returncode == 1
    assert "HTTP 500" in run.stderr

    closed = run_bootstrap(runtime, tmp_path, "app.handler", [Event(action="close")])
    assert closed.returncode == 1
    assert "closed" in closed.stderr


def test_nested_handler_path(runtime: RuntimeCommand, tmp_path: Path) -> None:
    write_code(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/sub/__init__.py": "",
            "pkg/sub/mod.py": "def handler(event, context):\n    return __name__\n",
        },
    )
    event = Event()
    run = run_bootstrap(runtime, tmp_path, "pkg/sub.mod.handler", [event])
    assert run.response(event) == "pkg.sub.mod"


def test_task_root_shadows_other_paths(runtime: RuntimeCommand, tmp_path: Path) -> None:
    write_code(
        tmp_path,
        {
            "bootstrap.py": "NAME = 'user bootstrap'\n",
            "app.py": """
                import sys
                import bootstrap

                def handler(event, context):
                    return [bootstrap.NAME, sys.path[:3]]
            """,
        },
    )
    event = Event()
    run = run_bootstrap(runtime, tmp_path, "app.handler", [event])
    name, front = run.response(event)
    version = runtime.version
    assert name == "user bootstrap"
    assert front == [
        str(tmp_path),
        f"/opt/python/lib/python{version}/site-packages",
        "/opt/python",
    ]


def test_bootstrap_runs_standalone(runtime: RuntimeCommand, tmp_path: Path) -> None:
    write_code(
        tmp_path,
        {"app.py": "def handler(event, context):\n    raise OSError('disk')\n"},
    )
    direct = dataclasses.replace(runtime, argv=[runtime.interpreter, str(bootstrap_path())])
    event = Event()
    run = run_bootstrap(direct, tmp_path, "app.handler", [event])
    assert run.error(event).json()["stackTrace"] == [
        f"  File \"{tmp_path / 'app.py'}\", line 2, in handler\n    raise OSError('disk')\n"
    ]
    assert run.returncode == 0


def test_function_files_cannot_shadow_runtime_modules(
    runtime: RuntimeCommand, tmp_path: Path
) -> None:
    broken = "raise ImportError('shadowed module imported')\n"
    write_code(
        tmp_path,
        {
            "importlib.py": broken,
            "traceback.py": broken,
            "select.py": broken,
            "app.py": "def handler(event, context):\n    raise ValueError(event)\n",
        },
    )
    for argv in (runtime.argv, [runtime.interpreter, str(bootstrap_path())]):
        event = Event(body=b'"x"')
        run = run_bootstrap(
            dataclasses.replace(runtime, argv=argv), tmp_path, "app.handler", [event]
        )
        assert run.error(event).json()["errorType"] == "ValueError", run.stdout


def test_chunked_events_and_bad_context_headers(runtime: RuntimeCommand, tmp_path: Path) -> None:
    write_code(tmp_path, {"app.py": "def handler(event, context):\n    return event\n"})
    chunked = Event(body=b'{"items": [1, 2, 3], "name": "chunked body"}', chunked=True)
    bad_context = Event(headers={"Lambda-Runtime-Client-Context": "{not json"})
    run = run_bootstrap(runtime, tmp_path, "app.handler", [chunked, bad_context])
    assert run.response(chunked) == {"items": [1, 2, 3], "name": "chunked body"}
    document = run.error(bad_context).json()
    assert document["errorType"] == "Runtime.LambdaContextUnmarshalError"
    assert document["errorMessage"].startswith("Unable to parse Client Context JSON: ")
    assert run.returncode == 0
