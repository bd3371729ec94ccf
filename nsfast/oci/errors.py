"""The runtime's one error: a refusal, printed as one line, exit status 1."""


class OciError(Exception):
    """A refusal of the runtime (a bad bundle, a field it does not support,
    a command in the wrong state): one line for the user, exit status 1."""
