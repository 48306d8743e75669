"""Runtime client for Python functions: the process that runs inside an execution environment.

The platform starts it as ``<python> bootstrap.py`` with the working directory set to
``LAMBDA_TASK_ROOT`` and the Lambda environment variables in place. It imports the configured
handler, then loops on the Runtime API (2018-06-01): fetch the next event, call the handler,
post the result or the error. Handler resolution, the context object, error documents and log
lines follow AWS's managed Python runtime so a function behaves the same here and on AWS.

Why it looks the way it does:

* Standard library only, and it must run unchanged on every CPython the platform offers
  (3.9 and later), so nothing newer than 3.9 is used. It stays one file because the
  interpreter runs it by path, and its own directory is deliberately kept off ``sys.path``
  so it can never shadow a function's modules (a function may well have a ``bootstrap.py``).
* Cold starts are paid on every new environment, so only cheap modules load up front. The
  HTTP client is a few lines over ``socket``: ``http.client`` pulls in the ``email`` package
  and ``ssl``, which cost more than everything else here together.
* Every standard module the runtime uses is imported before the code directory goes on
  ``sys.path``, so a function file named like one of them cannot break the runtime
  (``traceback`` and ``select`` come with ``logging`` and ``socket`` at no extra cost).
* The platform splits stdout into log events at newlines. Anything this runtime writes that
  spans lines (error reports, log records with tracebacks) joins its lines with ``\\r`` so
  it stays one event, which is what AWS's own runtime does.
"""

import importlib
import json
import logging
import os
import select
import signal
import socket
import sys
import time
import traceback

_API = "/2018-06-01/runtime"
_USER_AGENT = "aws-lambda-python/{}.{}.{}-lambdalite".format(*sys.version_info[:3])
_ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type"
_XRAY_CAUSE_HEADER = "Lambda-Runtime-Function-XRay-Error-Cause"
_XRAY_CAUSE_LIMIT = 32 * 1024  # keeps the request head well inside server header limits
_MAX_LINE = 65536
# A plain int: combining the socket module's flag enums costs more than the peek itself.
_PEEK_NOW = int(socket.MSG_PEEK | socket.MSG_DONTWAIT) if hasattr(socket, "MSG_DONTWAIT") else 0
_NBSP = "\u00a0"  # AWS indents traceback lines in error log events with no-break spaces
_TEXT_FORMAT = "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s"


class _Fault(Exception):
    """A failure the runtime classifies itself (``Runtime.*``), unlike a user exception."""

    def __init__(self, error_type, message, trace=None):
        Exception.__init__(self, message)
        self.error_type = error_type
        self.message = message
        self.trace = trace or []


class _Disconnected(Exception):
    """The Runtime API connection ended or answered in a way the runtime cannot go on from."""


class _NoResponse(_Disconnected):
    """The connection failed before any byte of a response arrived."""


# ----------------------------------------------------------------------------- HTTP client


