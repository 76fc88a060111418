"""Interleaved child output: one line per write, prefixed with a coloured, padded label (``api | ...``)."""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import TextIO

from rich.console import Console
from rich.text import Text

_COLOURS = ("cyan", "magenta", "green", "yellow", "blue", "bright_cyan", "bright_magenta", "bright_green")


class LabelledConsole:
    """A sink ``(label, line)`` for ProcessGroup that prints to a rich console, one colour per label."""

    def __init__(self, console: Console | None = None, label_width: int = 13) -> None:
        """Print to ``console`` (stdout by default), padding labels to ``label_width``."""
        self.console = console or Console(highlight=False)
        self.label_width = label_width
        self._colours: dict[str, str] = {}

    def _colour(self, label: str) -> str:
        if label not in self._colours:
            self._colours[label] = _COLOURS[len(self._colours) % len(_COLOURS)]
        return self._colours[label]

    def __call__(self, label: str, line: str) -> None:
        """Print ``line`` from child ``label``; ANSI colours the child emitted are kept."""
        text = Text(f"{label:<{self.label_width}} | ", style=self._colour(label))
        text.append_text(Text.from_ansi(line))
        self.console.print(text, soft_wrap=True)

    def announce(self, message: str, *, style: str = "bold") -> None:
        """Print a launcher message (not from a child)."""
        self.console.print(Text(message, style=style), soft_wrap=True)


class StackOutput:
    """Where a stack's output goes: always a bounded deque (for failure messages), and a console or a log file."""

    def __init__(self, max_lines: int, console: LabelledConsole | None = None, log: TextIO | None = None) -> None:
        """Keep the last ``max_lines``; print to ``console`` or append to ``log`` too."""
        self.kept: deque[str] = deque(maxlen=max_lines)
        self.console = console
        self._log = log

    @classmethod
    def of(cls, kind: str, max_lines: int, log_path: Path | None = None) -> StackOutput:
        """``console``: a labelled console; with ``log_path``: that file (rewritten); otherwise only the deque."""
        if kind == "console":
            return cls(max_lines, console=LabelledConsole())
        if log_path is None:
            return cls(max_lines)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        return cls(max_lines, log=log_path.open("w", encoding="utf-8"))

    def sink(self, label: str, line: str) -> None:
        """A ProcessGroup sink: one line of child ``label``."""
        self.kept.append(f"{label} | {line}")
        if self.console is not None:
            self.console(label, line)
        if self._log is not None:
            print(f"{label} | {line}", file=self._log, flush=True)

    def announce(self, message: str) -> None:
        """A supervisor's report (a child exited, restarted, gave up): loud on a console."""
        self.kept.append(message)
        if self.console is not None:
            self.console.announce(message, style="bold red")
        if self._log is not None:
            print(message, file=self._log, flush=True)

    def close(self) -> None:
        """Close the log file, if any."""
        if self._log is not None:
            self._log.close()
