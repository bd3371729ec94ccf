"""Defines the compiled extension; everything else is in pyproject.toml."""
import glob
import os

from Cython.Build import cythonize
from setuptools import Extension, setup

# NSFAST_SANITIZE=1 builds the C layer with AddressSanitizer and UBSan.
sanitize = os.environ.get("NSFAST_SANITIZE") == "1"
flags = ["-Wall", "-Wextra", "-O2", "-fno-strict-aliasing"]
if sanitize:
    flags += ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-O1"]

core = Extension(
    "nsfast._core",
    sources=["nsfast/_core.pyx"] + sorted(glob.glob("csrc/*.c")),
    include_dirs=["csrc"],
    extra_compile_args=flags,
    extra_link_args=["-fsanitize=address,undefined"] if sanitize else [],
    define_macros=[("_GNU_SOURCE", "1")],
)

setup(ext_modules=cythonize([core], language_level=3, include_path=["."]))
