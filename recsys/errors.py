"""The one exception type for errors a user can cause (bad file, bad YAML, bad flag)."""


class RecsysError(Exception):
    """A problem with the user's input, phrased as what is wrong and how to fix it.

    Entry scripts print ``str(error)`` on one line and exit non-zero, without a traceback.
    """


def require(ok: bool, message: str) -> None:
    """Raises ``RecsysError(message)`` unless ``ok``: the check of a config's field."""
    if not ok:
        raise RecsysError(message)
