"""External check commands (``--check``) for bisect, reduce and debug build: one way to run them.

A check is a shell command string (bisect, debug build) or an argument list run without a shell (reduce's
``--check CMD ...``). Each job passes named values (``model``, ``inputs``, ``engine``, ``step``, ...): ``{name}`` in
the command is replaced by the value (shell-quoted in a shell string) and ``TRTDBG_NAME`` carries it in the
environment. Every run has a timeout (the process group is killed); ``--fail-regex`` patterns (as Polygraphy's
``--fail-regex`` for check commands) mark a run failing when they match its stdout or stderr, whatever the exit code.
Output goes to a log file. A timed-out or crashed check is a failed run with the reason in its detail (one line).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from engine_core.errors import TrtdbgError

DEFAULT_TIMEOUT = 600.0
_SIGNALS = {int(sig): sig.name for sig in signal.Signals}
_SHELL_WORDS = frozenset({"exit", "test", "[", "true", "false", "cd", "export", "source", ".", "if", "for"})


@dataclass(frozen=True)
class CheckResult:
    """One run: ``passed`` (exit 0 and no ``--fail-regex`` match) and, when not, why (one line)."""

    passed: bool
    detail: str | None = None


@dataclass(frozen=True)
class CheckCommand:
    """A pass/fail command: exit 0 = pass, unless a ``fail_regex`` pattern matches its output."""

    command: str | tuple[str, ...]
    """A shell command string, or an argument list run without a shell."""
    timeout: float = DEFAULT_TIMEOUT
    """Seconds before the run is killed and counts as failed."""
    fail_regex: tuple[str, ...] = ()
    option: str = "--check"
    """The option name used in messages."""
    _patterns: tuple[re.Pattern[str], ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.command, str):
            object.__setattr__(self, "command", tuple(self.command))
        object.__setattr__(self, "fail_regex", tuple(self.fail_regex))
        if not (self.timeout > 0):  # also refuses NaN
            raise TrtdbgError(f"{self.option}-timeout must be more than 0 seconds (got {self.timeout!r})")
        patterns = []
        for text in self.fail_regex:
            try:
                patterns.append(re.compile(text, re.MULTILINE))
            except re.error as exc:
                raise TrtdbgError(f"--fail-regex: '{text}' is not a regular expression ({exc})") from None
        object.__setattr__(self, "_patterns", tuple(patterns))

    @property
    def text(self) -> str:
        """The command as the user wrote it."""
        return self.command if isinstance(self.command, str) else shlex.join(self.command)

    def verify(self) -> None:
        """Fail early (one line) when the command is empty or its program does not exist."""
        if isinstance(self.command, str):
            try:
                words = shlex.split(self.command)
            except ValueError as exc:
                raise TrtdbgError(f"{self.option}: cannot parse '{self.command}': {exc}") from None
            program = next((w for w in words if "=" not in w.split("/")[0]), None)
        else:
            words = list(self.command)
            program = words[0] if words else None
        if not words or program is None:
            raise TrtdbgError(
                f"{self.option}: the command is empty; give the program that decides pass (exit 0) or fail"
            )
        if os.sep in program:
            if not os.path.isfile(program):
                raise TrtdbgError(f"{self.option}: '{program}' does not exist; give the path of the check script")
            if not os.access(program, os.X_OK):
                raise TrtdbgError(
                    f"{self.option}: '{program}' is not executable; chmod +x it or run it through its interpreter"
                )
        elif shutil.which(program) is None and program not in _SHELL_WORDS:
            raise TrtdbgError(f"{self.option}: program '{program}' is not on PATH; give its full path")

    def expand(self, values: Mapping[str, str]) -> str | list[str]:
        """The command with ``{name}`` replaced by ``values[name]`` (shell-quoted in a shell string)."""
        if isinstance(self.command, str):
            text = self.command
            for name, value in values.items():
                text = text.replace("{" + name + "}", shlex.quote(value))
            return text
        out = []
        for word in self.command:
            for name, value in values.items():
                word = word.replace("{" + name + "}", value)
            out.append(word)
        return out

    def run(self, values: Mapping[str, str], log: str | os.PathLike[str], env: Mapping[str, str] = {}) -> CheckResult:
        """Run once with ``values`` (placeholders and ``TRTDBG_NAME`` variables) plus ``env``; output to ``log``.

        A program that cannot be started (exit 126/127, or no such file) raises :class:`TrtdbgError`."""
        log = Path(log)
        full = {**os.environ, **{f"TRTDBG_{k.upper()}": v for k, v in values.items()}, **env}
        command = self.expand(values)
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "wb") as out:
            try:
                proc = subprocess.Popen(
                    command,
                    shell=isinstance(command, str),
                    env=full,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            except OSError as exc:
                raise TrtdbgError(f"{self.option}: cannot run '{self.text}': {exc.strerror or exc}") from None
            try:
                rc = proc.wait(timeout=self.timeout)
            except subprocess.TimeoutExpired:
                _kill(proc)
                return CheckResult(False, f"timed out after {self.timeout:g} s")
            except BaseException:
                _kill(proc)
                raise
        tail = _tail(log)
        if rc in (126, 127):
            raise TrtdbgError(
                f"{self.option} could not run its command (exit {rc}: {tail or 'not found or not executable'})"
            )
        signum = -rc if rc < 0 else rc - 128 if rc > 128 else 0  # a shell reports a signal death as 128 + N
        if signum in _SIGNALS:
            return CheckResult(False, f"crashed ({_SIGNALS[signum]})")
        matched = self._match(log)
        if matched is not None:
            return CheckResult(False, f"output matched --fail-regex '{matched}'")
        return CheckResult(rc == 0, None if rc == 0 else f"exit {rc}" + (f": {tail}" if tail else ""))

    def _match(self, log: Path) -> str | None:
        if not self._patterns:
            return None
        try:
            text = log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
        return next((p.pattern for p in self._patterns if p.search(text)), None)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _tail(log: Path) -> str:
    try:
        lines = [ln for ln in log.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1].strip()[:200] if lines else ""


def check_command(
    command: str | Sequence[str] | None, timeout: float, fail_regex: Sequence[str] = (), option: str = "--check"
) -> CheckCommand | None:
    """A verified :class:`CheckCommand`, or ``None`` without a command."""
    if command is None:
        return None
    check = CheckCommand(command if isinstance(command, str) else tuple(command), timeout, tuple(fail_regex), option)
    check.verify()
    return check
