"""Check requests and responses against an official Swagger 2.0 or OpenAPI 3.0 document.

`OpenApiModel` finds the operation for a method and URL path (with or without the document's
base path), checks the query, path and header parameters it declares, and validates JSON bodies
with jsonschema against the document's own schemas, `$ref`s resolved through one
`referencing.Registry` holding the whole document.

Dialect: Draft 4, the closest JSON Schema to both Swagger 2.0 and OpenAPI 3.0 schemas. Before
compiling, the document is adapted where the OpenAPI flavour differs: `nullable: true` also
allows null, `type: file` allows anything; `x-` extensions, `discriminator`, `example` and
`readOnly` are ignored (Draft 4 ignores keywords it does not know).

Strict mode (`strict=True`) also refuses properties an object schema does not list (as if every
schema with `properties` said `additionalProperties: false`, unless it says otherwise). The
vendors' models allow extra properties, and eBay's list no required ones, so without it a
misspelt field passes; strict mode catches it, at the cost of refusing fields a newer API
version added.

Bodies: a response whose declared schema is a bare `{"type": "object"}` may come without a
body (eBay declares that for answers it sends empty, with a Location header); any other declared
JSON body must be there. A 204 must have none.

Formats: only `date-time` is checked (RFC 3339: a date, `T`, a time, a zone). Every date-time in
Amazon's own response examples and sandbox answers passes it (tests/specs/test_openapi.py proves
it), so it rejects only what a real API would not send. Other formats (int32, int64, double,
byte, uri...) are not checked.
"""

from __future__ import annotations

import copy
import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, unquote, urlparse

from jsonschema import Draft4Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from tests.specs.violation import SpecViolation, describe, raise_if_any

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# OpenAPI 3: header parameters with these names are ignored (the spec says so).
_IGNORED_HEADERS = frozenset({"accept", "content-type", "authorization"})
# Swagger 2 parameter keywords that are JSON Schema keywords too.
_VALUE_KEYWORDS = (
    "type",
    "format",
    "items",
    "enum",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "uniqueItems",
    "multipleOf",
)
_SEPARATORS = {"csv": ",", "ssv": " ", "tsv": "\t", "pipes": "|"}
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")

FORMATS = FormatChecker(formats=())


@FORMATS.checks("date-time", raises=ValueError)
def is_date_time(instance: object) -> bool:
    """RFC 3339 date-time: `2024-03-11T13:16:24.630Z`, `2024-03-11T13:16:24+01:00`."""
    if not isinstance(instance, str):
        return True
    if not _RFC3339.match(instance):
        return False
    datetime.fromisoformat(instance.upper().replace("Z", "+00:00"))  # ValueError: 2024-02-30
    return True


def pointer_to(*segments: str) -> str:
    """A JSON pointer (`/paths/~1orders/get`) from raw segments."""
    return "".join("/" + s.replace("~", "~0").replace("/", "~1") for s in segments)


@dataclass(frozen=True, slots=True)
class Parameter:
    """One query, path or header parameter: how it is spelled and what its value must be."""

    name: str
    location: str  # "query", "path" or "header"
    required: bool
    array_style: str  # for arrays: "multi" (repeated) or a _SEPARATORS key
    schema: Mapping[str, Any]  # the value's JSON schema, `$ref`s pointing into the document


@dataclass(frozen=True, slots=True)
class Operation:
    """One method on one path template, with what it takes and what it answers."""

    method: str  # upper case
    template: str  # as in the document, e.g. "/orders/v0/orders/{orderId}"
    operation_id: str | None
    pattern: re.Pattern[str]
    parameters: tuple[Parameter, ...]
    body_pointer: str | None  # the JSON request body's schema, None for none or non-JSON
    takes_body: bool  # declares a request body at all
    body_required: bool
    responses: Mapping[str, str | None]  # status key -> JSON schema pointer (None: no JSON body)

    @property
    def label(self) -> str:
        """`GET /orders/v0/orders (getOrders)`, for error messages."""
        named = f" ({self.operation_id})" if self.operation_id else ""
        return f"{self.method} {self.template}{named}"

    @property
    def specificity(self) -> tuple[int, int]:
        """Sort key: templates with more literal text win (`/offer/get_listing_fees`)."""
        literal = re.sub(r"\{[^}]*\}", "", self.template)
        return (-len(literal), self.template.count("{"))


