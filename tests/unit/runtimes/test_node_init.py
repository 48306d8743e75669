"""The Node.js runtime client's INIT phase: finding the handler, and the errors it reports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from lambdalite.runtimes import RuntimeCommand

from .peer import Event, Run, run_bootstrap, write_code

ECHO_MODULE = "module.exports.handler = async (event) => ({ from: 'cjs', event });\n"


def init_failure(node: RuntimeCommand, root: Path, handler: str) -> tuple[Run, dict[str, Any]]:
    run = run_bootstrap(node, root, handler, [Event()])
    assert run.returncode == 129, (run.stdout, run.stderr)
    assert run.peer.next_calls == [], "a failed INIT must not ask for events"
    assert len(run.peer.init_errors) == 1
    posted = run.peer.init_errors[0]
    document: dict[str, Any] = posted.json()
    assert set(document) == {"errorType", "errorMessage", "trace"}
    assert posted.headers["Lambda-Runtime-Function-Error-Type"] == document["errorType"]
    return run, document


@pytest.mark.parametrize(
    ("files", "handler", "expected"),
    [
        ({"index.js": ECHO_MODULE}, "index.handler", "cjs"),
        ({"app.cjs": ECHO_MODULE.replace("cjs'", "dot-cjs'")}, "app.handler", "dot-cjs"),
        (
            {"index.mjs": "export const handler = async (event) => ({ from: 'mjs', event });\n"},
            "index.handler",
            "mjs",
        ),
        (
            {
                "package.json": '{"type": "module"}',
                "lib/main.js": "export async function run(event) { return { from: 'esm-js', event }; }\n",
            },
            "lib/main.run",
            "esm-js",
        ),
        (
            {
                "src/api/routes.js": "exports.v1 = { get: async (event) => ({ from: 'nested', event }) };\n"
            },
            "src/api/routes.v1.get",
            "nested",
        ),
        (
            {"main.mjs": "export default async (event) => ({ from: 'default', event });\n"},
            "main.default",
            "default",
        ),
        (
            {"node_modules/pkg/index.js": ECHO_MODULE.replace("cjs'", "package'")},
            "pkg.handler",
            "package",
        ),
    ],
    ids=["commonjs", "cjs", "mjs", "type-module", "nested-path", "esm-default", "node-modules"],
)
def test_handler_resolution(
    node: RuntimeCommand, tmp_path: Path, files: dict[str, str], handler: str, expected: str
) -> None:
    write_code(tmp_path, files)
    event = Event(body=b'{"n": 1}')
    run = run_bootstrap(node, tmp_path, handler, [event])
    assert run.response(event) == {"from": expected, "event": {"n": 1}}


def test_init_code_runs_once_and_state_persists(node: RuntimeCommand, tmp_path: Path) -> None:
    write_code(
        tmp_path,
        {
            "index.mjs": """
                const started = await Promise.resolve(Date.now());
                let count = 0;
                export const handler = async () => ({ count: ++count, started });
            """
        },
    )
    events = [Event(), Event(), Event()]
    run = run_bootstrap(node, tmp_path, "index.handler", events)
    counts = [run.response(e)["count"] for e in events]
    assert counts == [1, 2, 3]
    assert len({run.response(e)["started"] for e in events}) == 1


def test_missing_module_is_an_import_error(node: RuntimeCommand, tmp_path: Path) -> None:
    run, document = init_failure(node, tmp_path, "index.handler")
    assert document["errorType"] == "Runtime.ImportModuleError"
    assert document["errorMessage"].startswith("Error: Cannot find module 'index'")
    assert document["trace"][0].startswith("Runtime.ImportModuleError: Error: Cannot find module")
    line = run.stdout_lines()[-1]
    assert re.fullmatch(r"\S+Z\tundefined\tERROR\tUncaught Exception \t\{.*\}", line)
    logged = json.loads(line.split("\t", 4)[4])
    assert logged["errorType"] == "Runtime.ImportModuleError"
    assert logged["stack"][0] == document["trace"][0]


def test_missing_dependency_is_an_import_error(node: RuntimeCommand, tmp_path: Path) -> None:
    write_code(tmp_path, {"index.js": "require('not-installed-anywhere');\n"})
    _, document = init_failure(node, tmp_path, "index.handler")
    assert document["errorType"] == "Runtime.ImportModuleError"
    assert "Cannot find module 'not-installed-anywhere'" in document["errorMessage"]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"index.js": "exports.other = () => 1;\n"}, "index.nope is undefined or not exported"),
        ({"index.js": "exports.nope = 42;\n"}, "index.nope is not a function"),
        ({"index.mjs": "export const other = 1;\n"}, "index.nope is undefined or not exported"),
    ],
)
def test_missing_handler(
    node: RuntimeCommand, tmp_path: Path, files: dict[str, str], message: str
) -> None:
    write_code(tmp_path, files)
    _, document = init_failure(node, tmp_path, "index.nope")
    assert document["errorType"] == "Runtime.HandlerNotFound"
    assert document["errorMessage"] == message


@pytest.mark.parametrize(
    ("name", "source"),
    [("index.js", "exports.handler = async () => {\n"), ("index.mjs", "export const = 1;\n")],
)
def test_syntax_errors(node: RuntimeCommand, tmp_path: Path, name: str, source: str) -> None:
    write_code(tmp_path, {name: source})
    _, document = init_failure(node, tmp_path, "index.handler")
    assert document["errorType"] == "Runtime.UserCodeSyntaxError"
    assert document["errorMessage"].startswith("SyntaxError: ")
    if name.endswith(".js"):
        # CommonJS syntax errors carry their location; Node's ES module ones do not.
        assert any(name in line for line in document["trace"]), "the trace names the file"


@pytest.mark.parametrize(
    ("handler", "message"),
    [
        ("index", "Bad handler"),
        ("", "Bad handler"),
        ("../outside.handler", "'../outside.handler' is not a valid handler name"),
    ],
)
def test_malformed_handler_names(
    node: RuntimeCommand, tmp_path: Path, handler: str, message: str
) -> None:
    write_code(tmp_path, {"index.js": ECHO_MODULE})
    _, document = init_failure(node, tmp_path, handler)
    assert document["errorType"] == "Runtime.MalformedHandlerName"
    assert document["errorMessage"].startswith(message)


def test_exception_in_module_code_keeps_its_type(node: RuntimeCommand, tmp_path: Path) -> None:
    write_code(
        tmp_path,
        {
            "index.js": "class ConfigError extends Error {}\nConfigError.prototype.name = 'ConfigError';\n"
            "throw new ConfigError('missing TABLE_NAME');\n"
        },
    )
    _, document = init_failure(node, tmp_path, "index.handler")
    assert document["errorType"] == "ConfigError"
    assert document["errorMessage"] == "missing TABLE_NAME"
    assert document["trace"][0] == "ConfigError: missing TABLE_NAME"


def test_rejection_during_init_is_an_init_error(node: RuntimeCommand, tmp_path: Path) -> None:
    write_code(
        tmp_path,
        {"index.js": "Promise.reject(new Error('late'));\nexports.handler = async () => 1;\n"},
    )
    run = run_bootstrap(node, tmp_path, "index.handler", [Event()])
    assert run.returncode == 128
    document = run.peer.init_errors[0].json()
    assert document["errorType"] == "Runtime.UnhandledPromiseRejection"
    assert document["errorMessage"] == "Error: late"


def test_streaming_marker_must_be_response(node: RuntimeCommand, tmp_path: Path) -> None:
    write_code(
        tmp_path,
        {
            "index.js": "exports.handler = async () => 1;\n"
            "exports.handler[Symbol.for('aws.lambda.runtime.handler.streaming')] = 'request';\n"
        },
    )
    _, document = init_failure(node, tmp_path, "index.handler")
    assert document["errorType"] == "Runtime.MalformedStreamingHandler"


def test_module_paths_reach_the_task_root_and_layers(node: RuntimeCommand, tmp_path: Path) -> None:
    write_code(
        tmp_path,
        {
            "shared.js": "module.exports = 'from the task root';\n",
            "fn/index.js": """
                exports.handler = async () => ({
                    shared: require('shared'),
                    nodePath: process.env.NODE_PATH.split(':'),
                    gc: (globalThis.gc(), typeof gc),
                    awslambda: typeof awslambda.streamifyResponse,
                });
            """,
        },
    )
    event = Event()
    run = run_bootstrap(node, tmp_path, "fn/index.handler", [event])
    result = run.response(event)
    assert result["shared"] == "from the task root"
    major = node.version
    assert result["nodePath"][:2] == [
        f"/opt/nodejs/node{major}/node_modules",
        "/opt/nodejs/node_modules",
    ]
    assert result["nodePath"][-1] == str(tmp_path)
    assert result["gc"] == "function", "global.gc exists, as with AWS's --expose-gc"
    assert result["awslambda"] == "function"


def test_node_path_set_by_the_platform_is_kept(node: RuntimeCommand, tmp_path: Path) -> None:
    write_code(tmp_path, {"index.js": "exports.handler = async () => process.env.NODE_PATH;\n"})
    event = Event()
    run = run_bootstrap(node, tmp_path, "index.handler", [event], {"NODE_PATH": "/custom/path"})
    assert run.response(event) == "/custom/path"


def test_no_global_awslambda_when_disabled(node: RuntimeCommand, tmp_path: Path) -> None:
    write_code(
        tmp_path, {"index.js": "exports.handler = async () => typeof globalThis.awslambda;\n"}
    )
    event = Event()
    env = {"AWS_LAMBDA_NODEJS_NO_GLOBAL_AWSLAMBDA": "true"}
    assert (
        run_bootstrap(node, tmp_path, "index.handler", [event], env).response(event) == "undefined"
    )
