"""Getting the status socket: bound by the daemon, or inherited from systemd socket activation.

Guarantees of :func:`bind_unix`:

- the socket file is mode 0660 from the moment it carries its final name: it is bound under a
  temporary name in the same directory, chmod-ed, then renamed over the final path, so no
  process umask is touched and there is no window with wider permissions;
- a missing directory is created with mode 0750 (an existing one is left as it is: systemd's
  ``RuntimeDirectoryMode=`` owns it);
- a path that exists and is not a socket is never removed: :class:`SocketPathError` says what is
  there; a socket file that nobody answers on (a crashed daemon's) is replaced; a socket file on
  which another process answers makes :class:`SocketPathError` (two daemons, one socket).

:func:`inherited_socket` implements sd_listen_fds(3) for one socket: it takes fd 3 only when
``$LISTEN_PID`` is this process and ``$LISTEN_FDS`` is at least 1, and removes the variables from
the environment it was given so that child processes do not take the socket too.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat
from collections.abc import MutableMapping
from pathlib import Path
from typing import Final

SD_LISTEN_FDS_START: Final = 3
SOCKET_MODE: Final = 0o660
DIRECTORY_MODE: Final = 0o750
_MAX_PATH: Final = 107  # sun_path is 108 bytes including the terminating NUL


class SocketPathError(Exception):
    """The status socket cannot be created at the configured path; the message says why."""


def _answers(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(str(path))
    except OSError:
        return False
    finally:
        probe.close()
    return True


def bind_unix(path: Path, *, backlog: int = 64) -> socket.socket:
    """Bind and listen on ``path`` (see the module docstring); returns a non-blocking socket.

    On error nothing is left behind: no temporary file, and an existing non-socket untouched.
    """
    if len(os.fsencode(path)) > _MAX_PATH:
        raise SocketPathError(
            f"{path}: the path is longer than {_MAX_PATH} bytes, too long for a Unix socket"
        )
    directory = path.parent
    if not directory.exists():
        try:
            directory.mkdir(mode=DIRECTORY_MODE, parents=True)
            os.chmod(directory, DIRECTORY_MODE)  # mkdir's mode is filtered by the umask
        except OSError as exc:
            raise SocketPathError(
                f"{directory}: cannot create the directory: {exc.strerror}"
            ) from None
    try:
        existing = os.lstat(path)
    except FileNotFoundError:
        existing = None
    if existing is not None:
        if not stat.S_ISSOCK(existing.st_mode):
            raise SocketPathError(
                f"{path}: exists and is not a socket; move it away or set "
                "[daemon] status_socket to another path"
            )
        if _answers(path):
            raise SocketPathError(
                f"{path}: another process answers on this socket (is a second daemon running "
                "with the same configuration?)"
            )
    temporary = directory / f".{path.name}.{os.getpid()}.tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temporary)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(temporary))
        try:
            os.chmod(temporary, SOCKET_MODE)
            os.rename(temporary, path)
        except OSError:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise SocketPathError(f"{path}: cannot bind the status socket: {exc.strerror}") from None
    return sock


def identity(path: Path) -> tuple[int, int] | None:
    """``(st_dev, st_ino)`` of the file at ``path``, or ``None`` when there is none."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    return (info.st_dev, info.st_ino)


def remove_socket(path: Path, bound: tuple[int, int] | None) -> None:
    """Remove ``path`` only if it is still the file we bound (``bound`` from :func:`identity`).

    A successor daemon that already replaced the file keeps its socket.
    """
    if bound is not None and identity(path) == bound:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def inherited_socket(
    environ: MutableMapping[str, str], *, pid: int | None = None
) -> socket.socket | None:
    """The listening Unix socket systemd passed as fd 3, or ``None`` when none was passed.

    Raises :class:`SocketPathError` when systemd passed something that is not a listening
    ``AF_UNIX`` stream socket (a unit file mistake, reported instead of half-working).
    """
    listen_pid = environ.get("LISTEN_PID", "")
    listen_fds = environ.get("LISTEN_FDS", "")
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        environ.pop(name, None)
    own = os.getpid() if pid is None else pid
    if not listen_pid.isdigit() or int(listen_pid) != own:
        return None
    if not listen_fds.isdigit() or int(listen_fds) < 1:
        return None
    try:
        sock = socket.socket(fileno=SD_LISTEN_FDS_START)
    except OSError as exc:
        raise SocketPathError(f"fd 3 from systemd is not a socket: {exc.strerror}") from None
    if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
        sock.detach()
        raise SocketPathError(
            "the socket systemd passed is not a Unix stream socket: use ListenStream=/path"
        )
    try:
        accepting = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    except OSError as exc:
        if exc.errno != errno.ENOPROTOOPT:
            raise
        accepting = 1
    if not accepting:
        sock.detach()
        raise SocketPathError("the socket systemd passed is not listening (use Accept=no)")
    os.set_inheritable(sock.fileno(), False)
    sock.setblocking(False)
    return sock
