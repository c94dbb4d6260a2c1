"""Errors the CLI reports as a message and an exit code instead of a traceback."""


class PlanwiseError(Exception):
    """An operation could not be done; `str(error)` tells the user why and what to do."""

    exit_code = 1


class NotConfirmed(PlanwiseError):
    """A destructive operation was not confirmed."""

    exit_code = 3
