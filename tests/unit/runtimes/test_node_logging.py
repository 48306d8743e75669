"""Function output as the platform sees it on stdout: console methods, text and JSON formats."""

from __future__ import annotations

import json
import re
from pathlib import Path

from lambdalite.runtimes import RuntimeCommand

from .peer import Event, Run, run_bootstrap, write_code

TIMESTAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"

LOGGING_APP = """
    console.log('during init');
    exports.handler = async (event) => {
        console.log('plain %s and %d', 'text', 42);
        console.info({ nested: { a: [1, 2] } });
        console.warn('two\\nlines');
        console.error(new Error('logged error'));
        console.debug('debug detail');
        console.trace('trace detail');
        console.fatal('fatal detail');
        process.stdout.write('raw stdout\\n');
        return 'done';
    };
"""


def run_logging(
    node: RuntimeCommand, root: Path, env: dict[str, str] | None = None
) -> tuple[Run, Event]:
    write_code(root, {"index.js": LOGGING_APP})
    event = Event()
    run = run_bootstrap(node, root, "index.handler", [event], env)
    assert run.response(event) == "done"
    return run, event


def test_text_format(node: RuntimeCommand, tmp_path: Path) -> None:
    run, event = run_logging(node, tmp_path)
    lines = run.stdout_lines()
    rid = event.request_id
    assert re.fullmatch(rf"{TIMESTAMP}\tundefined\tINFO\tduring init", lines[0])
    fields = [line.split("\t", 3) for line in lines[1:]]
    assert all(re.fullmatch(TIMESTAMP, f[0]) for f in fields[:-1])
    assert [f[1:3] for f in fields[:-1]] == [
        [rid, "INFO"], [rid, "INFO"], [rid, "WARN"], [rid, "ERROR"],
        [rid, "DEBUG"], [rid, "TRACE"], [rid, "FATAL"],
    ]  # fmt: skip
    messages = [f[3] for f in fields[:-1]]
    assert messages[0] == "plain text and 42"
    assert messages[1] == "{ nested: { a: [ 1, 2 ] } }"
    assert messages[2] == "two\rlines", "a multi-line message stays one log event"
    assert messages[3].startswith("Error: logged error\r    at ")
    assert messages[4:] == ["debug detail", "trace detail", "fatal detail"]
    assert lines[-1] == "raw stdout"


def test_log_level_filters(node: RuntimeCommand, tmp_path: Path) -> None:
    run, _ = run_logging(node, tmp_path, {"AWS_LAMBDA_LOG_LEVEL": "warn"})
    levels = [line.split("\t")[2] for line in run.stdout_lines() if "\t" in line]
    assert levels == ["WARN", "ERROR", "FATAL"]


def test_json_format(node: RuntimeCommand, tmp_path: Path) -> None:
    run, event = run_logging(node, tmp_path, {"AWS_LAMBDA_LOG_FORMAT": "JSON"})
    lines = run.stdout_lines()
    assert lines[-1] == "raw stdout"
    records = [json.loads(line) for line in lines[:-1]]
    assert all(re.fullmatch(TIMESTAMP, r["timestamp"]) for r in records)
    init = records[0]
    assert init == {"timestamp": init["timestamp"], "level": "INFO", "message": "during init"}
    assert all(r["requestId"] == event.request_id for r in records[1:])
    assert records[1]["message"] == "plain text and 42"
    assert records[2]["message"] == {"nested": {"a": [1, 2]}}
    assert (records[3]["level"], records[3]["message"]) == ("WARN", "two\nlines")
    error = records[4]["message"]
    assert (error["errorType"], error["errorMessage"]) == ("Error", "logged error")
    assert error["stackTrace"][0] == "Error: logged error"
    assert [r["level"] for r in records[5:]] == ["DEBUG", "TRACE", "FATAL"]


def test_json_error_with_a_label(node: RuntimeCommand, tmp_path: Path) -> None:
    write_code(
        tmp_path,
        {
            "index.js": "exports.handler = async () => { console.error('failed:', new TypeError('bad')); "
            "throw new RangeError('out'); };"
        },
    )
    event = Event()
    run = run_bootstrap(node, tmp_path, "index.handler", [event], {"AWS_LAMBDA_LOG_FORMAT": "json"})
    labelled, invoke_error = (json.loads(line) for line in run.stdout_lines())
    assert labelled["message"].startswith("failed: TypeError: bad")
    assert (labelled["errorType"], labelled["errorMessage"]) == ("TypeError", "bad")
    assert labelled["stackTrace"][0] == "TypeError: bad"
    assert invoke_error["level"] == "ERROR"
    assert invoke_error["message"]["errorType"] == "RangeError"
    assert invoke_error["message"]["errorMessage"] == "out"
    assert run.error(event).json()["errorType"] == "RangeError"


def test_invoke_error_line_in_text_format(node: RuntimeCommand, tmp_path: Path) -> None:
    write_code(
        tmp_path,
        {
            "index.js": "exports.handler = async () => { const e = new Error('boom'); e.code = 'E_BOOM'; "
            "e.detail = { id: 7 }; throw e; };"
        },
    )
    event = Event()
    run = run_bootstrap(node, tmp_path, "index.handler", [event])
    (line,) = run.stdout_lines()
    _timestamp, rid, level, message = line.split("\t", 3)
    assert (rid, level) == (event.request_id, "ERROR")
    assert message.startswith("Invoke Error \t{")
    logged = json.loads(message.split("\t", 1)[1])
    assert logged["errorType"] == "Error" and logged["errorMessage"] == "boom"
    assert logged["code"] == "E_BOOM" and logged["detail"] == {"id": 7}
    assert logged["stack"][0] == "Error: boom"


def test_output_is_complete_when_the_process_exits(node: RuntimeCommand, tmp_path: Path) -> None:
    # Writes to stdout are synchronous: what a function logged right before a crash is on
    # stdout when the process exits (the runner reads it only afterwards, so stay < 64 KiB).
    write_code(
        tmp_path,
        {
            "index.js": "exports.handler = async () => { for (let i = 0; i < 300; i++) "
            "console.log('line %d %s', i, 'x'.repeat(100)); "
            "setImmediate(() => { throw new Error('crash'); }); return new Promise(() => {}); };"
        },
    )
    event = Event()
    run = run_bootstrap(node, tmp_path, "index.handler", [event])
    assert run.returncode == 129
    lines = run.stdout_lines()
    assert [line.split("\t")[3].split(" ")[1] for line in lines[:300]] == [
        str(i) for i in range(300)
    ]
    assert "\tUncaught Exception \t" in lines[300]
    assert run.error(event).json()["errorMessage"] == "crash"
