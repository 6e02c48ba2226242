"""One router per resource."""

from __future__ import annotations

from fastapi import Response


def json_text(text: str, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    """Stored JSON text as the response body, unparsed and not re-encoded."""
    return Response(text, status_code=status_code, media_type="application/json", headers=headers)
