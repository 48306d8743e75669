import json
import os

COUNTER = {"calls": 0}


def handler(event, context):
    COUNTER["calls"] += 1
    print(f"event {json.dumps(event)}")
    action = event.get("action") if isinstance(event, dict) else None
    if action == "raise":
        raise ValueError(event.get("message", "boom"))
    if action == "exit":
        os._exit(event.get("code", 3))
    if action == "sleep":
        import time

        time.sleep(event["seconds"])
    if action == "allocate":
        blob = bytearray(event["mb"] * 1024 * 1024)
        for i in range(0, len(blob), 4096):
            blob[i] = 1
    if action == "big":
        return "x" * event["bytes"]
    if action == "tmp":
        path = "/tmp/lambdalite-e2e-" + context.aws_request_id
        with open(path, "w") as f:
            f.write("ok")
        return {"written": path}
    if action == "tmp_read":
        with open(event["path"]) as f:
            return {"read": f.read()}
    return {
        "event": event,
        "calls": COUNTER["calls"],
        "pid": os.getpid(),
        "request_id": context.aws_request_id,
        "function_name": context.function_name,
        "function_version": context.function_version,
        "invoked_arn": context.invoked_function_arn,
        "memory": context.memory_limit_in_mb,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "log_group": context.log_group_name,
        "log_stream": context.log_stream_name,
        "client_context": (
            context.client_context.custom if context.client_context is not None else None
        ),
        "env": {k: v for k, v in os.environ.items()
                if k.startswith(("AWS_LAMBDA_", "LAMBDA_", "_HANDLER", "AWS_REGION",
                                 "AWS_EXECUTION_ENV", "MY_", "TZ"))},
        "cwd": os.getcwd(),
    }
