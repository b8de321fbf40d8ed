"""Terminal output shared by the commands: consoles, findings lines, safe echo of user text."""

from __future__ import annotations

import sys
import unicodedata
from pathlib import Path


def console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def printable(text: str) -> str:
    """``text`` with control characters (escape sequences, newlines, ...) written as escapes,
    so a hostile path cannot drive the terminal or break a one-line message."""
    if text.isprintable():
        return text
    out = []
    for ch in str(text):
        if ch == " " or not unicodedata.category(ch).startswith("C"):
            out.append(ch)
        else:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
    return "".join(out)


def markup(text) -> str:
    """User text (paths, ids) safe inside rich markup: no control characters, no [tags]."""
    from rich.markup import escape

    return escape(printable(str(text)))


SEVERITY_COLOURS = {"critical": "red", "warning": "yellow"}


def finding_line(f) -> str:
    colour = SEVERITY_COLOURS.get(f.severity, "cyan")
    return f"  [{colour}]{f.severity:8}[/] {markup(f.title)}"


def command_line() -> list[str]:
    """``sys.argv`` as the user typed it, for the manifest's ``command``."""
    argv = list(sys.argv)
    if argv and argv[0].endswith("__main__.py"):
        argv[0] = "python -m tracegen"
    elif argv:
        argv[0] = Path(argv[0]).name
    return argv
