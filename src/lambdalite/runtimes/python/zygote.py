"""The Python runtime client, pre-initialized in a fork server and started in forked children.

A fork server (``lambdalite/sandbox/launcher.py`` with ``--preload`` naming this file) runs
under the interpreter of one Python runtime. ``preload`` runs there once: it compiles the
runtime client (``bootstrap.py``, under the file name the environments will see) and runs its
definitions, which imports every standard module the client uses. The fork server then
freezes the garbage collector's view of all that and forks an environment per cold start;
each child calls ``run``, which gives the process what a new interpreter would have taken from
its command line and environment, then enters the client's ``main`` exactly as
``python launcher.py`` does.

What a forked environment gets set from the caller's environment, as an interpreter would at
start: ``os.environ`` (and the C library's environment), ``sys.argv``, ``sys.path`` (the
runtime directory, ``PYTHONPATH`` entries, then the interpreter's own paths, site-packages
included), ``TZ`` (``time.tzset``), new ``sys.stdin``/``stdout``/``stderr`` over descriptors
0-2 (``PYTHONUNBUFFERED``, ``PYTHONIOENCODING``), ``sys.dont_write_bytecode``
(``PYTHONDONTWRITEBYTECODE``). ``__main__`` is the runtime client. At exit it does what
interpreter finalization does that a program can notice: waits for non-daemon threads, runs
``atexit`` functions, flushes the streams.

What it cannot change, so the platform execs a new interpreter instead (see
``lambdalite/sandbox/zygotes.py``): other ``PYTHON*`` variables, the dynamic loader's search
path (``LD_*``). The string hash secret is the fork server's, shared by its children.

Standard library only; runs on every supported CPython (3.9 and later).
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import time
from typing import Any, NoReturn

_runtime: Any = None  # the runtime client's module, once preloaded
_runtime_dir = ""
_base_path: list[str] = []
_PRIVATE = "_lambdalite_"  # prefix of the fork server's own modules, gone in children
# What the platform always sets ``TZ`` to: the fork server takes it at preload, so a child
# given the same need not load the time zone again (``time.tzset``).
_PLATFORM_TZ = ":UTC"
_tz: str | None = None
# The fork server's own modules and how many modules there were, at preload: a child drops
# those without going over every module name (each one read is a page copied after fork).
_private: list[str] = []
_module_count = 0


def preload(runtime_dir: str) -> None:
    """In the fork server: load the runtime client as if it lived in ``runtime_dir``."""
    global _runtime, _runtime_dir, _tz, _module_count
    here = os.path.dirname(os.path.abspath(__file__))
    _runtime_dir = runtime_dir or here
    visible = os.path.join(_runtime_dir, "bootstrap.py")
    with open(os.path.join(here, "bootstrap.py"), "rb") as fh:
        code = compile(fh.read(), visible, "exec", dont_inherit=True)
    module = type(sys)(_PRIVATE + "runtime")
    module.__file__ = visible
    module.__dict__["__builtins__"] = __builtins__
    exec(code, module.__dict__)
    _runtime = module
    _base_path[:] = [entry for entry in sys.path if entry]
    if os.environ.get("TZ", _PLATFORM_TZ) == _PLATFORM_TZ:
        os.environ["TZ"] = _tz = _PLATFORM_TZ
        time.tzset()
    _give_back_free_memory()
    _private[:] = [name for name in sys.modules if name.startswith(_PRIVATE)]
    _module_count = len(sys.modules)


def _give_back_free_memory() -> None:
    """Return the heap the preload freed (compiling, importing) to the kernel: every fork
    copies the page tables of what is mapped, so a smaller fork server forks faster."""
    import gc

    gc.collect()
    try:
        import ctypes

        ctypes.CDLL(None).malloc_trim(0)
    except (ImportError, OSError, AttributeError):  # not glibc
        pass


def run(argv: list[str], env: dict[str, str]) -> NoReturn:
    """In a forked child: become the runtime client for ``argv`` and ``env``; never returns.

    ``argv`` is what would have been exec'd (``[python, <runtime dir>/launcher.py, ...]``);
    the working directory, descriptors 0-2, limits and identity are already in place.
    """
    code: Any = 1
    try:
        _become(argv, env)
        code = _runtime.main()
    except SystemExit as exc:
        code = exc.code
    except BaseException:
        with contextlib.suppress(BaseException):
            sys.excepthook(*sys.exc_info())
    os._exit(_finish(code))


def _become(argv: list[str], env: dict[str, str]) -> None:
    os.environ.clear()
    os.environ.update(env)
    if _tz is None or env.get("TZ") != _tz:
        time.tzset()
    sys.argv = list(argv[1:]) or [""]
    if hasattr(sys, "orig_argv"):
        sys.orig_argv = list(argv)
    extra = [entry for entry in env.get("PYTHONPATH", "").split(os.pathsep) if entry]
    # The zygote's finders for the interpreter's own directories stay valid (and save
    # listing the standard library again); new entries get theirs on first use.
    sys.path[:] = [_runtime_dir, *extra, *_base_path]
    sys.dont_write_bytecode = bool(env.get("PYTHONDONTWRITEBYTECODE"))
    _stdio(env)
    private = _private
    if len(sys.modules) != _module_count:  # loaded since: look at every name
        private = [name for name in sys.modules if name.startswith(_PRIVATE)]
    for name in private:
        sys.modules.pop(name, None)
    _runtime.__name__ = "__main__"
    sys.modules["__main__"] = _runtime


def _stdio(env: dict[str, str]) -> None:
    """New standard streams over descriptors 0-2, configured as an interpreter would."""
    unbuffered = bool(env.get("PYTHONUNBUFFERED"))
    encoding, _, errors = env.get("PYTHONIOENCODING", "").partition(":")
    streams = []
    for fd, old, mode in (
        (0, sys.__stdin__, "r"),
        (1, sys.__stdout__, "w"),
        (2, sys.__stderr__, "w"),
    ):
        raw = io.FileIO(fd, mode + "b", closefd=False)
        buffered: Any = raw
        if mode == "r":
            buffered = io.BufferedReader(raw)
        elif not unbuffered:
            buffered = io.BufferedWriter(raw)
        default_errors = "backslashreplace" if fd == 2 else getattr(old, "errors", "strict")
        stream = io.TextIOWrapper(
            buffered,
            encoding=encoding or getattr(old, "encoding", None) or "utf-8",
            errors=errors or default_errors,
            line_buffering=fd == 2,
            write_through=unbuffered and fd != 0,
        )
        stream.mode = mode  # type: ignore[misc]
        streams.append(stream)
    sys.stdin, sys.stdout, sys.stderr = streams
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = streams  # type: ignore[misc]


def _finish(code: Any) -> int:
    """Interpreter finalization, the parts a program can notice; the exit status."""
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code & 0xFF
    else:
        with contextlib.suppress(Exception):
            sys.stderr.write(f"{code}\n")
        status = 1
    threading = sys.modules.get("threading")
    try:
        if threading is not None:
            threading._shutdown()
    except BaseException:
        pass
    try:
        import atexit

        atexit._run_exitfuncs()
    except BaseException:
        pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            status = 120 if status == 0 else status
    return status
