"""Read-only queries over grants that the API and the web pages share."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db.models import Q, QuerySet

from portal.access.models import AccessGrant
from portal.accounts.models import Role, User


def grants_for(user: User) -> QuerySet[AccessGrant]:
    """Grants a user may read: their organisation's (and their own) for regulators and shareholders; all for
    the operator's compliance officers, auditors and administrators."""
    grants = AccessGrant.objects.select_related(
        "grantee_organisation",
        "grantee_user",
        "segment",
        "consumer",
        "requested_by",
        "decided_by",
        "revoked_by",
    )
    if user.role in (Role.REGULATOR, Role.SHAREHOLDER):
        return grants.filter(
            Q(grantee_organisation_id=user.organisation_id) | Q(grantee_user=user) | Q(requested_by=user)
        )
    return grants


def shown_grant_purposes(rows: Iterable[Any]) -> None:
    """Give each per-consumer access-log row (an audit event with `subject_grant_id`) the grant the consumer
    was shown under and its purpose, in `shown_grant_id` and `shown_purpose`: the event's own purpose when
    the consumer was shown under the event's grant, else that grant's, read in one query."""
    rows = list(rows)
    other = {r.subject_grant_id for r in rows if r.subject_grant_id not in (None, r.grant_id)}
    purposes = dict(AccessGrant.objects.filter(pk__in=other).values_list("pk", "purpose")) if other else {}
    for row in rows:
        row.shown_grant_id = row.subject_grant_id
        row.shown_purpose = (
            row.purpose if row.subject_grant_id == row.grant_id else purposes.get(row.subject_grant_id, "")
        )
