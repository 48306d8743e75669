"""A tiny runtime client for tests: follows the Runtime API with nothing but http.client.

Run as ``python -u runtime_client.py`` with the code directory as cwd. Handlers are called as
``handler(event, context)`` where ``context`` is a dict of the invocation headers.
"""

import http.client
import importlib
import json
import os
import sys

API = "/2018-06-01/runtime"


def main() -> None:
    sys.path.insert(0, os.getcwd())
    conn = http.client.HTTPConnection(os.environ["AWS_LAMBDA_RUNTIME_API"])

    def call(method, path, body=None, headers=None):
        conn.request(method, API + path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response, response.read()

    module_name, _, func_name = os.environ["_HANDLER"].rpartition(".")
    try:
        handler = getattr(importlib.import_module(module_name), func_name)
    except Exception as exc:
        error = {"errorMessage": str(exc), "errorType": type(exc).__name__}
        call(
            "POST",
            "/init/error",
            json.dumps(error),
            {"Lambda-Runtime-Function-Error-Type": "Runtime.ImportModuleError"},
        )
        sys.exit(1)
    while True:
        response, body = call("GET", "/invocation/next")
        request_id = response.getheader("Lambda-Runtime-Aws-Request-Id")
        context = {k.lower(): v for k, v in response.getheaders()}
        try:
            result = handler(json.loads(body), context)
        except Exception as exc:
            error = {"errorMessage": str(exc), "errorType": type(exc).__name__}
            call("POST", f"/invocation/{request_id}/error", json.dumps(error))
            continue
        if isinstance(result, bytes):
            call("POST", f"/invocation/{request_id}/response", result)
        else:
            call("POST", f"/invocation/{request_id}/response", json.dumps(result))


main()
