"""Packages for OS-only (``provided.*``) functions: shell + curl bootstraps and zips with modes.

The main bootstrap follows the shape of AWS's custom-runtime tutorial: a shell loop that
sources the handler script named by ``_HANDLER``, asks ``/next`` for an event with curl,
scrapes the request id from the response headers, runs the handler and posts its output.
It is POSIX ``sh`` (the tutorial relies on Amazon Linux's ``sh`` being bash).
"""

from __future__ import annotations

import io
import zipfile

BOOTSTRAP = r"""#!/bin/sh
set -eu
# INIT: load the handler script named by the part of _HANDLER before the dot.
. "$LAMBDA_TASK_ROOT/$(echo "$_HANDLER" | cut -d. -f1).sh"
API="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime/invocation"
echo "bootstrap ready"
while true; do
    HEADERS="$(mktemp)"
    # Blocks until there is an event.
    EVENT_DATA=$(curl -sS -LD "$HEADERS" "$API/next")
    REQUEST_ID=$(grep -Fi Lambda-Runtime-Aws-Request-Id "$HEADERS" | tr -d '[:space:]' | cut -d: -f2)
    case "$EVENT_DATA" in
        *'"fail"'*)
            curl -sS -o /dev/null "$API/$REQUEST_ID/error" \
                -H "Lambda-Runtime-Function-Error-Type: Function.CustomFailure" \
                -d '{"errorMessage": "the shell handler failed", "errorType": "CustomFailure"}'
            ;;
        *'"sleep"'*)
            sleep 5
            ;;
        *)
            RESPONSE=$($(echo "$_HANDLER" | cut -d. -f2) "$EVENT_DATA" "$HEADERS")
            curl -sS -o /dev/null "$API/$REQUEST_ID/response" -d "$RESPONSE"
            ;;
    esac
    rm -f "$HEADERS"
done
"""

FUNCTION_SH = r"""
header () {
    grep -Fi "$1:" "$2" | head -n 1 | cut -d: -f2- | tr -d '\r' | sed 's/^ //'
}

handler () {
    EVENT_DATA=$1
    echo "handling $EVENT_DATA" 1>&2
    CONTEXT=$(header Lambda-Runtime-Client-Context "$2")
    printf '{"event": %s, "requestId": "%s", "deadlineMs": %s, "arn": "%s", "trace": "%s", "clientContext": %s, "executionEnv": "%s", "handler": "%s", "taskRoot": "%s", "user": "%s"}' \
        "$EVENT_DATA" \
        "$(header Lambda-Runtime-Aws-Request-Id "$2")" \
        "$(header Lambda-Runtime-Deadline-Ms "$2")" \
        "$(header Lambda-Runtime-Invoked-Function-Arn "$2")" \
        "$(header Lambda-Runtime-Trace-Id "$2")" \
        "${CONTEXT:-null}" \
        "${AWS_EXECUTION_ENV-unset}" \
        "$_HANDLER" \
        "$LAMBDA_TASK_ROOT" \
        "$(id -u)"
}
"""

# Streams three chunks, a pause apart, as one chunked streaming-mode response.
STREAMING_BOOTSTRAP = r"""#!/bin/sh
set -eu
API="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime/invocation"
while true; do
    HEADERS="$(mktemp)"
    EVENT_DATA=$(curl -sS -LD "$HEADERS" "$API/next")
    REQUEST_ID=$(grep -Fi Lambda-Runtime-Aws-Request-Id "$HEADERS" | tr -d '[:space:]' | cut -d: -f2)
    case "$EVENT_DATA" in
        *rawPath*)
            TYPE=application/vnd.awslambda.http-integration-response
            PRELUDE='{"statusCode": 201, "headers": {"content-type": "text/plain", "x-runtime": "shell"}}\000\000\000\000\000\000\000\000'
            ;;
        *)
            TYPE=text/plain
            PRELUDE=''
            ;;
    esac
    { printf "${PRELUDE}first;"; sleep 0.5; printf 'second;'; sleep 0.5; printf 'third'; } |
        curl -sS -o /dev/null -X POST -T - "$API/$REQUEST_ID/response" \
            -H "Lambda-Runtime-Function-Response-Mode: streaming" \
            -H "Transfer-Encoding: chunked" -H "Content-Type: $TYPE"
    rm -f "$HEADERS"
done
"""


def zip_with_modes(files: dict[str, tuple[str | bytes, int]]) -> bytes:
    """A zip whose entries carry Unix permissions (``{name: (content, mode)}``)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, (content, mode) in files.items():
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = (0o100000 | mode) << 16
            zf.writestr(info, content)
    return buf.getvalue()


def tutorial_package(with_bootstrap: bool = True) -> bytes:
    """The tutorial's function: ``bootstrap`` and ``function.sh`` (handler ``function.handler``)."""
    files: dict[str, tuple[str | bytes, int]] = {"function.sh": (FUNCTION_SH, 0o644)}
    if with_bootstrap:
        files["bootstrap"] = (BOOTSTRAP, 0o755)
    return zip_with_modes(files)
