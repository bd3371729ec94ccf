"""Defines the compiled extension and the nsfast command (a C launcher);
everything else is in pyproject.toml."""
import glob
import os
import re
import shutil
import sys

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.dist import Distribution

HERE = os.path.dirname(os.path.abspath(__file__))
# NSFAST_SANITIZE=1 builds the C layer with AddressSanitizer and UBSan.
sanitize = os.environ.get("NSFAST_SANITIZE") == "1"
flags = ["-Wall", "-Wextra", "-O2", "-fno-strict-aliasing"]
if sanitize:
    flags += ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-O1"]
link_flags = ["-fsanitize=address,undefined"] if sanitize else []

# The code that runs in a spawn's child, which shares the caller's memory: it
# is compiled so that no builtin becomes a libc call (a loop can become a
# memset, a strlen a PLT call) and without the stack protector (its canary and
# failure path are libc's).  tests/test_child_object.py compiles these files
# with these flags and fails on any undefined symbol that is not nsfast's own.
CHILD = ["csrc/nscore.c", "csrc/spawn_child.c", "csrc/spawn_clone.c"]
CHILD_FLAGS = ["-ffreestanding", "-fno-builtin", "-fno-stack-protector",
               "-fno-tree-loop-distribute-patterns", "-fno-sanitize=all"]
# pid 1 of a sandbox: a static program without libc (csrc/init.c)
INIT = ["csrc/init.c"]
INIT_FLAGS = CHILD_FLAGS + ["-static", "-nostdlib", "-fno-asynchronous-unwind-tables"]
INIT_NAME = "_nsfast_init"
# csrc/cli_*.c make the nsfast command, not the extension
CLI = sorted(glob.glob("csrc/cli_*.c"))
CORE = sorted(set(glob.glob("csrc/*.c")) - set(CLI) - set(CHILD) - set(INIT))
# the part of the core the command links: the spawn path and the setns loop
LAUNCHER = CLI + ["csrc/kinds.c", "csrc/spawn_parent.c"]
# where the linked command is kept for data_files, which installs it as
# <prefix>/bin/nsfast (scripts= would try to read an ELF file as a script)
LAUNCHER_OUT = os.path.join("build", "launcher", "nsfast")
# and its name in the package, where `python -m nsfast.cli enter` finds it
PACKAGE_NAME = "_nsfast"


def _c_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _version() -> str:
    with open(os.path.join(HERE, "nsfast", "__init__.py")) as f:
        return re.search(r'^__version__ = "([^"]+)"', f.read(), re.M).group(1)


class build_ext_and_launcher(build_ext):
    """build_ext, then compile and link the nsfast command into the package
    directory (the source tree for --inplace, the build lib otherwise)."""

    def child_objects(self):
        """The child's code, compiled once with CHILD_FLAGS for both users."""
        return self.compiler.compile(
            CHILD, output_dir=os.path.join(self.build_temp, "child"), include_dirs=["csrc"],
            extra_postargs=[f for f in flags if not f.startswith("-fsanitize")] + CHILD_FLAGS,
            macros=[("_GNU_SOURCE", "1")])

    def build_extension(self, ext):
        ext.extra_objects = list(ext.extra_objects or []) + self.child_objects()
        super().build_extension(ext)

    def run(self):
        super().run()
        package_dir = os.path.dirname(self.get_ext_fullpath("nsfast._core"))
        objects = self.compiler.compile(
            LAUNCHER, output_dir=os.path.join(self.build_temp, "launcher"),
            include_dirs=["csrc"], extra_postargs=flags,
            macros=[("_GNU_SOURCE", "1"), ("NSFAST_VERSION", _c_string(_version())),
                    ("NSFAST_BUILD_PYTHON", _c_string(sys.executable))])
        out = os.path.join(HERE, LAUNCHER_OUT)
        # -z now: no symbol is resolved lazily, so never in a child
        self.compiler.link_executable(objects + self.child_objects(), os.path.basename(out),
                                      output_dir=os.path.dirname(out),
                                      extra_postargs=link_flags + ["-Wl,-z,now", "-Wl,-z,relro"])
        self.copy_file(out, os.path.join(package_dir, PACKAGE_NAME))
        init_objects = self.compiler.compile(
            INIT, output_dir=os.path.join(self.build_temp, "init"), include_dirs=["csrc"],
            extra_postargs=["-Wall", "-Wextra", "-O2"] + INIT_FLAGS,
            macros=[("_GNU_SOURCE", "1")])
        init_out = os.path.join(self.build_temp, "init", INIT_NAME)
        self.compiler.link_executable(init_objects, INIT_NAME,
                                      output_dir=os.path.dirname(init_out),
                                      extra_postargs=INIT_FLAGS)
        self.copy_file(init_out, os.path.join(package_dir, INIT_NAME))


class DistributionWithData(Distribution):
    """setuptools' editable_wheel installs data_files only if the distribution
    has a has_data() (it asks for has_data, distutils defines
    has_data_files): without this, `pip install -e .` leaves out bin/nsfast."""

    def has_data(self):
        return self.has_data_files()


core = Extension(
    "nsfast._core",
    sources=["nsfast/_core.pyx"] + CORE,   # + the child's objects (build_extension)
    include_dirs=["csrc"],
    extra_compile_args=flags,
    extra_link_args=link_flags,
    define_macros=[("_GNU_SOURCE", "1")],
)

setup(ext_modules=cythonize([core], language_level=3, include_path=["."]),
      cmdclass={"build_ext": build_ext_and_launcher},
      distclass=DistributionWithData,
      data_files=[("bin", [LAUNCHER_OUT])])
