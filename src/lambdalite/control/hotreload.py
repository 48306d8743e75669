"""Hot reload: functions whose code is a live directory on the server's host.

A function gets this code source through CreateFunction or UpdateFunctionCode with the marker
bucket ``hot-reload`` and, as the key, the absolute path of a directory (the convention other
local Lambda emulators use, so existing tooling works). Only directories under the paths the
server was started with (``--hot-reload-paths``) are accepted; none are by default.

Nothing is copied: environments see the directory itself (a namespace sandbox bind-mounts it
read-only at ``/var/task``), so a new environment always loads the files as they are. What
must not survive an edit are the warm environments that already imported the old files. A
``DirectoryWatcher`` notices changes; every invocation of a hot-reload function first asks it
(one non-blocking read with inotify) and retires the function's environments when the tree
changed, and a background reader does the same between invocations. Retired environments that
are busy finish their invocation and are then replaced.

The stored code record keeps the directory and a digest of its listing taken when the code was
set, which is what GetFunction reports as CodeSha256 (there is no zip: CodeSize is the bytes of
the files). Publishing a version snapshots the directory into an ordinary package, so a
version stays what it was when published while ``$LATEST`` follows the directory.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import time
from pathlib import Path
from typing import Any

from lambdalite.blobs.livedir import DirectoryWatcher, listing
from lambdalite.blobs.packing import zip_directory
from lambdalite.config import Settings
from lambdalite.control.deps import CodeStore
from lambdalite.core.errors import InvalidParameterValueException, ResourceConflictException
from lambdalite.invocation.model import Invoker

log = logging.getLogger(__name__)

HOT_RELOAD_BUCKET = "hot-reload"
CODE_KEY = "hot_reload"  # the code record member holding the directory
_MIN_POLL = 0.5


def is_hot_reload(code: dict[str, Any]) -> bool:
    """Whether a stored code record is a live directory."""
    return CODE_KEY in code


def allowed_roots(setting: str) -> tuple[Path, ...]:
    """The resolved directories of ``hot_reload_paths`` (``:``-separated)."""
    return tuple(Path(p).expanduser().resolve() for p in setting.split(":") if p.strip())


class HotReload:
    def __init__(self, settings: Settings, invoker: Invoker, code: CodeStore) -> None:
        self.settings = settings
        self.invoker = invoker
        self.code = code  # the package store, for snapshots taken by PublishVersion
        self.allowed = allowed_roots(settings.hot_reload_paths)
        self._watcher: DirectoryWatcher | None = None
        self._users: dict[Path, set[tuple[str, str]]] = {}  # directory → (function, version)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._poller: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._pending: set[Path] = set()
        self._lock = asyncio.Lock()

    # -- the code source ------------------------------------------------------------------
    def code_record(self, code: dict[str, Any]) -> dict[str, Any]:
        """Check a ``hot-reload`` code source and describe the directory it names."""
        directory = self._check(str(code.get("S3Key") or ""))
        seen = listing(directory)
        return {
            CODE_KEY: str(directory),
            "sha": seen.sha256.hex(),
            "sha256": base64.b64encode(seen.sha256).decode("ascii"),
            "size": seen.total_bytes,
            "unzipped": seen.total_bytes,
        }

    def _check(self, key: str) -> Path:
        if not key.startswith("/"):
            raise InvalidParameterValueException(
                f"Hot reload needs an absolute directory path as S3Key (bucket "
                f"'{HOT_RELOAD_BUCKET}'); got '{key}'."
            )
        if not self.allowed:
            raise InvalidParameterValueException(
                "Hot reload is not enabled on this lambdalite server: start it with "
                "--hot-reload-paths (or LAMBDALITE_HOT_RELOAD_PATHS) naming the directories "
                "functions may run from."
            )
        directory = Path(key).resolve()
        if not any(directory == root or root in directory.parents for root in self.allowed):
            allowed = ":".join(str(r) for r in self.allowed)
            raise InvalidParameterValueException(
                f"Hot reload directory {key} is not under the paths this server allows "
                f"({allowed}); see --hot-reload-paths."
            )
        data = self.settings.data_dir.resolve()
        if directory == data or data in directory.parents or directory in data.parents:
            raise InvalidParameterValueException(
                f"Hot reload directory {key} overlaps the server's data directory."
            )
        if not directory.is_dir():
            raise InvalidParameterValueException(
                f"Hot reload directory {key} does not exist or is not a directory."
            )
        return directory

    def directory(self, function: str, version: str, code: dict[str, Any]) -> Path:
        """Where environments of a hot-reload version find their code; starts watching it.

        Checked again here because the server may have been restarted with other allowed
        paths since the code was set.
        """
        try:
            directory = self._check(code[CODE_KEY])
        except InvalidParameterValueException as exc:
            raise ResourceConflictException(
                f"The function's hot-reload code cannot be used: {exc.message}"
            ) from None
        self._watch(directory, (function, version))
        return directory

    def snapshot(self, code: dict[str, Any]) -> dict[str, Any]:
        """An ordinary package of what a hot-reload directory holds now (for PublishVersion);
        other code records are returned unchanged."""
        if not is_hot_reload(code):
            return code
        directory = self._check(code[CODE_KEY])
        _refuse_outside_links(directory, self.allowed)
        info = self.code.put_zip(zip_directory(directory))
        return {
            "sha": info.sha256_hex,
            "sha256": info.code_sha256_b64,
            "size": info.size,
            "unzipped": info.unzipped_size,
        }

    # -- noticing changes -----------------------------------------------------------------
    # Changed directories go to ``_pending`` as soon as they are seen (by an invocation, the
    # background reader or the poller); ``_flush`` retires their users under ``_lock``. An
    # invocation that finds work pending, or a flush under way, waits for it, so it never
    # picks an environment that an edit made before it has already condemned.
    async def catch_up(self) -> None:
        """Retire environments of every directory that changed; cheap when none did.

        Called before each invocation of a hot-reload function, so an edit finished before
        the request was sent is always served by fresh environments.
        """
        if self._watcher is None:
            return
        if self._loop is None:
            self._start_background()  # first watched outside the event loop
        self._pending |= self._watcher.changed()
        if self._pending or self._lock.locked():
            await self._flush()

    def _watch(self, directory: Path, user: tuple[str, str]) -> None:
        if self._watcher is None:
            self._watcher = DirectoryWatcher()
        users = self._users.setdefault(directory, set())
        if user in users:
            return
        for others in self._users.values():
            others.discard(user)  # the version used another directory before
        users.add(user)
        self._watcher.watch(directory)
        self._start_background()

    def _start_background(self) -> None:
        watcher = self._watcher
        assert watcher is not None
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self._loop is None:
            self._loop = loop
            if watcher.fileno >= 0:
                loop.add_reader(watcher.fileno, self._on_events)
        if watcher.polling and (self._poller is None or self._poller.done()):
            self._poller = loop.create_task(self._poll())

    def _on_events(self) -> None:
        if self._watcher is None:
            return
        self._pending |= self._watcher.changed()
        if self._pending:
            task = asyncio.get_running_loop().create_task(self._flush())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _poll(self) -> None:
        watcher = self._watcher
        assert watcher is not None
        interval = _MIN_POLL
        while True:
            await asyncio.sleep(interval)
            started = time.monotonic()
            try:
                self._pending |= await asyncio.to_thread(watcher.poll)
                await self._flush()
            except Exception:
                log.exception("polling hot-reload directories failed")
            # Big trees are walked less often, so polling never takes much of a core.
            interval = max(_MIN_POLL, 20 * (time.monotonic() - started))

    async def _flush(self) -> None:
        async with self._lock:
            while self._pending:
                changed, self._pending = self._pending, set()
                for directory in sorted(changed):
                    users = sorted(self._users.get(directory, ()))
                    if users:
                        log.info(
                            "hot reload: %s changed; replacing environments of %s",
                            directory,
                            ", ".join(f"{f}:{v}" for f, v in users),
                        )
                    for function, version in users:
                        await self.invoker.retire(function, version)

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        for task in list(self._tasks):
            task.cancel()
        if self._watcher is not None:
            if self._loop is not None and self._watcher.fileno >= 0:
                self._loop.remove_reader(self._watcher.fileno)
            self._watcher.close()
            self._watcher = None


def _refuse_outside_links(directory: Path, allowed: tuple[Path, ...]) -> None:
    """A snapshot copies what links point to; links leading out of the allowed paths would
    copy host files into a downloadable package, so they are refused."""
    for current, dirs, files in os.walk(directory):
        for name in dirs + files:
            path = os.path.join(current, name)
            if not os.path.islink(path):
                continue
            target = Path(os.path.realpath(path))
            if not any(target == root or root in target.parents for root in allowed):
                raise InvalidParameterValueException(
                    f"Cannot snapshot {directory}: the symbolic link {path} leads outside the "
                    "allowed hot-reload paths."
                )


def hot_environment(code: dict[str, Any]) -> dict[str, str]:
    """Variables a hot-reload function runs with: no Python bytecode cache, written or read.

    Python trusts a cached ``.pyc`` whose source has the same size and whole-second time, so
    an edit that keeps the size within the second of the previous one would run stale code.
    The cache prefix is a path under ``/dev/null``, which can never be created.
    """
    if not is_hot_reload(code):
        return {}
    return {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": "/dev/null/no-bytecode"}


def hot_location(code: dict[str, Any]) -> str | None:
    """GetFunction's ``Code.Location`` of a hot-reload function: the directory as a
    ``file://`` URL (there is no package to download), or None for other code."""
    return Path(code[CODE_KEY]).as_uri() if is_hot_reload(code) else None
