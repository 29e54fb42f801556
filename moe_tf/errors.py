"""Errors that the CLI reports as a message, never as a traceback."""


class MoeTfError(Exception):
    """A user-facing error: bad input, a missing file, an impossible request."""

    exit_code = 1
    label = "error"


class ConfigError(MoeTfError):
    """The configuration is invalid; the message names the field path(s)."""

    exit_code = 2


class DataError(MoeTfError):
    """A data file is missing or a label is out of range."""

    exit_code = 1


class Interrupted(MoeTfError):
    """Training stopped on SIGINT/SIGTERM after writing a checkpoint; the message gives the resume command."""

    exit_code = 3
    label = "stopped"


def error_line(error) -> str:
    """The informative line of an exception's message (a TensorFlow error's first line is often just "Graph
    execution error:"), for one-line error messages."""
    lines = [line.strip() for line in str(getattr(error, "message", error)).splitlines() if line.strip()]
    telling = [
        line
        for line in lines
        if not line.startswith(("Graph execution error", "Detected at node", "File ", "[[", "Additional GRPC"))
    ]
    return (telling or lines or [type(error).__name__])[0][:300]