class _RuntimeConnection:
    """One persistent HTTP/1.1 connection to the Runtime API.

    ``next`` is a long poll, so the socket never times out. A connection the server closed
    while the handler ran is noticed before reuse (a non-blocking peek) and replaced; a
    request that fails on a reused connection before any response byte arrived is retried
    once on a fresh one, since the server cannot have acted on it.
    """

    def __init__(self, address):
        host, sep, port = address.rpartition(":")
        if not sep or not port.isdigit():
            raise ValueError(f"AWS_LAMBDA_RUNTIME_API must be host:port, got {address!r}")
        host = host.strip("[]") or "127.0.0.1"
        # A bytes host keeps getaddrinfo from loading the idna codec (~1 ms at start-up).
        self._address = (host.encode("ascii") if host.isascii() else host, int(port))
        # An address needs no lookup: getaddrinfo costs ~0.3 ms in a freshly forked runtime.
        self._numeric = None
        for family in (socket.AF_INET, socket.AF_INET6):
            try:
                socket.inet_pton(family, host)
            except (OSError, ValueError):
                continue
            self._numeric = (family, (host, int(port)))
            break
        self._host = address
        self._sock = self._reader = None
        self._carried = False  # whether the connection has carried a request yet

    def close(self):
        for closable in (self._reader, self._sock):
            if closable is not None:
                closable.close()
        self._sock = self._reader = None

    def request(self, method, path, body=None, headers=()):
        # A GET follows the answer of the previous request at once (``/next`` after
        # ``/response``): only a connection that sat idle, through a handler or before its
        # first request, is looked at first.
        idle = method != "GET" or not self._carried
        if self._sock is not None and idle and self._closed_by_peer():
            self.close()
        # Opened early but not used yet: a failure on it is a first request's failure.
        reused = self._sock is not None and self._carried
        head = [f"{method} {path} HTTP/1.1", f"Host: {self._host}", f"User-Agent: {_USER_AGENT}"]
        if body is not None:
            head.append(f"Content-Length: {len(body)}")
        head.extend(f"{name}: {value}" for name, value in headers)
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + (body or b"")
        try:
            try:
                return self._exchange(data)
            except _NoResponse:
                if not reused:
                    raise
                self.close()
                return self._exchange(data)
        except BaseException:
            self.close()
            raise

    def open(self):
        """Connect now, not at the first request: the server then accepts the connection
        while the handler's module is imported. A failure here is left to that request."""
        try:
            self._connect()
        except OSError:
            self.close()

    def _connect(self):
        if self._numeric is None:
            sock = socket.create_connection(self._address)
        else:
            family, address = self._numeric
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.connect(address)
            except BaseException:
                sock.close()
                raise
        sock.settimeout(None)  # user code may have changed the default timeout
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock, self._reader = sock, sock.makefile("rb")
        self._carried = False

    def _exchange(self, data):
        if self._sock is None:
            self._connect()
        try:
            self._sock.sendall(data)
            status_line = self._reader.readline(_MAX_LINE)
        except ConnectionError as exc:
            raise _NoResponse(f"connection to the Runtime API failed: {exc}") from None
        if not status_line:
            raise _NoResponse("connection closed by the Runtime API before responding")
        self._carried = True
        try:
            return self._read_response(status_line)
        except ValueError as exc:  # a length or chunk size that is not a number
            raise _Disconnected(f"malformed response from the Runtime API: {exc}") from None

    def _closed_by_peer(self):
        try:
            if not _PEEK_NOW:
                if not select.select([self._sock], [], [], 0)[0]:
                    return False
                return self._sock.recv(1, socket.MSG_PEEK) == b""
            return self._sock.recv(1, _PEEK_NOW) == b""
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            return True

    def _line(self, where):
        line = self._reader.readline(_MAX_LINE)
        if not line:
            raise _Disconnected(f"connection closed by the Runtime API {where}")
        return line

    def _read_response(self, status_line):
        parts = status_line.split(None, 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise _Disconnected(f"malformed status line {status_line[:100]!r}")
        status, headers = int(parts[1]), {}
        while True:
            line = self._line("inside response headers")
            if line in (b"\r\n", b"\n"):
                break
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError:
                text = line.decode("latin-1")
            name, _, value = text.partition(":")
            key, value = name.strip().lower(), value.strip()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        if 100 <= status < 200:
            return self._read_response(self._line("after an interim response"))
        body = self._read_body(status, headers)
        if parts[0] == b"HTTP/1.0" or "close" in headers.get("connection", "").lower():
            self.close()
        return status, headers, body

    def _read_body(self, status, headers):
        if status in (204, 304):
            return b""
        if "chunked" in headers.get("transfer-encoding", "").lower():
            chunks = []
            while True:
                size = int(self._line("inside a chunked body").split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while self._line("inside chunked trailers") not in (b"\r\n", b"\n"):
                        pass
                    return b"".join(chunks)
                chunks.append(self._read_exact(size))
                self._line("inside a chunked body")
        if "content-length" in headers:
            return self._read_exact(int(headers["content-length"]))
        headers["connection"] = "close"
        return self._reader.read()

    def _read_exact(self, size):
        data = self._reader.read(size)
        if len(data) != size:
            raise _Disconnected("connection closed by the Runtime API inside a response body")
        return data


_SAFE = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~"


def _path_segment(text):
    if not text.strip(_SAFE):  # nothing to escape (a request id): no pass over each character
        return text
    return "".join(c if c in _SAFE else "".join(f"%{b:02X}" for b in c.encode()) for c in text)


# ----------------------------------------------------------------------------- context


class _Fields:
    """Attribute bag with AWS's repr; unset fields read as None."""

    __slots__ = ()
    _order = ()

    @classmethod
    def from_dict(cls, values):
        obj = cls()
        for name in cls._order:
            setattr(obj, name, values.get(name) if isinstance(values, dict) else None)
        return obj

    def __repr__(self):
        fields = ",".join(f"{name}={getattr(self, name)}" for name in self._order)
        return f"{type(self).__name__}([{fields}])"


class CognitoIdentity(_Fields):
    __slots__ = ("cognito_identity_id", "cognito_identity_pool_id")
    _order = __slots__


class Client(_Fields):
    _order = (
        "installation_id", "app_title", "app_version_name", "app_version_code",
        "app_package_name",
    )  # fmt: skip
    __slots__ = _order


class ClientContext(_Fields):
    _order = ("custom", "env", "client")
    __slots__ = _order


class LambdaContext:
    """The ``context`` argument: invocation metadata plus the remaining-time clock."""

    def __init__(self, request_id, client_context, identity, deadline_ms, invoked_arn, tenant):
        env = os.environ
        self.aws_request_id = request_id
        self.log_group_name = env.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = env.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.function_name = env.get("AWS_LAMBDA_FUNCTION_NAME")
        self.memory_limit_in_mb = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.function_version = env.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.invoked_function_arn = invoked_arn
        self.tenant_id = tenant
        self._deadline_ms = deadline_ms
        # W3C trace context travels inside the client context but is exposed on its own.
        w3c = client_context.pop("w3c", None) if isinstance(client_context, dict) else None
        self._w3c = {
            key: value
            for key, value in (w3c.items() if isinstance(w3c, dict) else ())
            if key in ("traceparent", "tracestate", "baggage") and isinstance(value, str)
        }
        self.client_context = None
        if client_context is not None:
            self.client_context = ClientContext.from_dict(client_context)
            if self.client_context.client is not None:
                self.client_context.client = Client.from_dict(self.client_context.client)
        identity = identity if isinstance(identity, dict) else {}
        self.identity = CognitoIdentity()
        self.identity.cognito_identity_id = identity.get("cognitoIdentityId")
        self.identity.cognito_identity_pool_id = identity.get("cognitoIdentityPoolId")

    def get_remaining_time_in_millis(self):
        return max(self._deadline_ms - int(time.time() * 1000), 0)

    def w3c(self):
        return dict(self._w3c)

    def log(self, msg):
        sys.stdout.write(str(msg))

    def __repr__(self):
        names = (
            "aws_request_id", "log_group_name", "log_stream_name", "function_name",
            "memory_limit_in_mb", "function_version", "invoked_function_arn", "client_context",
            "identity", "tenant_id",
        )  # fmt: skip
        return "LambdaContext([{}])".format(",".join(f"{n}={getattr(self, n)}" for n in names))


def _parse_json_header(value, label):
    if not value:
        return None
    try:
        return json.loads(value)
    except Exception as exc:
        message = f"Unable to parse {label} JSON: {exc}"
        raise _Fault("Runtime.LambdaContextUnmarshalError", message) from None


# ----------------------------------------------------------------------------- payloads


def _unmarshal(body, content_type):
    if content_type and content_type.split(";", 1)[0].strip().lower() != "application/json":
        return body
    try:
        return json.loads(body)
    except Exception as exc:
        raise _Fault("Runtime.UnmarshalError", f"Unable to unmarshal input: {exc}") from None


def _marshal(result, ensure_ascii):
    """Encode a handler result as AWS does: bytes pass through raw, Decimals stay exact."""
    if isinstance(result, bytes):
        return result, "application/unknown"
    decimals = []
    marker = f"\x00{id(decimals):x}:"

    def default(obj):
        decimal = sys.modules.get("decimal")
        if decimal is not None and isinstance(obj, decimal.Decimal):
            if obj.is_nan():
                return float("nan")
            decimals.append(str(obj))
            return f"{marker}{len(decimals) - 1}\x00"
        raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")

    try:
        text = json.dumps(result, ensure_ascii=ensure_ascii, default=default)
    except Exception as exc:
        raise _Fault("Runtime.MarshalError", f"Unable to marshal response: {exc}") from None
    if decimals:
        escaped = json.dumps(marker)[1:-1]
        for index, literal in enumerate(decimals):
            text = text.replace(f'"{escaped}{index}\\u0000"', literal, 1)
    return text.encode("utf-8"), "application/json"


# ----------------------------------------------------------------------------- errors


def _user_frames(tb):
    """Traceback entries minus this runtime's own leading frames, as AWS reports them."""
    frames = [(f.filename, f.lineno, f.name, f.line) for f in traceback.extract_tb(tb)]
    while frames and frames[0][0] == _THIS_FILE:
        del frames[0]
    return frames


def _error_document(message, error_type, stack, request_id=""):
    return {
        "errorMessage": message or "",
        "errorType": error_type or "",
        "requestId": request_id or "",
        "stackTrace": stack or [],
    }


def _exception_report(exc, request_id=""):
    """The error document and the X-Ray cause header value for a failure."""
    if isinstance(exc, _Fault):
        error_type, message, frames = "LambdaValidationError", exc.message, []
        doc = _error_document(message, exc.error_type, exc.trace, request_id)
    else:
        error_type, message, frames = type(exc).__name__, str(exc), _user_frames(exc.__traceback__)
        stack = [
            f'  File "{path}", line {line}, in {name}\n' + (f"    {text.strip()}\n" if text else "")
            for path, line, name, text in frames
        ]
        doc = _error_document(message, error_type, stack, request_id)
    xray_stack = [{"label": name, "path": path, "line": line} for path, line, name, _ in frames]
    cause = json.dumps(
        {
            "working_directory": os.getcwd(),
            "exceptions": [{"message": message, "type": error_type, "stack": xray_stack}],
            "paths": sorted({path for path, _, _, _ in frames}),
        }
    )
    return doc, cause if len(cause) < _XRAY_CAUSE_LIMIT else None


# ----------------------------------------------------------------------------- logging


class _Invocation:
    """What log records need to know about the invocation in progress."""

    request_id = ""
    tenant_id = None


class _RequestIdFilter(logging.Filter):
    """Gives every record ``aws_request_id`` so user formatters can use it, as on AWS."""

    def __init__(self, invocation):
        logging.Filter.__init__(self)
        self._invocation = invocation

    def filter(self, record):
        record.aws_request_id = self._invocation.request_id or ""
        record.tenant_id = self._invocation.tenant_id
        return True


class _StdoutHandler(logging.Handler):
    """Writes each record to the current ``sys.stdout`` as exactly one line."""

    def emit(self, record):
        try:
            text = self.format(record)
            text = text[:-1] if text.endswith("\n") else text
            sys.stdout.write(text.replace("\r\n", "\r").replace("\n", "\r") + "\n")
        except Exception:
            self.handleError(record)


def _utc_timestamp(created):
    # JSON records carry whole seconds, as AWS's Python runtime writes them.
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created))


