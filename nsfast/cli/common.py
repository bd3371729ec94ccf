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


def cell(text: str) -> str:
    """text for one cell of a table: a character that is not printable (a
    newline in a command line would start a false row) as \\xNN, as lsns shows it.

    >>> cell("python -c 'a\\nb'")
    "python -c 'a\\\\x0ab'"
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else
                   "".join(f"\\x{b:02x}" for b in c.encode("utf-8", "surrogateescape"))
                   for c in text)


def fail(prog: str, message: str, status: int = 1) -> int:
    """Print `prog: message` as one line on stderr; return the exit status."""
    sys.stderr.write(f"{prog}: {' '.join(str(message).split())}\n")
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
