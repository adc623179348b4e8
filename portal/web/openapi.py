"""The OpenAPI 3.1 description of the JSON API: served at /openapi.json, rendered as docs/api.md.

``openapi.json`` beside this file is the description itself, kept by hand and kept true by
tests (every JSON route of the app is in it; answers match its schemas; a property-based
run over it finds no server error). ``python -m portal.web.openapi > docs/api.md`` writes
the readable page from it; a test fails when that page is out of date.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from flask import Blueprint, Response

SPEC_FILE = Path(__file__).with_name("openapi.json")

bp = Blueprint("openapi", __name__)


@lru_cache(maxsize=1)
def spec_text() -> str:
    """Return the description as stored."""
    return SPEC_FILE.read_text(encoding="utf-8")


def spec() -> dict:
    """Return the description as a dict (a fresh copy each time)."""
    return json.loads(spec_text())


@bp.get("/openapi.json")
def openapi_json():
    """Return the OpenAPI description of the JSON API."""
    return Response(spec_text(), mimetype="application/json")


# --- docs/api.md -----------------------------------------------------------------------------


def _resolve(node, components: dict):
    """Follow a $ref to its schema."""
    while isinstance(node, dict) and "$ref" in node:
        node = components[node["$ref"].rsplit("/", 1)[-1]]
    return node


def _type(schema: dict) -> str:
    """Return a short human description of a schema's type."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    if "allOf" in schema:
        return " + ".join(_type(s) for s in schema["allOf"])
    for either in ("oneOf", "anyOf"):
        if either in schema:
            return " or ".join(_type(s) for s in schema[either])
    if "const" in schema:
        return f"`{json.dumps(schema['const'])}`"
    kind = schema.get("type", "any")
    kinds = kind if isinstance(kind, list) else [kind]
    if "array" in kinds:
        inner = _type(schema.get("items", {}))
        return f"array of {inner}" + (" or null" if "null" in kinds else "")
    text = " or ".join(kinds)
    if schema.get("maxLength") == 0:
        text = "empty string"
    if "enum" in schema:
        text += ": " + ", ".join(f"`{v}`" for v in schema["enum"])
    if "minimum" in schema or "maximum" in schema:
        text += f" ({schema.get('minimum', '…')} to {schema.get('maximum', '…')})"
    extra = schema.get("additionalProperties")
    if kinds == ["object"] and isinstance(extra, dict):
        text += " of " + _type(extra)
        if "propertyNames" in schema:
            text += " by " + _type(schema["propertyNames"]).split(": ", 1)[-1]
    return text


def _cell(text: str) -> str:
    """Return text safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(description: dict | None = None) -> str:
    """Return docs/api.md: every operation, its parameters and answers, then every schema."""
    description = description or spec()
    components = description["components"]["schemas"]
    info = description["info"]
    out = [
        "# JSON API",
        "",
        "<!-- Generated from portal/web/openapi.json by `python -m portal.web.openapi > docs/api.md`;"
        " a test fails when it is out of date. Edit the description, not this page. -->",
        "",
        info["description"],
        "",
        f"OpenAPI {description['openapi']} description: [`/openapi.json`](../portal/web/openapi.json),"
        " served by"
        " the portal at `/openapi.json`.",
        "",
        "| method and path | what |",
        "| --- | --- |",
    ]
    for path, item in description["paths"].items():
        for method, op in item.items():
            anchor = op["operationId"].lower()
            out.append(f"| [`{method.upper()} {path}`](#{anchor}) | {_cell(op['summary'])} |")
    for path, item in description["paths"].items():
        for method, op in item.items():
            out += ["", f"## {op['operationId']}", "", f"`{method.upper()} {path}`: {op['summary']}.", ""]
            if op.get("description"):
                out += [op["description"], ""]
            params = op.get("parameters", [])
            if params:
                out += ["| parameter | in | required | type | meaning |", "| --- | --- | --- | --- | --- |"]
                for p in params:
                    out.append(f"| `{p['name']}` | {p['in']} | {'yes' if p.get('required') else 'no'} |"
                               f" {_cell(_type(p['schema']))} | {_cell(p.get('description', ''))} |")
                out.append("")
            out += ["| status | body | when |", "| --- | --- | --- |"]
            for status, answer in op["responses"].items():
                content = answer.get("content", {})
                body = "; ".join(f"{_type(c['schema'])} (`{mime}`)" for mime, c in content.items()) or "-"
                out.append(f"| {status} | {_cell(body)} | {_cell(answer['description'])} |")
    out += ["", "## Schemas", "", "Fields marked *required* are always present; answers may carry more fields"
            " than listed (new fields are added, none are taken away)."]
    for name, schema in components.items():
        out += ["", f"### {name}", ""]
        if schema.get("description"):
            out += [schema["description"], ""]
        parts = schema.get("allOf", [schema])
        extends = [p for p in parts if "$ref" in p]
        if extends:
            out += ["Every field of " + ", ".join(_type(p) for p in extends) + ", and:", ""]
        rows = []
        for part in parts:
            part = part if "$ref" in part else _resolve(part, components)
            if "$ref" in part:
                continue
            required = set(part.get("required", []))
            for field, field_schema in part.get("properties", {}).items():
                meaning = field_schema.get("description", "")
                needed = "yes" if field in required else "no"
                rows.append(f"| `{field}` | {_cell(_type(field_schema))} | {needed} |"
                            f" {_cell(meaning)} |")
        if rows:
            out += ["| field | type | required | meaning |", "| --- | --- | --- | --- |", *rows]
        else:
            out.append(_type(schema))
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(render_markdown(), end="")