_RECORD_ATTRIBUTES = frozenset((
    "name", "msg", "args", "levelname", "levelno", "pathname", "filename", "module",
    "exc_info", "exc_text", "stack_info", "lineno", "funcName", "created", "msecs",
    "relativeCreated", "thread", "threadName", "processName", "process", "taskName",
    "aws_request_id", "tenant_id", "message", "asctime",
))  # fmt: skip


class _JsonFormatter(logging.Formatter):
    """One JSON object per record, the layout of AWS's JSON log format."""

    def format(self, record):
        level = min(50, max(0, record.levelno)) // 10 * 10
        plain_dict = isinstance(record.msg, dict) and not record.args
        out = {
            "timestamp": _utc_timestamp(record.created),
            "level": logging.getLevelName(level),
            "message": record.msg if plain_dict else record.getMessage(),
            "logger": record.name,
            "requestId": getattr(record, "aws_request_id", None),
        }
        if record.exc_info and record.exc_info[0] is not None:
            out["stackTrace"] = traceback.format_tb(record.exc_info[2])
            out["errorType"] = record.exc_info[0].__name__
            out["errorMessage"] = str(record.exc_info[1])
            out["location"] = f"{record.pathname}:{record.funcName}:{record.lineno}"
        out["tenantId"] = getattr(record, "tenant_id", None)
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRIBUTES and key not in out:
                out[key] = value
        out = {key: value for key, value in out.items() if value is not None}
        return json.dumps(out, ensure_ascii=False, default=str)


