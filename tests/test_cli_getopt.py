"""The getopt_long unshare-style command lines go through (nsfast enter is C,
with glibc's getopt_long: tests/test_cli_enter.py)."""
import pytest

from nsfast.cli.common import UsageError
from nsfast.cli.getopt import Opt, parse

pytestmark = pytest.mark.unit

SIMPLE = [Opt("net", "n", "?"), Opt("target", "t", 1), Opt("all", "a")]
UNSHARE = [Opt("net", "n", "?"), Opt("bind", None, 2), Opt("map-user", None, 1),
           Opt("map-users", None, 1), Opt("fork", "f")]


def test_optional_values_are_attached_only():
    assert parse(["-n", "x"], SIMPLE) == ([("net", None)], ["x"])
    assert parse(["--net=F", "--net", "x"], SIMPLE) == ([("net", "F"), ("net", None)], ["x"])
    # unshare's letters never take the FILE: -nf is -n -f
    assert parse(["-nf", "x"], UNSHARE) == ([("net", None), ("fork", None)], ["x"])


def test_options_end_at_the_first_word_or_double_dash():
    assert parse(["-a", "ip", "-n"], SIMPLE) == ([("all", None)], ["ip", "-n"])
    assert parse(["--", "-a"], SIMPLE) == ([], ["-a"])
    assert parse(["-t", "12", "-a"], SIMPLE) == ([("target", "12"), ("all", None)], [])
    assert parse(["-t12"], SIMPLE) == ([("target", "12")], [])


def test_long_options_abbreviate_when_unambiguous():
    assert parse(["--tar", "5"], SIMPLE) == ([("target", "5")], [])
    assert parse(["--map-user=0"], UNSHARE) == ([("map-user", "0")], [])
    with pytest.raises(UsageError, match="ambiguous"):
        parse(["--map", "0"], UNSHARE)


def test_two_values_and_missing_values():
    assert parse(["--bind", "/a", "/b", "p"], UNSHARE) == ([("bind", ("/a", "/b"))], ["p"])
    with pytest.raises(UsageError, match="requires two arguments"):
        parse(["--bind", "/a"], UNSHARE)
    with pytest.raises(UsageError, match=r"option requires an argument -- 't'"):
        parse(["-t"], SIMPLE)
    with pytest.raises(UsageError, match="invalid option -- 'z'"):
        parse(["-z"], SIMPLE)
    with pytest.raises(UsageError, match="doesn't allow an argument"):
        parse(["--all=1"], SIMPLE)
    with pytest.raises(UsageError, match="unrecognized option '--nope'"):
        parse(["--nope"], SIMPLE)
