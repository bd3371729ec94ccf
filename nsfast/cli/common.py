"""What every sub-command shares: one-line errors, exit codes, the parser class."""
from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import Callable, NoReturn


class UsageError(Exception):
    """A command-line mistake: printed as one line, exit status 1."""


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit status 1."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def write_text(stream, text: str) -> None:
    """Write text to a text stream, a path's undecodable bytes (surrogateescape,
    as os.listdir and sys.argv give them) as those bytes, the way ip and lsns
    print a name that is not UTF-8."""
    raw = getattr(stream, "buffer", None)
    if raw is None:
        stream.write(text.encode("utf-8", "surrogateescape").decode("utf-8", "replace"))
        return
    stream.flush()
    raw.write(text.encode("utf-8", "surrogateescape"))
    raw.flush()


def cell(text: str) -> str:
    """text for one cell of a table, as lsns's (libsmartcols) shows it: what
    is not printable (a newline in a command line would start a false row),
    and each byte that is not UTF-8 (a surrogate from os.fsdecode), as \\xHH;
    a backslash before an x as \\x5c, so that the escapes stay unambiguous.

    >>> cell("python -c 'a\\nb'")
    "python -c 'a\\\\x0ab'"
    """
    if text.isprintable() and "\\x" not in text:
        return text
    out = []
    for k, ch in enumerate(text):
        if ch.isprintable() and not (ch == "\\" and text[k + 1:k + 2] == "x"):
            out.append(ch)
        else:
            out.extend(f"\\x{b:02x}" for b in ch.encode("utf-8", "surrogateescape"))
    return "".join(out)


def fail(prog: str, message: str, status: int = 1) -> int:
    """Print `prog: message` as one line on stderr; return the exit status."""
    write_text(sys.stderr, f"{prog}: {' '.join(str(message).split())}\n")
    return status


def describe_oserror(e: OSError) -> str:
    """'<path>: <what>: <strerror (hint)>' from an OSError made by nsfast.errors."""
    parts = []
    if e.filename is not None:
        parts.append(os.fsdecode(e.filename))
    parts.append(e.strerror or str(e))
    return ": ".join(parts)


def run_guarded(prog: str, body: Callable[[], int]) -> int:
    """Run a sub-command, turning every expected failure into a one-line error."""
    try:
        return int(body() or 0)
    except UsageError as e:
        return fail(prog, e)
    except SystemExit as e:  # argparse --help
        return int(e.code or 0) if not isinstance(e.code, str) else fail(prog, e.code)
    except KeyboardInterrupt:
        return 128 + signal.SIGINT
    except BrokenPipeError:
        return 0
    except OSError as e:
        return fail(prog, describe_oserror(e))
    except (ValueError, TypeError, LookupError, RuntimeError) as e:
        return fail(prog, e)


def exit_status(returncode: int) -> int:
    """A child's returncode as a shell exit status: 128+N for a signal N."""
    return 128 - returncode if returncode < 0 else returncode
