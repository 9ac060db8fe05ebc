"""The workspace folder (default ``.trtdbg/`` beside the model) and atomic writes.

Every file written by trtdbg goes through :func:`atomic_write_bytes`: a temp file in the
same directory, fsync, then ``os.replace`` — readers never see a half-written file and the
input model is never touched.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from engine_core.errors import TrtdbgError


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists but belongs to someone else
        return True
    return True


def _remove_stale_temps(target: Path) -> None:
    """Delete ``.NAME.PID.*.tmp`` files left beside ``target`` by a writer that was killed mid-write."""
    for tmp in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
        pid = tmp.name[len(target.name) + 2 :].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            try:
                tmp.unlink()
            except OSError:
                pass


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """A binary file that appears at ``path`` (parent folders created) only when the ``with`` block ends without an
    exception: a temp file in the same folder, fsync, then ``os.replace``. For writing large files in pieces.

    The temp file is ``.NAME.PID.XXXX.tmp``; one left by a killed writer (its PID is gone) is removed by the next
    write of the same file."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temps(target)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise TrtdbgError(f"cannot write {target}: {exc.strerror or exc}; choose a writable location") from exc
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; written files get the usual permissions
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise TrtdbgError(f"cannot write {target}: {exc.strerror or exc}; choose a writable location") from exc
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file + rename); create parent folders."""
    with atomic_writer(path) as f:
        f.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Atomically write UTF-8 text."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any, indent: int | None = 2) -> Path:
    """Atomically write ``obj`` as JSON."""
    return atomic_write_text(path, json.dumps(obj, indent=indent) + "\n")


def _user_cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "trtdbg"


class Workspace:
    """A folder holding results, saved inputs, marks and bisection state for one model.

    ``Workspace.for_model(model)`` picks ``.trtdbg/`` beside the model; when that folder
    cannot be created (read-only model directory) it falls back to a per-model folder in the
    user cache and says so in :attr:`note`. An explicit ``--workspace`` that is not writable
    is an error. Nothing is created until the first write.
    """

    def __init__(self, root: str | os.PathLike[str], note: str | None = None) -> None:
        self.root = Path(root)
        self.note = note

    @classmethod
    def for_model(cls, model_path: str | os.PathLike[str] | None, explicit: str | None = None) -> Workspace:
        """Choose the workspace for ``model_path`` (``explicit`` wins and must be writable)."""
        if explicit:
            ws = cls(explicit)
            ws.check_writable()
            return ws
        if model_path is None:
            return cls(Path.cwd() / ".trtdbg")
        model = Path(model_path).resolve()
        beside = model.parent / ".trtdbg"
        if _writable_dir(beside):
            return cls(beside)
        digest = hashlib.sha256(str(model).encode()).hexdigest()[:12]
        fallback = _user_cache_root() / f"{model.stem}-{digest}"
        return cls(fallback, note=f"{model.parent} is not writable; workspace is {fallback}")

    def check_writable(self) -> None:
        """Create the workspace folder and probe it with a temp file; raise :class:`TrtdbgError` if that fails."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=self.root):
                pass
        except OSError as exc:
            raise TrtdbgError(
                f"workspace {self.root} is not writable ({exc.strerror or exc}); pass --workspace DIR with a writable folder"
            ) from exc

    def path(self, *parts: str) -> Path:
        """A path inside the workspace (not created)."""
        return self.root.joinpath(*parts)

    def write_json(self, name: str, obj: Any) -> Path:
        """Atomically write ``obj`` as JSON to ``name`` inside the workspace."""
        return atomic_write_json(self.path(name), obj)

    def read_json(self, name: str) -> Any | None:
        """Read a JSON file from the workspace, or ``None`` when it does not exist."""
        p = self.path(name)
        if not p.exists():
            return None
        with open(p, encoding="utf-8") as f:
            return json.load(f)


_held_locks: dict[Path, list[int]] = {}
"""Job locks this process holds: lock file -> [open descriptor, holders]."""


class JobLock:
    """One holder of an exclusive job lock; :meth:`release` frees it (the process's end always does)."""

    def __init__(self, path: Path | None) -> None:
        self._path = path

    def release(self) -> None:
        """Give the lock up (the last holder in this process unlocks the file); idempotent."""
        path, self._path = self._path, None
        if path is None or path not in _held_locks:
            return
        held = _held_locks[path]
        held[1] -= 1
        if held[1] == 0:
            del _held_locks[path]
            os.close(held[0])


def lock_job(ws: Workspace, job: str) -> JobLock:
    """Take the exclusive lock of ``job`` (e.g. ``bisect``) in ``ws``; holders in this process share it.

    Two processes running one job in one workspace would overwrite each other's state, so the second
    gets a one-line error naming the first. The lock is an ``flock`` on ``JOB/lock``: the kernel drops
    it when its process ends, so a run killed with ``kill -9`` leaves no stale lock behind.
    """
    path = ws.path(job, "lock").resolve()
    if path in _held_locks:
        _held_locks[path][1] += 1
        return JobLock(path)
    try:
        import fcntl
    except ImportError:  # no flock (Windows): no cross-process lock
        return JobLock(None)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
        os.close(fd)
        raise TrtdbgError(
            f"another trtdbg {job} (pid {holder}) is running in workspace {ws.root}; wait for it to finish, "
            "or pass --workspace DIR to run a separate one"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _held_locks[path] = [fd, 1]
    return JobLock(path)


def _writable_dir(path: Path) -> bool:
    """True when ``path`` exists as a writable folder or could be created."""
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            return False
        probe = probe.parent
    # the mode bits too: root may write anywhere, but a folder marked read-only is meant to stay untouched
    return probe.is_dir() and os.access(probe, os.W_OK | os.X_OK) and bool(probe.stat().st_mode & 0o222)
