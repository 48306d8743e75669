"""Function output as the platform sees it on stdout: print, logging, text and JSON formats."""

from __future__ import annotations

import json
import re
from pathlib import Path

from lambdalite.runtimes import RuntimeCommand

from .peer import Event, run_bootstrap, write_code

TIMESTAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
JSON_TIMESTAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"

LOGGING_APP = """
    import logging
    import sys

    logging.warning("during init")
    log = logging.getLogger("orders")

    def handler(event, context):
        print("plain print")
        print("no newline", end="")
        print(" - finished")
        log.debug("debug detail")
        log.info("info %s", "detail")
        log.warning("two\\nlines")
        try:
            {}["missing"]
        except KeyError:
            log.exception("lookup failed")
        context.log("via context\\n")
        if event == "custom":
            logging.getLogger().handlers[0].setFormatter(
                logging.Formatter("%(aws_request_id)s|%(levelname)s|%(message)s")
            )
            log.error("custom format")
        return "done"
"""


def test_text_format_at_default_level(runtime: RuntimeCommand, tmp_path: Path) -> None:
    write_code(tmp_path, {"app.py": LOGGING_APP})
    event = Event()
    run = run_bootstrap(runtime, tmp_path, "app.handler", [event])
    assert run.response(event) == "done"
    lines = run.stdout_lines()
    rid = event.request_id
    assert re.fullmatch(rf"\[WARNING\]\t{TIMESTAMP}\t\tduring init", lines[0])
    assert lines[1:3] == ["plain print", "no newline - finished"]
    assert re.fullmatch(rf"\[WARNING\]\t{TIMESTAMP}\t{rid}\ttwo\rlines", lines[3])
    assert re.fullmatch(rf"\[ERROR\]\t{TIMESTAMP}\t{rid}\tlookup failed\rTraceback.*", lines[4])
    assert lines[4].endswith("\rKeyError: 'missing'")
    assert lines[5:] == ["via context"], "DEBUG and INFO stay hidden without a log level"


def test_log_level_and_custom_formatter(runtime: RuntimeCommand, tmp_path: Path) -> None:
    write_code(tmp_path, {"app.py": LOGGING_APP})
    event = Event(body=b'"custom"')
    run = run_bootstrap(
        runtime, tmp_path, "app.handler", [event], {"AWS_LAMBDA_LOG_LEVEL": "TRACE"}
    )
    lines = run.stdout_lines()
    rid = event.request_id
    assert re.fullmatch(rf"\[DEBUG\]\t{TIMESTAMP}\t{rid}\tdebug detail", lines[3])
    assert re.fullmatch(rf"\[INFO\]\t{TIMESTAMP}\t{rid}\tinfo detail", lines[4])
    assert lines[-1] == f"{rid}|ERROR|custom format"


def test_json_format(runtime: RuntimeCommand, tmp_path: Path) -> None:
    write_code(
        tmp_path,
        {
            "app.py": """
                import logging
                log = logging.getLogger("orders")

                def handler(event, context):
                    print("plain print")
                    log.debug("hidden")
                    log.info("created %d", 3, extra={"order": "o-1"})
                    log.info({"structured": True})
                    try:
                        1 / 0
                    except ZeroDivisionError:
                        log.exception("failed")
                    raise RuntimeError("fatal")
            """
        },
    )
    event = Event()
    env = {"AWS_LAMBDA_LOG_FORMAT": "JSON", "AWS_LAMBDA_LOG_LEVEL": "INFO"}
    run = run_bootstrap(runtime, tmp_path, "app.handler", [event], env)
    lines = run.stdout_lines()
    assert lines[0] == "plain print"
    records = [json.loads(line) for line in lines[1:]]
    for record in records:
        assert re.fullmatch(JSON_TIMESTAMP, record.pop("timestamp"))
        assert record.get("requestId") == event.request_id
    created, structured, failed, fatal = records
    assert created == {
        "level": "INFO",
        "message": "created 3",
        "logger": "orders",
        "requestId": event.request_id,
        "order": "o-1",
    }
    assert structured["message"] == {"structured": True}
    assert failed["errorType"] == "ZeroDivisionError"
    assert failed["errorMessage"] == "division by zero"
    assert failed["location"].endswith("app.py:handler:13")
    assert failed["stackTrace"][0].startswith('  File "')
    assert fatal["level"] == "ERROR"
    assert fatal["errorType"] == "RuntimeError"
    assert fatal["errorMessage"] == "fatal"
    assert fatal["stackTrace"] == run.error(event).json()["stackTrace"]