def _setup_logging(invocation, json_format, level):
    handler = _StdoutHandler()
    if json_format:
        handler.setFormatter(_JsonFormatter())
    else:
        formatter = logging.Formatter(_TEXT_FORMAT, "%Y-%m-%dT%H:%M:%S")
        formatter.converter = time.gmtime
        handler.setFormatter(formatter)
    handler.addFilter(_RequestIdFilter(invocation))
    root = logging.getLogger()
    root.addHandler(handler)
    level = "DEBUG" if level.upper() == "TRACE" else level.upper()
    if isinstance(logging.getLevelName(level), int):
        root.setLevel(level)


def _log_error(doc, json_format):
    """Report a failure on stdout as one log event, formatted like AWS's runtime."""
    if json_format:
        record = {"timestamp": _utc_timestamp(time.time()), "level": "ERROR", **doc}
        sys.stdout.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        return
    head = "[ERROR]"
    if doc["errorType"]:
        head += " " + doc["errorType"] + (":" if doc["errorMessage"] else "")
    if doc["errorMessage"]:
        head += " " + doc["errorMessage"]
    lines = [head, "Traceback (most recent call last):"]
    for element in doc["stackTrace"]:
        for line in element.splitlines() or [""]:
            text = line.lstrip(" ")
            lines.append(_NBSP * (len(line) - len(text)) + text)
    sys.stdout.write("\r".join(lines).replace("\n", "\r") + "\n")


