"""Sandboxes made of Linux namespaces, cgroups, a private root and seccomp.

Each sandbox's first process (its init) is forked by the sandbox launcher (``launcher.py``,
one long-lived privileged process per backend, see ``zygote.py``) as process 1 of a new PID
namespace; the init builds the rest from inside (``inside.py``). A Python runtime is forked
instead from the zygote of its interpreter, a launcher with the runtime client preloaded
(``zygotes.py``), whose sandboxes are partly built before they are needed. The server computes
everything the init needs, the plan: the file system steps (``mounts.py``), identity, limits,
the seccomp program (``seccomp.py``). It then watches the init through a pidfd, reads its
output pipe, and hears from it over a control socket: the Runtime API listener in isolated
networking, the runtime's exit status, setup errors.

What this gives a function, and what it costs, is described in ``docs/sandboxes.md``. In
short: its own mount, PID, IPC, UTS and cgroup namespaces (and network namespace in
``isolated`` mode); a read-only root with only the runtime's needs, ``/var/task``,
``/var/runtime`` and a private ``/tmp``; a uid of its own, no capabilities, ``no_new_privs``
and a seccomp filter; the cgroup limits of the process backend. Killing the init kills every
process in the namespace, and the init kills itself when the server's end of the control
socket closes, so no function process outlives its sandbox or the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import secrets
import select
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lambdalite.sandbox import cgroups, mounts, mounttree, peers, seccomp
from lambdalite.sandbox import rootfs as image_root
from lambdalite.sandbox.base import Layout, Limits, OutputCallback
from lambdalite.sandbox.namespace_sandbox import NamespaceSandbox as NamespaceSandbox
from lambdalite.sandbox.output import LinePump
from lambdalite.sandbox.process import ProcessSandboxBackend, SandboxOptions
from lambdalite.sandbox.zygote import Spawned, Zygote, receive, sweep_launchers

if TYPE_CHECKING:
    from lambdalite.config import Settings

log = logging.getLogger(__name__)

NETWORK_MODES = ("host", "isolated")
_UID_RANGE = (1 << 30, (1 << 31) - 2)  # a uid per sandbox, drawn at random from here
_View = tuple[list[str], list[str]]  # host paths a command needs shown, the command as seen


class NamespaceUnavailable(Exception):
    """Namespace sandboxes cannot run on this host; the message says why."""


@dataclass(frozen=True)
class NamespaceOptions(SandboxOptions):
    network: str = "host"  # host | isolated
    # Where the empty directory the sandbox roots are built on lives (created if missing).
    state_dir: Path | None = None
    api_port: int = 9001  # the Runtime API's port inside isolated sandboxes, as on Lambda
    hostname: str = "localhost"
    probe: bool = True  # run one sandbox at prepare() to prove the host supports them

    @classmethod
    def from_settings(cls, settings: Settings) -> NamespaceOptions:
        return cls(
            memory_enforcement=settings.memory_enforcement,
            network=settings.network_mode,
            state_dir=settings.data_dir / "sandbox",
        )


class NamespaceSandboxBackend(ProcessSandboxBackend):
    """Spawns ``NamespaceSandbox`` instances; see the module docstring."""

    def __init__(self, options: NamespaceOptions | Settings | None = None) -> None:
        if options is None:
            options = NamespaceOptions()
        elif not isinstance(options, NamespaceOptions):
            options = NamespaceOptions.from_settings(options)
        if options.network not in NETWORK_MODES:
            raise ValueError(f"network mode must be one of {NETWORK_MODES}")
        super().__init__(options)
        self.ns_options = options
        self._ready = False
        self._python = os.path.realpath(sys.executable)
        self._zygote: Zygote | None = None
        self._system: mounts.SystemView | None = None
        self._seccomp = b""
        self._root_dir = Path()
        self._check_peers = False
        self._trees = False  # whether forked children pivot ahead (``mounttree.py``)
        self._uids: set[int] = set()
        self._views: dict[tuple[tuple[str, ...], tuple[Path, ...]], _View] = {}

    # -- setup ----------------------------------------------------------------------------
    def prepare(self) -> None:
        """Check the host, sweep a crashed server's leftovers, prove a sandbox starts.

        Raises ``NamespaceUnavailable`` (with the reason) when sandboxes cannot run here.
        """
        if self._ready:
            return
        super().prepare()
        if os.geteuid() != 0:
            raise NamespaceUnavailable(
                f"namespace sandboxes need root (the server runs as uid {os.geteuid()})"
            )
        try:
            self._seccomp = seccomp.build()
        except seccomp.UnsupportedArchitecture as exc:
            raise NamespaceUnavailable(str(exc)) from exc
        state = self._state_dir()
        try:
            self._root_dir = state / "root"
            self._root_dir.mkdir(parents=True, exist_ok=True)
            state.chmod(0o700)
        except OSError as exc:
            raise NamespaceUnavailable(f"cannot prepare {state}: {exc}") from exc
        sweep_launchers(state, self._owner)
        isolated = self.ns_options.network == "isolated"
        self._system = mounts.system_view(host_network=not isolated)
        self._check_peers = not isolated and peers.lookups_work()
        self._trees = mounttree.available()
        if not isolated and not self._check_peers:
            log.warning(
                "socket diagnostics unavailable: environments sharing the host network are "
                "not kept from each other's Runtime API"
            )
        self._zygote = Zygote(self._python, [f"--owner={self._owner}", f"--state={state}"])
        self._ready = True
        try:
            self._zygote.start()
            if self.ns_options.probe:
                self._probe()
        except (OSError, subprocess.SubprocessError) as exc:
            self._ready = False
            self._zygote.close()
            raise NamespaceUnavailable(f"a test sandbox failed: {exc}") from exc

    @property
    def isolation(self) -> str:
        network = (
            "own network namespace, Runtime API only"
            if self.ns_options.network == "isolated"
            else "host network"
        )
        memory = "cgroup limits" if self.mode == "cgroup" else f"memory {self.mode}"
        return (
            "namespace sandbox (mount, pid, ipc, uts, cgroup namespaces; private read-only "
            f"root; uid per environment; no capabilities; seccomp; {memory}; {network})"
        )

    def layout(self, code_dir: Path, runtime_dir: Path, opt_dir: Path | None = None) -> Layout:
        return Layout(code_dir, runtime_dir, mounts.TASK_ROOT, mounts.RUNTIME_DIR)

    @property
    def runtime_api_address(self) -> str | None:
        if self.ns_options.network == "isolated":
            return f"127.0.0.1:{self.ns_options.api_port}"
        return None

    # -- spawning -------------------------------------------------------------------------
    def spawn(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: Path,
        limits: Limits,
        on_output: OutputCallback,
        label: str = "",
        runtime_dir: Path | None = None,
        opt_dir: Path | None = None,
        rootfs: Path | None = None,
    ) -> NamespaceSandbox:
        self.prepare()
        loop = asyncio.get_running_loop()
        if rootfs is not None:
            plan = self._image_plan(argv, env, cwd, rootfs, limits)
        else:
            plan = self._plan(argv, env, cwd, runtime_dir, limits, opt_dir)
        forked = None
        if self.zygotes is not None and rootfs is None:
            forked = self._fork(argv, env, cwd, opt_dir, plan, limits, label)
        if forked is not None:
            spawned, group = forked
        else:
            spawned, group = self._launch(plan, limits, label)
        pump = LinePump(spawned.output_fd, on_output, loop)
        sandbox = NamespaceSandbox(self, spawned, pump, group, limits, plan["uid"])
        sandbox.polled_enforcement = group is None and self.mode != "off"
        self._track(sandbox)
        return sandbox

    def _launch(
        self, plan: dict[str, Any], limits: Limits, label: str
    ) -> tuple[Spawned, cgroups.Cgroup | None]:
        """Start a sandbox through the plain launcher: its program is exec'd."""
        group = self._new_cgroup(label, limits)
        if group is not None:
            plan["cgroups"] = [os.fsdecode(p) for p in group.procs_files()]
        assert self._zygote is not None
        try:
            return self._zygote.spawn(plan), group
        except BaseException:
            if group is not None:
                group.remove()
            self._release_uid(plan["uid"])
            raise

    def _fork(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: Path,
        opt_dir: Path | None,
        plan: dict[str, Any],
        limits: Limits,
        label: str,
    ) -> tuple[Spawned, cgroups.Cgroup | None] | None:
        """Fork the runtime from its interpreter's zygote, when it can be (``zygotes.py``)."""
        assert self.zygotes is not None
        libraries = {mounts.TASK_ROOT: cwd, mounts.OPT_DIR: opt_dir}
        if self.zygotes.interpreter_for(argv, env, libraries) is None:
            return None
        assert self._system is not None
        # The system part of the root is the same for every sandbox: children forked ahead
        # of need build it while they wait (the plan starts with it).
        system = len(self._system.ops)
        rest = plan["ops"][system:]
        # So are /proc (of the sandbox's own PID namespace), /dev, and for every function of
        # this zygote the runtime client's directory and the interpreter's own files.
        fixed = [op for op in rest if _same_for_every_function(op)]
        early = {key: plan[key] for key in ("root", "hostname", "isolated", "api_port")}
        early["ops"] = plan["ops"][:system] + fixed
        # Process 2 also takes the steps that do not depend on the function while it waits.
        early["settle"] = {"rlimits": plan["rlimits"], "seccomp": plan["seccomp"]}
        ops = [op for op in rest if op not in fixed]
        trees: list[int] = []
        if self._trees:  # they pivot while they wait; host directories come as mount trees
            early["pivot"] = True
            try:
                ops, trees = mounttree.detach_binds(ops)
            except OSError as exc:
                log.debug("cannot clone the mounts of %s (%s): exec", cwd, exc)
                return None
        # Interpreters are shown at their real path, which keys their zygote.
        program = plan["argv"]
        try:
            return self.zygotes.spawn(
                program[0],
                os.path.dirname(program[1]),
                {**plan, "ops": ops},
                "namespace",
                limits,
                lambda wanted, ahead: self._new_cgroup("ahead" if ahead else label, wanted),
                early,
                trees,
            )
        finally:
            mounttree.close_all(trees)  # the sandbox holds its own references now

    def _zygote_markers(self) -> list[str]:
        return [f"--owner={self._owner}", f"--state={self._state_dir()}"]

    def _command_view(self, argv: Sequence[str], skip: list[Path], layout: Layout) -> _View:
        """The host paths ``argv`` needs shown, and ``argv`` as the program sees it: resolved
        once per command and directories (the same for every cold start of a function)."""
        assert self._system is not None
        key = (tuple(argv), tuple(skip))
        found = self._views.get(key)
        if found is None:
            if len(self._views) >= 512:
                self._views.clear()
            program = [mounts.visible_path(arg, layout) for arg in argv]
            found = self._views[key] = (mounts.runtime_paths(argv, self._system, skip), program)
        return list(found[0]), list(found[1])

    def _zygote_program(self, argv: Sequence[str], runtime_dir: Path) -> list[str]:
        layout = self.layout(Path(mounts.TASK_ROOT), runtime_dir)
        return [mounts.visible_path(arg, layout) for arg in argv]

    def _state_dir(self) -> Path:
        return self.ns_options.state_dir or Path(f"/tmp/lambdalite-sandbox-{os.getpid()}")

    def _plan(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: Path,
        runtime_dir: Path | None,
        limits: Limits,
        opt_dir: Path | None = None,
    ) -> dict[str, Any]:
        assert self._system is not None
        if not cwd.is_dir():
            raise OSError(errno.ENOENT, f"No such directory: {str(cwd)!r}")
        skip = [cwd] + ([runtime_dir] if runtime_dir is not None else [])
        skip += [opt_dir] if opt_dir is not None else []
        layout = self.layout(cwd, runtime_dir or cwd)
        extra, program = self._command_view(argv, skip, layout)
        mounts.check_executable(program[0] if program else "", layout)
        uid = self._allocate_uid()
        ops = mounts.sandbox_ops(
            self._system,
            code_dir=cwd,
            runtime_dir=runtime_dir,
            opt_dir=opt_dir,
            extra=extra,
            tmp_mb=limits.ephemeral_mb,
            uid=uid,
            gid=uid,
            hostname=self.ns_options.hostname,
        )
        return {
            "root": str(self._root_dir),
            "ops": ops,
            "hostname": self.ns_options.hostname,
            "isolated": self.ns_options.network == "isolated",
            "api_port": self.ns_options.api_port,
            "cgroups": [],
            "rlimits": _rlimits(limits),
            "uid": uid,
            "gid": uid,
            "seccomp": self._seccomp,
            "argv": program,
            "env": dict(env),
            "cwd": mounts.TASK_ROOT,
        }

    def _image_plan(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        workdir: Path,
        rootfs: Path,
        limits: Limits,
    ) -> dict[str, Any]:
        """The plan of a sandbox whose root is a container image (see ``rootfs.py``):
        ``argv`` and ``workdir`` are paths inside the image, nothing of the host is shown."""
        image_root.check_program(rootfs, argv[0] if argv else "", str(workdir))
        isolated = self.ns_options.network == "isolated"
        ops = image_root.image_ops(rootfs, tmp_mb=limits.ephemeral_mb, host_network=not isolated)
        uid = self._allocate_uid()
        return {
            "root": str(self._root_dir),
            "ops": ops,
            "hostname": self.ns_options.hostname,
            "isolated": isolated,
            "api_port": self.ns_options.api_port,
            "cgroups": [],
            "rlimits": _rlimits(limits),
            "uid": uid,
            "gid": uid,
            "seccomp": self._seccomp,
            "argv": list(argv),
            "env": dict(env),
            "cwd": str(workdir),
        }

    def _allocate_uid(self) -> int:
        while True:
            uid = _UID_RANGE[0] + secrets.randbelow(_UID_RANGE[1] - _UID_RANGE[0])
            if uid not in self._uids:
                self._uids.add(uid)
                return uid

    def _release_uid(self, uid: int) -> None:
        self._uids.discard(uid)

    def _probe(self) -> None:
        """Run one sandbox to completion (synchronously) and expect a clean exit."""
        assert self._zygote is not None
        with tempfile.TemporaryDirectory(prefix="lambdalite-probe-") as code_dir:
            os.chmod(code_dir, 0o755)
            plan = self._plan(
                [self._python, "-I", "-S", "-c", "import os; os.listdir('/var/task')"],
                {},
                Path(code_dir),
                None,
                Limits(memory_mb=128, ephemeral_mb=1),
            )
            self._release_uid(plan["uid"])
            spawned = self._zygote.spawn(plan)
            try:
                # poll, not select: the server may hold more than FD_SETSIZE descriptors.
                poller = select.poll()
                poller.register(spawned.pidfd, select.POLLIN)
                if not poller.poll(10_000):
                    signal.pidfd_send_signal(spawned.pidfd, signal.SIGKILL)
                    raise OSError(errno.ETIMEDOUT, "the test sandbox did not finish")
                messages, _closed = receive(spawned.ctl)
                if (b"exit 0", []) not in messages:
                    os.set_blocking(spawned.output_fd, False)
                    with contextlib.suppress(BlockingIOError):
                        detail = os.read(spawned.output_fd, 4096).decode(errors="replace")
                        raise OSError(errno.EPERM, detail.strip() or "no exit status reported")
                    raise OSError(errno.EPERM, "no exit status reported")
            finally:
                spawned.close()

    async def close(self) -> None:
        await super().close()
        if self._zygote is not None:
            self._zygote.close()
        self._ready = False


# -- helpers ------------------------------------------------------------------------------
def _same_for_every_function(op: tuple[Any, ...]) -> bool:
    """Whether a step of a forked sandbox's root is the same for every function forked from
    the same zygote (so children forked ahead of need take it before their plan): ``/proc``,
    ``/dev``, ``/var``, the runtime clients at ``/var/runtime`` (one directory per server) and
    host paths the interpreter needs shown at their own place."""
    target = op[1]
    if target in ("/proc", "/dev", "/var", mounts.RUNTIME_DIR) or target[:5] == "/dev/":
        return True
    return op[0] == "bind" and op[2] == target and target[:5] not in ("/var/", "/tmp", "/etc/")


def _rlimits(limits: Limits) -> list[tuple[int, int, int]]:
    import resource

    return [
        (resource.RLIMIT_NOFILE, limits.nofile, limits.nofile),
        # Counted per uid, and every sandbox has its own: a per-sandbox limit even where
        # no pids cgroup exists.
        (resource.RLIMIT_NPROC, limits.nproc, limits.nproc),
        (resource.RLIMIT_CORE, 0, 0),
    ]
