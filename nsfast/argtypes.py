"""Types of the public API's arguments, for annotations only.

    >>> from nsfast.argtypes import Argv
    >>> argv: Argv = ["sh", b"-c", "true"]
"""
from __future__ import annotations

import os
from typing import Sequence, Union

# one argument of a program: as subprocess takes it
Arg = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]
# a program and its arguments
Argv = Sequence[Arg]