def _flush_stdio():
    for stream in (sys.stdout, sys.stderr):
        try:  # noqa: SIM105 - contextlib is not worth its import here
            stream.flush()
        except Exception:
            pass


# ----------------------------------------------------------------------------- init


def _setup_sys_path(task_root):
    here = os.path.dirname(os.path.realpath(_THIS_FILE))
    if sys.path and os.path.realpath(sys.path[0] or ".") == here:
        del sys.path[0]
    version = "{}.{}".format(*sys.version_info[:2])
    front = [task_root, f"/opt/python/lib/python{version}/site-packages", "/opt/python"]
    sys.path[:] = front + [entry for entry in sys.path if entry not in front]


def _load_handler(spec):
    try:
        module_name, function_name = spec.rsplit(".", 1)
    except ValueError as exc:
        raise _Fault("Runtime.MalformedHandlerName", f"Bad handler '{spec}': {exc}") from None
    if module_name.split(".")[0] in sys.builtin_module_names:
        message = f"Cannot use built-in module {module_name} as a handler module"
        raise _Fault("Runtime.BuiltInModuleConflict", message)
    try:
        module = importlib.import_module(module_name.replace("/", "."))
    except ImportError as exc:
        message = f"Unable to import module '{module_name}': {exc}"
        raise _Fault("Runtime.ImportModuleError", message) from None
    except SyntaxError as exc:
        message = f"Syntax error in module '{module_name}': {exc}"
        trace = [f'  File "{exc.filename}" Line {exc.lineno}\n    {exc.text}']
        raise _Fault("Runtime.UserCodeSyntaxError", message, trace) from None
    try:
        return getattr(module, function_name)
    except AttributeError:
        message = f"Handler '{function_name}' missing on module '{module_name}'"
        raise _Fault("Runtime.HandlerNotFound", message) from None


