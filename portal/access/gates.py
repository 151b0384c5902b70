"""The role table (SPEC §6): which roles may ever use a family of API endpoints and web pages. A role outside
a gate gets 403 before any scope check; inside it, the access policy decides what is shown. The API's
permission class and the web's page decorator both read this one table."""

from __future__ import annotations

from typing import Any

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
    "scoring_models_decide": frozenset({COMPLIANCE}),  # validate, approve, activate a model version
    "dashboard": frozenset({REGULATOR}),  # the regulator's start page
    "segments": frozenset({REGULATOR, SHAREHOLDER, COMPLIANCE, ADMIN}),  # segment names and sizes
    "segment_summary": frozenset({REGULATOR, SHAREHOLDER, ADMIN}),  # a segment's figures
    "records": frozenset({REGULATOR, SHAREHOLDER, ADMIN}),  # consumers, transactions, scores, exports
    "access_log": frozenset({REGULATOR, AUDITOR}),
    "grants_read": EVERYONE,
    "grants_request": frozenset({REGULATOR, COMPLIANCE}),
    "grants_decide": frozenset({COMPLIANCE}),
    "audit": frozenset({AUDITOR}),
    "audit_checkpoints": frozenset({REGULATOR, AUDITOR}),
    "scoring_runs_read": frozenset({COMPLIANCE, AUDITOR}),
    "scoring_runs_start": frozenset({COMPLIANCE}),
    # Memberships and credential resets (SPEC §3): administrators and compliance request, compliance decides.
    "accounts_read": frozenset({COMPLIANCE, AUDITOR, ADMIN}),
    "accounts_request": frozenset({COMPLIANCE, ADMIN}),
    "accounts_decide": frozenset({COMPLIANCE}),
}

# What an account whose membership is not in force (awaiting approval, or ended) may still use: its own.
ACCOUNT_GATES = frozenset({"me"})


def allows(gate: str, role: str) -> bool:
    """Whether `role` may use what `gate` guards; an unknown gate lets nobody through."""
    return role in GATES.get(gate, frozenset())


def allows_user(gate: str, user: Any) -> bool:
    """Whether this user may use what `gate` guards: their role counts only while a second person's approval
    keeps their membership in force, so an account nobody approved opens nothing but its own."""
    if not user.membership_in_force:
        return gate in ACCOUNT_GATES
    return allows(gate, user.role)
