"""Property tests (hypothesis): bad input is refused before any syscall, and no
input crashes the interpreter."""
from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import nsfast
from nsfast import idmap
from nsfast.flags import NsType

from conftest import children_of, open_fds

pytestmark = pytest.mark.unit   # refused before any syscall: no root needed

NAMES = ["mnt", "uts", "ipc", "user", "pid", "net", "cgroup", "time", "mount", "ns", "network",
         "all"]
FAST = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@FAST
@given(st.lists(st.sampled_from(NAMES), min_size=1, max_size=8))
def test_kind_names_parse_to_their_union(names):
    parsed = NsType.parse(",".join(names))
    assert NsType.parse(names) == parsed
    assert NsType.parse(int(parsed)) == parsed
    for n in names:
        assert NsType.parse(n) & parsed == NsType.parse(n)


@FAST
@given(st.text(min_size=1, max_size=12))
def test_unknown_kind_names_are_value_errors(word):
    if word.strip().lower() in NAMES or all(p.strip() == "" or p.strip().lower() in NAMES
                                            for p in word.split(",")):
        return
    with pytest.raises(ValueError):
        NsType.parse(word)


@FAST
@given(st.integers())
def test_flag_ints_outside_the_kinds_are_refused(value):
    if value & ~int(NsType.all()) or value < 0:
        with pytest.raises(ValueError):
            NsType.parse(value)
    else:
        assert int(NsType.parse(value)) == value


triple = st.tuples(st.integers(-5, 2**32 + 5), st.integers(-5, 2**32 + 5),
                   st.integers(-5, 2**32 + 5))


def _kernel_would_accept(triples):
    if not 1 <= len(triples) <= 340:
        return False
    for a, b, c in triples:
        if c <= 0 or a < 0 or b < 0 or a + c - 1 >= 2**32 - 1 or b + c - 1 >= 2**32 - 1:
            return False
    for side in (0, 1):
        r = sorted((t[side], t[side] + t[2]) for t in triples)
        if any(y0 < x1 for (_, x1), (y0, _) in zip(r, r[1:])):
            return False
    return True


@FAST
@given(st.lists(triple, min_size=0, max_size=6))
def test_id_map_validation_matches_the_kernel_rules(triples):
    if _kernel_would_accept(triples):
        assert idmap.parse_map(triples) == triples
        assert idmap.parse_map(idmap.render(triples).decode()) == triples
    else:
        with pytest.raises(ValueError):
            idmap.parse_map(triples)


def test_id_map_over_340_lines_is_refused():
    with pytest.raises(ValueError, match="340"):
        idmap.parse_map([(i, 100000 + i, 1) for i in range(341)])
    assert len(idmap.parse_map([(i, 100000 + i, 1) for i in range(340)])) == 340


@FAST
@given(st.text(max_size=30).filter(lambda s: s.strip() != ""))
def test_id_map_text_garbage_is_a_value_error(text):
    try:
        idmap.parse_map(text)
    except ValueError:
        pass


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(argv=st.lists(st.one_of(st.text(max_size=8), st.binary(max_size=8), st.integers(),
                               st.none()), min_size=0, max_size=4),
       env_value=st.one_of(st.text(max_size=6), st.binary(max_size=6)),
       fd=st.integers(-10, 4000))
def test_bad_spawn_options_touch_nothing(argv, env_value, fd):
    """Every rejection is ValueError/TypeError and leaves no child or fd behind."""
    before_fds, before_children = open_fds(), children_of(os.getpid())
    bad_argv = (not argv or any(not isinstance(a, (str, bytes)) for a in argv)
                or any(("\0" in a if isinstance(a, str) else b"\0" in a) for a in argv))
    if not bad_argv:
        argv = ["/nonexistent/prog"]  # never run anything real from random input
    for kwargs in ({"env": {"X": env_value, "Y\0": "1"}},
                   {"stdout": fd if fd < -3 else object()},
                   {"pass_fds": [fd, "x"]},
                   {"mount_proc": True, "namespaces": "mnt"},
                   {"hostname": "h" * 65, "namespaces": "uts"},
                   {"time_offsets": {"monotonic": 1}},
                   {"propagation": "sideways", "namespaces": "mnt"},
                   {"map_root": True}):
        with pytest.raises((ValueError, TypeError)):
            nsfast.spawn(argv, **kwargs)
    assert open_fds() == before_fds
    assert children_of(os.getpid()) == before_children