class OpenApiModel:
    """One official API document, compiled once, checking what a client sends and receives."""

    def __init__(self, document: Mapping[str, Any], *, name: str, strict: bool = False) -> None:
        self.name = name
        self.strict = strict
        self.document = document
        self.is_swagger2 = str(document.get("swagger", "")).startswith("2")
        self.uri = f"urn:storesync:spec:{name}"
        adapted = adapt_schemas(copy.deepcopy(dict(document)), strict=strict)
        resource: Resource[Any] = DRAFT4.create_resource(adapted)
        self.registry: Registry[Any] = Registry().with_resource(self.uri, resource)
        self._validators: dict[str, Draft4Validator] = {}
        self.prefixes = self._base_paths()
        self.operations = tuple(self._operations())

    # -- public API -----------------------------------------------------------------------------

    def operation_id(self, method: str, path: str) -> str | None:
        """The operationId for a method and URL path, or None when nothing matches."""
        found = self.find_operation(method, path)
        return found[0].operation_id if found else None

    def find_operation(self, method: str, path: str) -> tuple[Operation, dict[str, str]] | None:
        """The operation for a method and URL path, with its path parameters (decoded)."""
        for rest in self._candidate_paths(path):
            matches = []
            for operation in self.operations:
                if operation.method != method.upper():
                    continue
                match = operation.pattern.fullmatch(rest)
                if match:
                    matches.append((operation, match))
            if matches:
                operation, match = min(matches, key=lambda pair: pair[0].specificity)
                values = {
                    param.name: unquote(match.group(f"p{index}"))
                    for index, param in enumerate(_path_params_in(operation.template, operation))
                }
                return operation, values
        return None

    def check_request(
        self,
        method: str,
        path: str,
        query: Mapping[str, str | list[str]] | None = None,
        body: Any = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Raise SpecViolation unless the request fits an operation of this document.

        `path` is the URL path as sent; `headers`, when given, are checked for required header
        parameters (names compared case-insensitively).
        """
        raise_if_any(self.request_errors(method, path, query, body, headers=headers))

    def check_response(self, method: str, path: str, status: int, body: Any) -> None:
        """Raise SpecViolation unless the status is declared and the body fits its schema."""
        raise_if_any(self.response_errors(method, path, status, body))

    def check_exchange(
        self, exchange: Mapping[str, Any], *, ignore_paths: Iterable[str] = ()
    ) -> None:
        """Check one recorded sandbox exchange (`GET /_control/exchanges`), request then response.

        Quietly skips faulted exchanges, resets, 429s and 5xx (no model describes those
        reliably), and paths that match no operation but match an `ignore_paths` glob (a token
        endpoint, a presigned upload URL).
        """
        status = exchange.get("status")
        if exchange.get("fault") or status is None or status == 429 or status >= 500:
            return
        method = str(exchange["method"])
        path = str(exchange.get("raw_path") or exchange["path"])
        where = f"exchange #{exchange.get('index', '?')} {method} {exchange['path']} -> {status}"
        if self.find_operation(method, path) is None:
            shown = (path, str(exchange["path"]))
            if any(fnmatch.fnmatchcase(p, glob) for glob in ignore_paths for p in shown):
                return
            raise SpecViolation([f"{where}: no operation in {self.name}"])
        errors = self.request_errors(
            method,
            path,
            exchange.get("query") or {},
            exchange.get("request_json"),
            headers=exchange.get("request_headers"),
            non_json_body=exchange.get("request_text") or exchange.get("request_form"),
        )
        errors += self.response_errors(
            method,
            path,
            int(status),
            exchange.get("response_json"),
            non_json_body=exchange.get("response_text"),
        )
        raise_if_any([f"{where}: {error}" for error in errors])

    def check_schema(self, name: str, instance: Any) -> None:
        """Validate against a named schema (`definitions` or `components/schemas`)."""
        section = ("definitions",) if self.is_swagger2 else ("components", "schemas")
        container: Any = self.document
        for key in section:
            container = container.get(key, {})
        if name not in container:
            raise KeyError(f"{self.name} has no schema named {name!r}")
        pointer = pointer_to(*section, name)
        raise_if_any(describe(name, self._validator(pointer).iter_errors(instance)))

    # -- request and response checks ----------------------------------------------------------

    def request_errors(
        self,
        method: str,
        path: str,
        query: Mapping[str, str | list[str]] | None,
        body: Any,
        *,
        headers: Mapping[str, str] | None = None,
        non_json_body: Any = None,
    ) -> list[str]:
        """Every way the request misses its operation (empty when it fits)."""
        found = self.find_operation(method, path)
        if found is None:
            return [f"{method.upper()} {path}: no operation in {self.name}"]
        operation, path_values = found
        errors: list[str] = []
        given = {name: [v] if isinstance(v, str) else list(v) for name, v in (query or {}).items()}
        declared = {p.name: p for p in operation.parameters if p.location == "query"}
        for name in sorted(set(given) - set(declared)):
            errors.append(f"{operation.label}: unknown query parameter {name!r}")
        for param in operation.parameters:
            where = f"{operation.label}: {param.location} parameter {param.name!r}"
            if param.location == "query":
                errors += self._value_errors(where, param, given.get(param.name))
            elif param.location == "path" and param.name in path_values:
                errors += self._value_errors(where, param, [path_values[param.name]])
            elif param.location == "header" and headers is not None:
                if param.name.lower() in _IGNORED_HEADERS and not self.is_swagger2:
                    continue
                lowered = {k.lower(): v for k, v in headers.items()}
                errors += self._value_errors(where, param, _one(lowered.get(param.name.lower())))
        errors += self._body_errors(operation, body, non_json_body)
        return errors

    def response_errors(
        self, method: str, path: str, status: int, body: Any, *, non_json_body: Any = None
    ) -> list[str]:
        """Every way the response misses its operation's declared responses."""
        found = self.find_operation(method, path)
        if found is None:
            return [f"{method.upper()} {path}: no operation in {self.name}"]
        operation = found[0]
        key = next(
            (
                k
                for k in (str(status), f"{status // 100}XX", f"{status // 100}xx", "default")
                if k in operation.responses
            ),
            None,
        )
        if key is None:
            declared = ", ".join(sorted(operation.responses))
            return [f"{operation.label}: status {status} is not declared (declared: {declared})"]
        where = f"{operation.label}: response {status}"
        pointer = operation.responses[key]
        if pointer is None:
            if status == 204 and (body is not None or non_json_body):
                return [f"{where}: 204 must have no body"]
            return []
        if body is None:
            if non_json_body:
                return [f"{where}: body is not JSON: {str(non_json_body)[:80]!r}"]
            if self._says_nothing(pointer):
                return []  # e.g. eBay's 201 `{"type": "object"}`: the real API sends no body
            return [f"{where}: a JSON body is declared but none was sent"]
        return describe(where, self._validator(pointer).iter_errors(body))

    def _body_errors(self, operation: Operation, body: Any, non_json_body: Any) -> list[str]:
        where = f"{operation.label}: request body"
        if body is None and non_json_body:
            if operation.body_pointer is not None:
                return [f"{where}: expected JSON, got {str(non_json_body)[:80]!r}"]
            return [] if operation.takes_body else [f"{where}: the operation takes no body"]
        if body is None:
            return [f"{where}: required but missing"] if operation.body_required else []
        if not operation.takes_body:
            return [f"{where}: the operation takes no body"]
        if operation.body_pointer is None:
            return []
        return describe(where, self._validator(operation.body_pointer).iter_errors(body))

    def _value_errors(self, where: str, param: Parameter, values: list[str] | None) -> list[str]:
        """Presence, spelling and type of one parameter's raw text values."""
        if not values:
            return [f"{where}: required but missing"] if param.required else []
        schema = self._resolved(param.schema)
        if schema.get("type") == "array":
            if param.array_style == "multi":
                parts = values
            elif len(values) > 1:
                return [f"{where}: given {len(values)} times; send one {param.array_style} value"]
            else:
                parts = values[0].split(_SEPARATORS[param.array_style])
            item_type = self._resolved(schema.get("items", {})).get("type")
            instance: Any = [_coerce(part, item_type) for part in parts]
        elif len(values) > 1:
            return [f"{where}: given {len(values)} times, declared as a single value"]
        else:
            instance = _coerce(values[0], schema.get("type"))
        validator = Draft4Validator(
            dict(param.schema), registry=self.registry, format_checker=FORMATS
        )
        return describe(where, validator.iter_errors(instance))

    # -- compiling the document -----------------------------------------------------------------

    def _validator(self, pointer: str) -> Draft4Validator:
        """A compiled validator for the schema at a JSON pointer in the document (cached)."""
        validator = self._validators.get(pointer)
        if validator is None:
            ref = {"$ref": f"{self.uri}#{quote(pointer, safe='/~')}"}
            validator = Draft4Validator(ref, registry=self.registry, format_checker=FORMATS)
            self._validators[pointer] = validator
        return validator

    def _says_nothing(self, pointer: str) -> bool:
        """Whether the schema at `pointer` is a bare `{}` or `{"type": "object"}`."""
        schema = self._resolved({"$ref": "#" + pointer})
        described = set(schema) - {"type", "description", "title"}
        return schema.get("type", "object") == "object" and not described

    def _resolved(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        """A schema with its top-level local `$ref`s followed (to read `type`, `items`)."""
        seen = 0
        while "$ref" in schema and seen < 20:
            target = str(schema["$ref"]).split("#", 1)[-1]
            node: Any = self.document
            for segment in target.split("/")[1:]:
                key = unquote(segment).replace("~1", "/").replace("~0", "~")
                node = node[int(key)] if isinstance(node, list) else node[key]
            schema = node
            seen += 1
        return schema

    def _deref(self, node: Mapping[str, Any]) -> Mapping[str, Any]:
        """A parameter, request body or response object with a `$ref` followed."""
        return self._resolved(node) if "$ref" in node else node

    def _base_paths(self) -> list[str]:
        """URL path prefixes the document's paths sit under, longest first ("" always last)."""
        prefixes: set[str] = set()
        if self.is_swagger2:
            base = str(self.document.get("basePath", "")).rstrip("/")
            if base:
                prefixes.add(base)
        else:
            servers = list(self.document.get("servers", []))
            for item in self.document.get("paths", {}).values():
                servers += item.get("servers", [])
                for method in METHODS:
                    servers += item.get(method, {}).get("servers", [])
            for server in servers:
                url = str(server.get("url", ""))
                for name, variable in server.get("variables", {}).items():
                    url = url.replace("{" + name + "}", str(variable.get("default", "")))
                base = urlparse(url).path.rstrip("/")
                if base:
                    prefixes.add(base)
        return sorted(prefixes, key=len, reverse=True) + [""]

    def _candidate_paths(self, path: str) -> list[str]:
        """The path with each known base path taken off (if it has it), then as it is."""
        path = urlparse(path).path if "://" in path else path.split("?", 1)[0]
        out = []
        for prefix in self.prefixes:
            if prefix and path != prefix and not path.startswith(prefix + "/"):
                continue
            rest = path[len(prefix) :] or "/"
            out.append(rest.rstrip("/") or "/")
        return out

    def _operations(self) -> Iterable[Operation]:
        for template, item in self.document.get("paths", {}).items():
            shared = [self._deref(p) for p in item.get("parameters", [])]
            for method in METHODS:
                if method in item:
                    yield self._operation(template, method, item[method], shared)

    def _operation(
        self, template: str, method: str, op: Mapping[str, Any], shared: list[Mapping[str, Any]]
    ) -> Operation:
        op_pointer = pointer_to("paths", template, method)
        declared = {(p["name"], p["in"]): p for p in shared}
        raw_params = list(op.get("parameters", []))
        for param in (self._deref(p) for p in raw_params):
            declared[(param["name"], param["in"])] = param
        parameters: list[Parameter] = []
        body_pointer: str | None = None
        takes_body = body_required = False
        for param in declared.values():
            if param["in"] == "body":
                takes_body, body_required = True, bool(param.get("required", False))
                body_pointer = self._body_param_pointer(param, op_pointer, raw_params, shared)
            elif param["in"] == "formData":
                takes_body = True
            elif param["in"] in ("query", "path", "header"):
                parameters.append(self._parameter(param, op_pointer, raw_params, shared))
        if "requestBody" in op:
            request_body = self._deref(op["requestBody"])
            takes_body, body_required = True, bool(request_body.get("required", False))
            media = _json_media(request_body.get("content", {}))
            if media is not None and "schema" in request_body["content"][media]:
                body_pointer = self._pointer_of(
                    op["requestBody"], op_pointer + "/requestBody", "content", media, "schema"
                )
        responses: dict[str, str | None] = {}
        for key, raw in op.get("responses", {}).items():
            responses[str(key)] = self._response_pointer(
                raw, op_pointer + pointer_to("responses", str(key))
            )
        return Operation(
            method=method.upper(),
            template=template,
            operation_id=op.get("operationId"),
            pattern=_template_pattern(template),
            parameters=tuple(parameters),
            body_pointer=body_pointer,
            takes_body=takes_body,
            body_required=body_required,
            responses=responses,
        )

    def _pointer_of(self, node: Mapping[str, Any], at: str, *segments: str) -> str:
        """The pointer to `node[segments...]`, where `node` (at pointer `at`) may be a `$ref`."""
        if "$ref" in node:
            at = str(node["$ref"]).split("#", 1)[1]
        return at + pointer_to(*segments)

    def _response_pointer(self, raw: Mapping[str, Any], at: str) -> str | None:
        response = self._deref(raw)
        if self.is_swagger2:
            return self._pointer_of(raw, at, "schema") if "schema" in response else None
        media = _json_media(response.get("content", {}))
        if media is None or "schema" not in response["content"][media]:
            return None
        return self._pointer_of(raw, at, "content", media, "schema")

    def _body_param_pointer(
        self,
        param: Mapping[str, Any],
        op_pointer: str,
        raw_params: list[Any],
        shared: list[Mapping[str, Any]],
    ) -> str | None:
        if "schema" not in param:
            return None
        return self._param_pointer(param, op_pointer, raw_params, shared) + "/schema"

    def _param_pointer(
        self,
        param: Mapping[str, Any],
        op_pointer: str,
        raw_params: list[Any],
        shared: list[Mapping[str, Any]],
    ) -> str:
        """Where a parameter object sits in the document (its own, or the path item's)."""
        for index, raw in enumerate(raw_params):
            if self._deref(raw) is param:
                if "$ref" in raw:
                    return str(raw["$ref"]).split("#", 1)[1]
                return f"{op_pointer}/parameters/{index}"
        index = next(i for i, p in enumerate(shared) if p is param)
        return op_pointer.rsplit("/", 1)[0] + f"/parameters/{index}"

    def _parameter(
        self,
        param: Mapping[str, Any],
        op_pointer: str,
        raw_params: list[Any],
        shared: list[Mapping[str, Any]],
    ) -> Parameter:
        if self.is_swagger2:
            schema: Mapping[str, Any] = {k: param[k] for k in _VALUE_KEYWORDS if k in param}
            style = str(param.get("collectionFormat", "csv"))
        else:
            where = self._param_pointer(param, op_pointer, raw_params, shared)
            schema = {"$ref": f"{self.uri}#{quote(where + '/schema', safe='/~')}"}
            if "schema" not in param:
                schema = {}
            style = _oas3_array_style(param)
        if style not in _SEPARATORS and style != "multi":
            style = "csv"
        return Parameter(
            name=str(param["name"]),
            location=str(param["in"]),
            required=bool(param.get("required", False)),
            array_style=style,
            schema=schema,
        )


def adapt_schemas(node: Any, *, strict: bool = False) -> Any:
    """Make OpenAPI schema dialect plain Draft 4, in place: nullable, `type: file`, strictness."""
    if isinstance(node, list):
        for item in node:
            adapt_schemas(item, strict=strict)
        return node
    if not isinstance(node, dict):
        return node
    for value in node.values():
        adapt_schemas(value, strict=strict)
    if (
        strict
        and isinstance(node.get("properties"), dict)
        and node.get("type", "object") == "object"
        and "additionalProperties" not in node
    ):
        node["additionalProperties"] = False
    if node.get("type") == "file":
        del node["type"]
    if node.get("nullable") is True:
        del node["nullable"]
        if isinstance(node.get("type"), str):
            node["type"] = [node["type"], "null"]
        if isinstance(node.get("enum"), list) and None not in node["enum"]:
            node["enum"].append(None)
        if "$ref" in node:
            node["anyOf"] = [{"$ref": node.pop("$ref")}, {"type": "null"}]
    return node


def _template_pattern(template: str) -> re.Pattern[str]:
    """`/orders/{orderId}` -> a regex with one `[^/]+` group per parameter, trailing / optional."""
    parts = re.split(r"(\{[^}]*\})", template.rstrip("/") or "/")
    regex, index = "", 0
    for part in parts:
        if part.startswith("{") and part.endswith("}"):
            regex += f"(?P<p{index}>[^/]+)"
            index += 1
        else:
            regex += re.escape(part)
    return re.compile(regex)


def _path_params_in(template: str, operation: Operation) -> list[Parameter]:
    """The operation's path parameters in the order they appear in the template."""
    by_name = {p.name: p for p in operation.parameters if p.location == "path"}
    names = re.findall(r"\{([^}]*)\}", template)
    return [by_name.get(name) or _undeclared_path_param(name) for name in names]


def _undeclared_path_param(name: str) -> Parameter:
    return Parameter(name=name, location="path", required=True, array_style="csv", schema={})


def _oas3_array_style(param: Mapping[str, Any]) -> str:
    style = param.get("style", "form")
    explode = param.get("explode", style == "form")
    if style == "form":
        return "multi" if explode else "csv"
    return {"spaceDelimited": "ssv", "pipeDelimited": "pipes"}.get(str(style), "csv")


def _json_media(content: Mapping[str, Any]) -> str | None:
    """The JSON media type among an OpenAPI 3 `content` map's keys, if any."""
    for media in content:
        lowered = media.lower().split(";", 1)[0].strip()
        if lowered == "application/json" or lowered.endswith("+json") or lowered == "*/*":
            return media
    return None


def _coerce(text: str, json_type: Any) -> Any:
    """A parameter's text as the JSON type it declares (left as text when it does not parse)."""
    try:
        if json_type == "integer":
            return int(text)
        if json_type == "number":
            return float(text)
    except ValueError:
        return text
    if json_type == "boolean" and text in ("true", "false"):
        return text == "true"
    return text


def _one(value: str | None) -> list[str] | None:
    return None if value is None else [value]


__all__ = ["FORMATS", "OpenApiModel", "Operation", "Parameter", "SpecViolation", "pointer_to"]
