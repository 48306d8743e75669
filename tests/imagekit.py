"""Building small container images in tests, without Docker or a registry.

``layer`` makes a layer tar from a dict of entries; ``docker_save`` and ``oci_layout`` write
the two archive formats lambdalite loads; ``static_bootstrap`` compiles a tiny Runtime API
client in C (``gcc -static``), which needs nothing else in the image to run. The bootstrap
answers every event with what it sees: its argv, working directory, uid, a few variables,
whether the paths in ``$PROBE`` exist, whether ``/`` and ``/tmp`` are writable, and the event.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Dir:
    mode: int = 0o755


@dataclass(frozen=True)
class Link:
    target: str
    hard: bool = False


@dataclass(frozen=True)
class File:
    data: bytes
    mode: int = 0o644


Entry = bytes | File | Dir | Link


def layer(entries: dict[str, Entry]) -> bytes:
    """An uncompressed layer tar holding ``entries`` (parents are not added implicitly)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, entry in entries.items():
            info = tarfile.TarInfo(name)
            info.mtime = 1_700_000_000
            if isinstance(entry, Dir):
                info.type, info.mode = tarfile.DIRTYPE, entry.mode
                tar.addfile(info)
            elif isinstance(entry, Link):
                info.type = tarfile.LNKTYPE if entry.hard else tarfile.SYMTYPE
                info.linkname = entry.target
                tar.addfile(info)
            else:
                file = entry if isinstance(entry, File) else File(entry)
                info.size, info.mode = len(file.data), file.mode
                tar.addfile(info, io.BytesIO(file.data))
    return buf.getvalue()


def tree_layer(root: Path, prefix: str = "", skip: tuple[str, ...] = ()) -> bytes:
    """A layer of the host directory ``root``, placed at ``prefix`` in the image."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:

        def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
            parts = Path(info.name).parts
            if any(p in skip or p == "__pycache__" for p in parts):
                return None
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            return info

        tar.add(root, arcname=prefix.strip("/") or ".", filter=keep)
    return buf.getvalue()


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def config(layers: list[bytes], **run: Any) -> bytes:
    """An image config: ``run`` holds Entrypoint, Cmd, Env, WorkingDir, User."""
    document = {
        "architecture": "amd64",
        "os": "linux",
        "config": run,
        "rootfs": {"type": "layers", "diff_ids": [digest(t) for t in layers]},
    }
    return json.dumps(document).encode()


def docker_save(path: Path, layers: list[bytes], tags: list[str], **run: Any) -> Path:
    """A ``docker save`` archive (classic layout: ``<id>/layer.tar``, ``<id>.json``)."""
    cfg = config(layers, **run)
    cfg_name = digest(cfg).split(":")[1] + ".json"
    members: dict[str, bytes] = {cfg_name: cfg}
    names = []
    for tar in layers:
        name = digest(tar).split(":")[1] + "/layer.tar"
        members[name] = tar
        names.append(name)
    manifest = [{"Config": cfg_name, "RepoTags": tags, "Layers": names}]
    members["manifest.json"] = json.dumps(manifest).encode()
    _write_tar(path, members)
    return path


def oci_layout(
    path: Path, layers: list[bytes], name: str | None, *, archive: bool, **run: Any
) -> str:
    """An OCI image layout (a directory) or archive (a tar of one) with gzip layers; returns
    the manifest digest."""
    cfg = config(layers, **run)
    blobs = {digest(cfg): cfg}
    descriptors = []
    for tar in layers:
        packed = gzip.compress(tar, mtime=0)
        blobs[digest(packed)] = packed
        descriptors.append(
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": digest(packed),
                "size": len(packed),
            }
        )
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": digest(cfg),
                "size": len(cfg),
            },
            "layers": descriptors,
        }
    ).encode()
    blobs[digest(manifest)] = manifest
    entry: dict[str, Any] = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": digest(manifest),
        "size": len(manifest),
    }
    if name:
        entry["annotations"] = {"org.opencontainers.image.ref.name": name}
    members = {f"blobs/sha256/{d.split(':')[1]}": b for d, b in blobs.items()}
    members["oci-layout"] = b'{"imageLayoutVersion": "1.0.0"}'
    members["index.json"] = json.dumps({"schemaVersion": 2, "manifests": [entry]}).encode()
    if archive:
        _write_tar(path, members)
    else:
        for member, data in members.items():
            (path / member).parent.mkdir(parents=True, exist_ok=True)
            (path / member).write_bytes(data)
    return digest(manifest)


def _write_tar(path: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


BOOTSTRAP_C = r"""
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

static char buf[1 << 20], out[1 << 21];

static int api(void) {
    const char *addr = getenv("AWS_LAMBDA_RUNTIME_API");
    char host[64]; int port = 9001;
    if (!addr) { fprintf(stderr, "no AWS_LAMBDA_RUNTIME_API\n"); exit(2); }
    snprintf(host, sizeof host, "%s", addr);
    char *colon = strchr(host, ':');
    if (colon) { *colon = 0; port = atoi(colon + 1); }
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET; sa.sin_port = htons(port);
    inet_pton(AF_INET, host, &sa.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) { perror("connect"); exit(2); }
    return fd;
}

