"""nsfast as an OCI runtime: runc's command line over nsfast's spawn path.

- state.py: the state directory (one directory a container, its lock);
- config.py: config.json -> nsfast.spawn options, refusing what it cannot do;
- cgroup.py: the container's cgroup at cgroupsPath, limits, freezer;
- seccomp.py: the OCI seccomp format compiled with libseccomp;
- hooks.py: the OCI hooks;
- runtime.py: the commands (create, start, state, kill, delete, run, exec,
  ps, pause, resume, features); nsfast/cli/oci.py parses runc's flags.
"""
from .errors import OciError

__all__ = ["OciError"]
