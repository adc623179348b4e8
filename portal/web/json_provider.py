"""Flask's JSON answers encoded by orjson: the same JSON (non-ASCII as UTF-8, not \\u escapes), faster;
incident texts in the answer's language (``texts.json_lang``)."""
from __future__ import annotations

import orjson
from flask.json.provider import DefaultJSONProvider

from portal import answers
from portal.web.texts import json_lang

# Dates, datetimes and dataclasses go to Flask's ``default`` so they read as they always did.
OPTIONS = (orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME
           | orjson.OPT_PASSTHROUGH_DATACLASS)


class FastJSONProvider(DefaultJSONProvider):
    """Flask's default JSON provider with orjson doing the encoding (keys sorted, like Flask's)."""

    def dumps(self, obj, **kwargs) -> str:
        """Serialise to a str; options Flask's provider takes fall back to it."""
        if kwargs:
            return super().dumps(obj, **kwargs)
        return orjson.dumps(obj, default=self.default, option=OPTIONS).decode()

    def response(self, *args, **kwargs):
        """Return a JSON response of the arguments, as ``flask.jsonify`` does."""
        obj = self._prepare_response_obj(args, kwargs)
        # Each staff text in the language asked (``?lang=``, else the region's), both kept beside it.
        answers.in_language(obj, json_lang())
        # A JSON type takes no charset parameter: naming it as the content type skips deriving one.
        return self._app.response_class(orjson.dumps(obj, default=self.default, option=OPTIONS),
                                        content_type=self.mimetype)
