"""User-facing errors: the CLI prints their message (no traceback) and exits with status 2."""


class FpsynthError(Exception):
    """An error whose message tells the user what is wrong and what to do about it."""


class WeightsError(FpsynthError, RuntimeError):
    """Weights missing, unreadable, or of the wrong layout; the message says what to do.

    Here, below both :mod:`fpsynth.safeload` (which raises it) and :mod:`fpsynth.weights`."""
