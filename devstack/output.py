"""Interleaved child output: one line per write, prefixed with a coloured, padded label (``api | ...``)."""

from __future__ import annotations

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
