"""The one exception family that the CLI turns into a clear message and exit code 2.

Every message names what is involved (tenant, topic, offset, file) and says what to do.
"""


class MuseError(Exception):
    """An error that a user can act on; its message says how."""
