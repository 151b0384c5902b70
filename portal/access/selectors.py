"""Read-only queries over grants that the API and the web pages share."""

from __future__ import annotations

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
