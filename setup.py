"""Defines the compiled extension and the C programs (the nsfast launcher, the
sandbox's init); everything else, the version included, is in pyproject.toml."""
import atexit
import glob
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build import build
from setuptools.command.build_ext import build_ext
from setuptools.dist import Distribution
# after setuptools: its own copy of distutils (none is in Python 3.12+)
from distutils.command.install_data import install_data

# NSFAST_SANITIZE=1 builds the C layer with AddressSanitizer and UBSan.
sanitize = os.environ.get("NSFAST_SANITIZE") == "1"
plain_flags = ["-Wall", "-Wextra", "-O2", "-fno-strict-aliasing"]
flags = plain_flags + (["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-O1"]
                       if sanitize else [])
link_flags = ["-fsanitize=address,undefined"] if sanitize else []

# The code that runs in a spawn's child, which shares the caller's memory: it
# is compiled so that no builtin becomes a libc call (a loop can become a
# memset, a strlen a PLT call) and without the stack protector (its canary and
# failure path are libc's).  tests/test_escape.py compiles these files
# with these flags and fails on any undefined symbol that is not nsfast's own.
CHILD = ["csrc/nscore.c", "csrc/spawn_child.c", "csrc/spawn_clone.c"]
CHILD_FLAGS = ["-ffreestanding", "-fno-builtin", "-fno-stack-protector",
               "-fno-tree-loop-distribute-patterns", "-fno-sanitize=all"]
# pid 1 of a sandbox: a static program without libc (csrc/init.c)
INIT = ["csrc/init.c"]
INIT_FLAGS = CHILD_FLAGS + ["-static", "-nostdlib", "-fno-asynchronous-unwind-tables"]
# csrc/cli_*.c make the nsfast command, not the extension
CLI = sorted(glob.glob("csrc/cli_*.c"))
CORE = sorted(set(glob.glob("csrc/*.c")) - set(CLI) - set(CHILD) - set(INIT))


@dataclass(frozen=True)
class Program:
    """A C program linked from csrc/ after the extension is built.

    package_name: installed into the nsfast package under this name (beside
    _core, for editable and regular installs alike); bin: also installed as
    <prefix>/bin/<name>, and as each of bin_aliases (a program that
    acts by the name it is run as).  sanitized: False for a program that cannot carry
    the sanitizers' runtime under NSFAST_SANITIZE=1 (a -static one).  child:
    also link the spawn child's objects (CHILD, built once with CHILD_FLAGS)."""
    name: str
    sources: tuple
    package_name: str
    bin: bool = False
    bin_aliases: tuple = ()
    compile_args: tuple = ()
    link_args: tuple = ()
    sanitized: bool = True
    child: bool = False


PROGRAMS = [
    # the nsfast command; the part of the core it links is the spawn path and
    # the setns loop. As nsfast/_nsfast, `python -m nsfast.cli enter` finds it.
    # -z now: no symbol is resolved lazily, so never in a child.
    Program("nsfast", tuple(CLI) + ("csrc/kinds.c", "csrc/spawn_parent.c"),
            package_name="_nsfast", bin=True, child=True,
            # nsfast-runtime: the OCI runtime (csrc/cli_oci.c), by argv[0]
            bin_aliases=("nsfast-runtime",),
            # create reads config.json with json-c and compiles linux.seccomp
            # with libseccomp (csrc/cli_oci_create.h): linked in statically,
            # so that the launcher's other commands load no more libraries
            link_args=("-Wl,-z,now", "-Wl,-z,relro", "-Wl,-Bstatic", "-ljson-c",
                       "-lseccomp", "-Wl,-Bdynamic")),
    # pid 1 of a sandbox, exec'd from a sealed copy (nsfast/init_program.py)
    Program("nsfast-init", tuple(INIT), package_name="_nsfast_init",
            compile_args=tuple(INIT_FLAGS), link_args=tuple(INIT_FLAGS), sanitized=False),
]


def _c_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class build_outside_the_tree(build):
    """build, with its directory (objects, build lib, the wheel's staging) in a
    fresh temporary directory instead of ./build: a regular install leaves the
    source tree as it was, and never links objects a build with other flags
    left there (setuptools reuses them without looking at the flags).  An
    editable install sets its own directories; --build-base still wins."""

    def finalize_options(self):
        if self.build_base == "build":   # the default, not the caller's choice
            self.build_base = tempfile.mkdtemp(prefix="nsfast-build-")
            atexit.register(shutil.rmtree, self.build_base, ignore_errors=True)
        super().finalize_options()


class build_ext_and_programs(build_ext):
    """build_ext, then compile and link each of PROGRAMS in build_temp and copy
    it into the package directory (the source tree for --inplace and editable
    installs, the build lib otherwise)."""

    def initialize_options(self):
        super().initialize_options()
        self._child = None   # the child's objects, once compiled for this build

    def child_objects(self) -> list:
        """The child's code, compiled once with CHILD_FLAGS for all its users."""
        if self._child is None:
            self._child = self.compiler.compile(
                CHILD, output_dir=os.path.join(self.build_temp, "child"),
                include_dirs=["csrc"],
                extra_postargs=[f for f in flags if not f.startswith("-fsanitize")]
                + CHILD_FLAGS,
                macros=[("_GNU_SOURCE", "1")])
        return self._child

    def build_extension(self, ext):
        ext.extra_objects = list(ext.extra_objects or []) + self.child_objects()
        super().build_extension(ext)

    def run(self):
        super().run()
        for program in PROGRAMS:
            self.build_program(program)

    def program_path(self, program: Program) -> str:
        """Where build_program links program (install_data_programs takes it from there)."""
        return os.path.join(self.build_temp, "programs", program.name)

    def build_program(self, program: Program) -> None:
        out = self.program_path(program)
        cflags, ldflags = (flags, link_flags) if program.sanitized else (plain_flags, [])
        objects = self.compiler.compile(
            list(program.sources), output_dir=out + ".objects", include_dirs=["csrc"],
            extra_postargs=cflags + list(program.compile_args),
            macros=[("_GNU_SOURCE", "1"),
                    ("NSFAST_VERSION", _c_string(self.distribution.get_version())),
                    ("NSFAST_BUILD_PYTHON", _c_string(sys.executable))])
        if program.child:
            objects += self.child_objects()
        self.compiler.link_executable(objects, program.name, output_dir=os.path.dirname(out),
                                      extra_postargs=ldflags + list(program.link_args))
        for alias in program.bin_aliases:
            self.copy_file(out, os.path.join(os.path.dirname(out), alias))
        package_dir = os.path.dirname(self.get_ext_fullpath("nsfast._core"))
        self.copy_file(out, os.path.join(package_dir, program.package_name))


class install_data_programs(install_data):
    """Installs the programs marked bin as <prefix>/bin/<name>, from where
    build_ext linked them: data_files, since scripts= would read an ELF file
    as a script."""

    def finalize_options(self):
        super().finalize_options()
        built = self.get_finalized_command("build_ext")
        self.data_files = [("bin", [os.path.join(os.path.dirname(built.program_path(p)), name)
                                    for p in PROGRAMS if p.bin
                                    for name in (p.name, *p.bin_aliases)])]


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
      cmdclass={"build": build_outside_the_tree, "build_ext": build_ext_and_programs,
                "install_data": install_data_programs},
      distclass=DistributionWithData,
      # filled in by install_data_programs once the programs are linked; not
      # empty, so that has_data() holds and the install step runs
      data_files=[("bin", [])])
