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