# ----------------------------------------------------------------------------- streaming

def _streaming():
    """``modules/lambdalite_streaming.py`` (functions import it too), loaded on the first
    result that streams."""
    return importlib.import_module("lambdalite_streaming")


def _stream_failed(request_id, json_format):
    """Reports a stream failing after its first chunk: logged as any failure is, and its
    error document returned for the trailers."""

    def failed(exc):
        doc, _ = _exception_report(exc, request_id)
        _log_error(doc, json_format)
        _flush_stdio()
        return doc

    return failed


# ----------------------------------------------------------------------------- SnapStart


def _snap_start(runtime, json_format):
    """SnapStart template: ``snapstart.py`` (beside this file) runs the hooks and serves
    forks; it returns in each restored copy. False when the snapshot could not be made."""
    from importlib.util import module_from_spec, spec_from_file_location

    here = os.path.dirname(os.path.realpath(_THIS_FILE))
    found = spec_from_file_location("_lambdalite_snapstart", os.path.join(here, "snapstart.py"))
    snapstart = module_from_spec(found)
    found.loader.exec_module(snapstart)

    def report(exc, error_type, path):
        doc, _ = _exception_report(_Fault(error_type, str(exc), getattr(exc, "trace", None)))
        _log_error(doc, json_format)
        _flush_stdio()
        headers = [(_ERROR_TYPE_HEADER, error_type), ("Content-Type", "application/json")]
        try:
            runtime.conn.request("POST", path, json.dumps(doc).encode(), headers)
        except (OSError, _Disconnected) as post_failure:
            sys.stderr.write(f"Runtime API {path} failed: {post_failure}\n")

    try:
        snapstart.snapshot_and_serve(runtime, _RuntimeConnection, report)
    except snapstart.HookError as exc:
        report(exc, exc.error_type, f"{_API}/init/error")
        return False
    except (OSError, _Disconnected) as exc:
        sys.stderr.write(f"Runtime API request failed, exiting: {exc}\n")
        return False
    return True


# ----------------------------------------------------------------------------- main loop


class _Runtime:
    def __init__(self, conn, handler, json_format, ensure_ascii, invocation):
        self.conn = conn
        self.handler = handler
        self.json_format = json_format
        self.ensure_ascii = ensure_ascii
        self.invocation = invocation

    def invoke_next(self):
        """Fetch one event, run the handler on it and post the outcome."""
        status, headers, body = self.conn.request("GET", f"{_API}/invocation/next")
        if status != 200:
            raise _Disconnected(f"next answered HTTP {status}: {body[:200]!r}")
        request_id = headers.get("lambda-runtime-aws-request-id", "")
        self.invocation.request_id = request_id
        self.invocation.tenant_id = headers.get("lambda-runtime-aws-tenant-id") or None
        trace_id = headers.get("lambda-runtime-trace-id")
        if trace_id is not None:
            os.environ["_X_AMZN_TRACE_ID"] = trace_id
        else:
            os.environ.pop("_X_AMZN_TRACE_ID", None)
        path = f"{_API}/invocation/{_path_segment(request_id)}"
        try:
            context = LambdaContext(
                request_id,
                _parse_json_header(headers.get("lambda-runtime-client-context"), "Client Context"),
                _parse_json_header(
                    headers.get("lambda-runtime-cognito-identity"), "Cognito Identity"
                ),
                int(headers.get("lambda-runtime-deadline-ms") or 0),
                headers.get("lambda-runtime-invoked-function-arn"),
                self.invocation.tenant_id,
            )
            event = _unmarshal(body, headers.get("content-type"))
            result, stream = self.handler(event, context), None
            if hasattr(result, "__next__"):  # an iterator streams: lambdalite_streaming.py
                stream = _streaming().Stream(result)
                if stream.error is not None:
                    raise stream.error
            else:
                payload, content_type = _marshal(result, self.ensure_ascii)
        except Exception as exc:
            doc, cause = _exception_report(exc, request_id)
            _log_error(doc, self.json_format)
            _flush_stdio()
            extra = [("Content-Type", "application/json")]
            if cause is not None:
                extra.append((_XRAY_CAUSE_HEADER, cause))
            status, _, reply = self.conn.request(
                "POST", f"{path}/error", json.dumps(doc).encode(), extra
            )
        else:
            _flush_stdio()
            if stream is not None:
                failed = _stream_failed(request_id, self.json_format)
                status, reply = stream.send(self.conn, f"{path}/response", failed)
            else:
                status, _, reply = self.conn.request(
                    "POST", f"{path}/response", payload, [("Content-Type", content_type)]
                )
        # 4xx (e.g. a response over the size limit) fails only this invocation.
        if status >= 500:
            raise _Disconnected(f"{path} answered HTTP {status}: {reply[:200]!r}")


