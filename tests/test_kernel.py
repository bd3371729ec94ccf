"""nsfast.kernel agrees with the C code it mirrors and with the kernel."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from nsfast import NsType, _core, kernel

pytestmark = pytest.mark.unit

SPAWN_H = Path(__file__).resolve().parent.parent / "csrc" / "spawn.h"


def test_the_record_is_csrc_struct_nsf_record():
    text = SPAWN_H.read_text()
    body = re.search(r"struct nsf_record \{(.*?)\};", text, re.S).group(1)
    fields = re.findall(r"(\w+)\s+(\w+);", body)
    assert fields == [("int32_t", "step"), ("int32_t", "err"), ("int32_t", "index"),
                      ("int32_t", "value")]
    assert kernel.RECORD.size == 4 * 4 and kernel.RECORD.format == "=4i"
    for name in ("NSF_MSG_READY", "NSF_MSG_PID"):
        value = int(re.search(rf"\b{name}\s*=\s*(\d+)", text).group(1))
        assert getattr(kernel, name) == value, name
    assert kernel.RECORD.unpack(kernel.record(kernel.NSF_MSG_PID, value=7)) == (101, 0, 0, 7)


# linux/sched.h, written out once here as the witness of csrc's table
SCHED_H = {"NEWTIME": 0x80, "NEWNS": 0x20000, "NEWCGROUP": 0x2000000, "NEWUTS": 0x4000000,
           "NEWIPC": 0x8000000, "NEWUSER": 0x10000000, "NEWPID": 0x20000000,
           "NEWNET": 0x40000000}


def test_namespace_flags_come_from_csrc_and_match_the_kernel():
    assert dict(_core.KIND_NAMES) == {int(k): k.proc_name for k in NsType.all().kinds()}
    for name, value in SCHED_H.items():
        assert getattr(kernel, f"CLONE_{name}") == value, name
