"""OpenAPI post-processing: the error answers every operation can give, documented once for all of them."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import inline_serializer
from rest_framework import serializers

ERROR_COMPONENT = "Error"
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": (
        "`detail` says what went wrong; a 400 names each bad field or parameter with its messages instead."
    ),
    "properties": {"detail": {"type": "string"}},
    "additionalProperties": True,
}
RETRY_AFTER = {
    "Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait before trying again."}
}
# Which errors an operation may answer: every operation can meet bad input, missing or refused credentials,
# a role gate, an unknown or out-of-scope object, a rate limit, and an audit trail that cannot be written.
ERRORS = {
    "400": "Bad input: the body names each bad field or parameter.",
    "401": "No credentials, or credentials that are invalid, expired or revoked.",
    "403": "Your role may not use this endpoint, or the action is not permitted.",
    "404": "Not found, or outside your scope (the same answer).",
    "429": "Too many requests (per-user rate) or too many failed logins; see Retry-After.",
    "503": "The audit trail cannot be written, so nothing is served; see Retry-After.",
}


def add_error_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular post-processing hook (SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"])."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault(ERROR_COMPONENT, ERROR_SCHEMA)
    content = {"application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_COMPONENT}"}}}
    for item in result.get("paths", {}).values():
        for method, operation in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            responses = operation.setdefault("responses", {})
            _name_list_operation(method, operation)
            for code, description in ERRORS.items():
                if code in responses:
                    continue
                response: dict[str, Any] = {"description": description, "content": content}
                if code in ("429", "503"):
                    response["headers"] = RETRY_AFTER
                responses[code] = response
    return result


def _name_list_operation(method: str, operation: dict[str, Any]) -> None:
    """A paginated list reads as `…_list`, not `…_retrieve` (drf-spectacular only sees a non-array body)."""
    ok = operation.get("responses", {}).get("200", {})
    ref = ok.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref", "")
    operation_id = operation.get("operationId", "")
    if (
        method == "get"
        and ref.startswith("#/components/schemas/Paginated")
        and operation_id.endswith("_retrieve")
    ):
        operation["operationId"] = operation_id.removesuffix("_retrieve") + "_list"


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """The bearer token of POST /api/v1/auth/token/, as an OpenAPI security scheme."""

    target_class = "portal.api.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {"type": "http", "scheme": "bearer", "description": "A token from POST /api/v1/auth/token/."}


_PAGES: dict[str, type[serializers.Serializer]] = {}


def paginated(item: type[serializers.Serializer]) -> type[serializers.Serializer]:
    """The schema of a keyset-paginated list of `item`: {"next", "previous", "results"} (SPEC §6)."""
    name = "Paginated" + item.__name__.removesuffix("Serializer") + "List"
    if name not in _PAGES:
        _PAGES[name] = inline_serializer(
            name=name,
            fields={
                "next": serializers.URLField(allow_null=True, help_text="The next page, or null."),
                "previous": serializers.URLField(allow_null=True, help_text="The previous page, or null."),
                "results": item(many=True),
            },
        ).__class__
    return _PAGES[name]
