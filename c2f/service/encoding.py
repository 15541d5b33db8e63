"""JSON responses encoded with orjson, safe for any str the client sent.

A client can put a lone surrogate (``"\\ud800"``) in a JSON body; it is a valid Python ``str`` but not encodable
as UTF-8, so echoing it back (an unknown id, a validation error's location) must not crash the response. orjson
refuses such strings; then the standard library's ASCII-escaping encoder writes them as ``\\ud800`` escapes
(valid JSON that any parser reads back to the same string).
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from fastapi.responses import JSONResponse

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def dumps(content: Any) -> bytes:
    """``content`` as UTF-8 JSON bytes (numpy scalars and arrays allowed)."""
    try:
        return orjson.dumps(content, option=_OPTIONS)
    except TypeError:  # lone surrogates (or a type orjson does not know): the escaping encoder
        return json.dumps(content, ensure_ascii=True, allow_nan=False, default=_default).encode("ascii")


def _default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):  # numpy scalars and arrays
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


class FastJSONResponse(JSONResponse):
    """The service's JSON response: orjson, with the surrogate-safe fallback of :func:`dumps`."""

    def render(self, content: Any) -> bytes:
        return dumps(content)
