"""Errors the terminal commands report as one line and a non-zero exit, never a traceback."""


class UserError(Exception):
    """Bad input the user can fix (missing file, range outside the file, binary file...)."""

    exit_code = 2
