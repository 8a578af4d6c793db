"""The one exception family that the CLI turns into a clear message and exit code 2, and the one
way a pydantic validation error becomes text.

Every message names what is involved (tenant, topic, offset, file) and says what to do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


class MuseError(Exception):
    """An error that a user can act on; its message says how."""


def validation_problems(error: ValidationError, *, whole: str = "(top level)", limit: int | None = None) -> str:
    """``loc: msg; loc: msg`` of a pydantic error, the first ``limit`` problems; ``whole`` names the
    location of a problem with the object as a whole (an empty ``loc``)."""
    problems = error.errors()[:limit]
    return "; ".join(f"{'.'.join(str(part) for part in problem['loc']) or whole}: {problem['msg']}" for problem in problems)