def _on_sigterm(signum, frame):
    # Leave at once: raising SystemExit here would unwind through whatever frame the signal
    # interrupted (a socket read, a write holding stdout's lock) and through interpreter
    # finalization, either of which can stall a runtime that is being shut down.
    _flush_stdio()
    os._exit(0)


def main():
    for stream in (sys.stdout, sys.stderr):
        if stream is not None and hasattr(stream, "reconfigure"):
            stream.reconfigure(line_buffering=True)
    signal.signal(signal.SIGTERM, _on_sigterm)
    env = os.environ
    if not env.get("AWS_LAMBDA_RUNTIME_API"):
        sys.stderr.write("AWS_LAMBDA_RUNTIME_API is not set\n")
        return 1
    conn = _RuntimeConnection(env["AWS_LAMBDA_RUNTIME_API"])
    if not env.get("_LAMBDALITE_SNAPSTART_FD"):  # a snapshot must not hold a connection
        conn.open()
    spec = sys.argv[1] if len(sys.argv) > 1 else env.get("_HANDLER", "")
    _setup_sys_path(env.get("LAMBDA_TASK_ROOT") or os.getcwd())
    sys.path.append(os.path.join(os.path.dirname(os.path.realpath(_THIS_FILE)), "modules"))
    invocation = _Invocation()
    json_format = env.get("AWS_LAMBDA_LOG_FORMAT", "").upper() == "JSON"
    _setup_logging(invocation, json_format, env.get("AWS_LAMBDA_LOG_LEVEL", ""))
    # AWS's python3.12+ runtimes emit non-ASCII characters in responses unescaped.
    minor = env.get("AWS_EXECUTION_ENV", "").rpartition("python3.")[2]
    ensure_ascii = not (minor.isdigit() and int(minor) >= 12)
    try:
        handler = _load_handler(spec)
    except Exception as exc:
        doc, _ = _exception_report(exc)
        _log_error(doc, json_format)
        _flush_stdio()
        headers = [(_ERROR_TYPE_HEADER, doc["errorType"]), ("Content-Type", "application/json")]
        try:
            conn.request("POST", f"{_API}/init/error", json.dumps(doc).encode(), headers)
        except (OSError, _Disconnected) as post_failure:
            sys.stderr.write(f"Runtime API init/error failed: {post_failure}\n")
        return 1
    runtime = _Runtime(conn, handler, json_format, ensure_ascii, invocation)
    if env.get("_LAMBDALITE_SNAPSTART_FD") and not _snap_start(runtime, json_format):
        return 1
    try:
        while True:
            runtime.invoke_next()
    except (OSError, _Disconnected) as exc:
        _flush_stdio()
        sys.stderr.write(f"Runtime API request failed, exiting: {exc}\n")
        return 1


_THIS_FILE = main.__code__.co_filename

if __name__ == "__main__":
    sys.exit(main())
