"""A service whose settings are wrong stops with one line per wrong setting and exit code 2, not a traceback.

The lines name the environment variable and say what is wrong and how to fix it (the validators' messages); no
value is printed (``RuntimeSettings`` hides inputs: a refused value may be a secret or a URL with a password).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from pydantic import ValidationError

EXIT_BAD_SETTINGS = 2  # as a command line's usage error


@contextlib.contextmanager
def refused_settings(service: str) -> Iterator[None]:
    """Run the block; a settings model refusing the environment ends the process with its reasons on stderr."""
    try:
        yield
    except ValidationError as exc:
        if not exc.title.endswith("Settings"):
            raise  # not the environment's fault: a bug, with its traceback
        reasons = [_reason(error["loc"], error["msg"]) for error in exc.errors(include_input=False)]
        print(f"{service}: refusing to start, fix these settings:", *reasons, sep="\n  - ", file=sys.stderr)
        raise SystemExit(EXIT_BAD_SETTINGS) from None


def _reason(loc: tuple[int | str, ...], message: str) -> str:
    message = message.removeprefix("Value error, ")
    if not loc:  # a check of several settings: its message names them
        return message
    return f"{'_'.join(str(part) for part in loc).upper()}: {message}"
