"""Role gates (SPEC §6 role table): a role that may never use an endpoint gets 403 before any scope check."""

from __future__ import annotations

from rest_framework.permissions import BasePermission

from portal.accounts.models import Role

REGULATOR, SHAREHOLDER, COMPLIANCE, AUDITOR, ADMIN = (
    Role.REGULATOR,
    Role.SHAREHOLDER,
    Role.COMPLIANCE,
    Role.AUDITOR,
    Role.ADMIN,
)
EVERYONE = frozenset(Role)

GATES: dict[str, frozenset[str]] = {
    "me": EVERYONE,
    "scoring_models": EVERYONE,
    "segments": frozenset({REGULATOR, SHAREHOLDER, COMPLIANCE, ADMIN}),
    "segment_summary": frozenset({REGULATOR, SHAREHOLDER, ADMIN}),
    "records": frozenset({REGULATOR, SHAREHOLDER, ADMIN}),  # consumers, transactions, scores, exports
    "access_log": frozenset({REGULATOR, AUDITOR}),
    "grants_read": EVERYONE,
    "grants_request": frozenset({REGULATOR, COMPLIANCE}),
    "grants_decide": frozenset({COMPLIANCE}),
    "audit": frozenset({AUDITOR}),
    "audit_checkpoints": frozenset({REGULATOR, AUDITOR}),
    "scoring_runs_read": frozenset({COMPLIANCE, AUDITOR}),
    "scoring_runs_start": frozenset({COMPLIANCE}),
}


class RoleGate(BasePermission):
    """Lets through the roles of the view's `gate` (or, per method, `gates[method]`)."""

    message = "Your role may not use this endpoint."

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not user or not user.is_authenticated:
            return False
        gate = getattr(view, "gates", {}).get(request.method, getattr(view, "gate", None))
        return gate is not None and user.role in GATES[gate]