/* One request, Connection: close; the whole response ends up in buf. */
static size_t call(const char *head, const char *body, size_t len) {
    int fd = api();
    write(fd, head, strlen(head));
    if (len) write(fd, body, len);
    size_t got = 0; ssize_t n;
    while (got < sizeof buf - 1 && (n = read(fd, buf + got, sizeof buf - 1 - got)) > 0) got += n;
    buf[got] = 0; close(fd);
    return got;
}

static char *esc(char *o, const char *s) {
    *o++ = '"';
    for (; s && *s; s++) {
        if (*s == '"' || *s == '\\') { *o++ = '\\'; *o++ = *s; }
        else if ((unsigned char)*s < 0x20) { o += sprintf(o, "\\u%04x", *s); }
        else *o++ = *s;
    }
    *o++ = '"'; *o = 0;
    return o;
}

static int writable(const char *dir) {
    char path[256]; snprintf(path, sizeof path, "%s/.probe-%d", dir, getpid());
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0) return 0;
    close(fd); unlink(path); return 1;
}

int main(int argc, char **argv) {
    char head[512], id[128], cwd[512];
    for (;;) {
        size_t got = call("GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\n"
                          "Host: runtime\r\nConnection: close\r\n\r\n", 0, 0);
        char *h = strcasestr(buf, "Lambda-Runtime-Aws-Request-Id:");
        char *body = strstr(buf, "\r\n\r\n");
        if (!h || !body) { fprintf(stderr, "bad response: %s\n", buf); return 3; }
        sscanf(h + 30, " %127[^\r\n]", id);
        body += 4;
        char *o = out;
        o += sprintf(o, "{\"argv\": [");
        for (int i = 0; i < argc; i++) { if (i) *o++ = ','; o = esc(o, argv[i]); }
        if (!getcwd(cwd, sizeof cwd)) strcpy(cwd, "?");
        o += sprintf(o, "], \"cwd\": "); o = esc(o, cwd);
        o += sprintf(o, ", \"greeting\": "); o = esc(o, getenv("GREETING"));
        o += sprintf(o, ", \"handler\": "); o = esc(o, getenv("_HANDLER"));
        o += sprintf(o, ", \"task_root\": "); o = esc(o, getenv("LAMBDA_TASK_ROOT"));
        o += sprintf(o, ", \"stage\": "); o = esc(o, getenv("STAGE"));
        o += sprintf(o, ", \"path\": "); o = esc(o, getenv("PATH"));
        o += sprintf(o, ", \"uid\": %d, \"root_writable\": %s, \"tmp_writable\": %s, \"files\": {",
                     (int)getuid(), writable("/") ? "true" : "false",
                     writable("/tmp") ? "true" : "false");
        const char *probe = getenv("PROBE");
        char list[1024]; snprintf(list, sizeof list, "%s", probe ? probe : "");
        int first = 1;
        for (char *p = strtok(list, ":"); p; p = strtok(NULL, ":")) {
            struct stat st;
            if (!first) *o++ = ',';
            first = 0;
            o = esc(o, p);
            o += sprintf(o, ": %s", lstat(p, &st) == 0 ? "true" : "false");
        }
        o += sprintf(o, "}, \"event\": %s}", *body ? body : "null");
        size_t len = o - out;
        snprintf(head, sizeof head,
                 "POST /2018-06-01/runtime/invocation/%s/response HTTP/1.1\r\nHost: runtime\r\n"
                 "Content-Type: application/json\r\nContent-Length: %zu\r\n"
                 "Connection: close\r\n\r\n", id, len);
        call(head, out, len);
        (void)got;
    }
}
"""


def static_bootstrap(work: Path) -> bytes:
    """The C bootstrap above, compiled statically; its bytes."""
    if shutil.which("gcc") is None:
        raise RuntimeError("gcc is needed to build the test bootstrap")
    source = work / "bootstrap.c"
    source.write_text(BOOTSTRAP_C)
    binary = work / "bootstrap"
    subprocess.run(
        ["gcc", "-static", "-O1", "-o", str(binary), str(source)],
        check=True,
        capture_output=True,
    )
    return binary.read_bytes()


def rewrite_member(archive: Path, suffix: str, change: Callable[[bytes], bytes]) -> None:
    """Rewrite the tar ``archive`` with ``change`` applied to the member ending in ``suffix``."""
    out = io.BytesIO()
    with tarfile.open(archive) as src, tarfile.open(fileobj=out, mode="w") as dst:
        for member in src:
            stream = src.extractfile(member) if member.isfile() else None
            data = stream.read() if stream is not None else b""
            if member.name.endswith(suffix):
                data = change(data)
            member.size = len(data)
            dst.addfile(member, io.BytesIO(data))
    archive.write_bytes(out.getvalue())
