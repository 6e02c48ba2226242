"""One router per resource."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Response

from wire.limits import ID_CHARS

# A stored id in a path (`p_...`, `j_...`, `dp_...`): as long as the database's key columns.
Id = Annotated[str, Path(min_length=1, max_length=ID_CHARS, description="A stored id.")]


def json_text(text: str, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    """Stored JSON text as the response body, unparsed and not re-encoded."""
    return Response(text, status_code=status_code, media_type="application/json", headers=headers)
