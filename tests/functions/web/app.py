import base64
import json


def handler(event, context):
    path = event.get("rawPath", "")
    if path == "/echo":
        return {"statusCode": 200, "headers": {"content-type": "application/json"},
                "body": json.dumps(event)}
    if path == "/plain":
        return {"plain": True}
    if path == "/string":
        return "Hello, world!"
    if path == "/binary":
        return {"statusCode": 201, "headers": {"content-type": "application/octet-stream",
                                               "x-custom": 7},
                "cookies": ["a=1; Path=/", "b=2"],
                "body": base64.b64encode(bytes(range(256))).decode(), "isBase64Encoded": True}
    if path == "/cors":
        return {"statusCode": 200, "headers": {"access-control-allow-origin": "https://evil.example"},
                "body": "cors"}
    if path == "/fail":
        raise RuntimeError("URL handler failure")
    if path == "/invalid":
        return {"statusCode": "not a number"}
    return {"statusCode": 404, "body": "no route"}
