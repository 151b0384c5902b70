"""Role gates (SPEC §6 role table, portal.access.gates): a role that may never use an endpoint gets 403 before
any scope check."""

from __future__ import annotations

from rest_framework.permissions import BasePermission

from portal.access.gates import allows_user


class RoleGate(BasePermission):
    """Lets through the roles of the view's `gate` (or, per method, `gates[method]`)."""

    message = "Your role may not use this endpoint."

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not user or not user.is_authenticated:
            return False
        gate = getattr(view, "gates", {}).get(request.method, getattr(view, "gate", None))
        return gate is not None and allows_user(gate, user)
