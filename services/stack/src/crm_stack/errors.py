"""The one error type crmctl turns into a clear message and a non-zero exit."""


class StackError(RuntimeError):
    """Something the user must fix: says what went wrong and what to do."""
