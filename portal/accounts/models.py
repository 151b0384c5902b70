"""Organisations and users. A user's role decides which endpoints they may use; grants decide scope."""

from django.contrib.auth.models import AbstractUser, Group
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.db.models.lookups import IsNull
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Organisation(models.Model):
    class Kind(models.TextChoices):
        REGULATOR = "regulator", _("Regulator")
        SHAREHOLDER = "shareholder", _("State shareholder")
        OPERATOR = "operator", _("Operator")

    name = models.CharField(_("name"), max_length=200, unique=True)
    name_zh = models.CharField(_("name (Chinese)"), max_length=200, blank=True)
    short_name = models.SlugField(_("short name"), max_length=50, unique=True)
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)
    # Guardian grants organisation-wide permissions to a group; each organisation owns exactly one.
    group = models.OneToOneField(Group, on_delete=models.PROTECT, related_name="organisation", editable=False)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("organisation")
        verbose_name_plural = _("organisations")

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        if self.group_id is None:
            self.group, _created = Group.objects.get_or_create(name=f"org:{self.short_name}")
        super().save(*args, **kwargs)


class Role(models.TextChoices):
    REGULATOR = "regulator", _("Regulator")
    SHAREHOLDER = "shareholder", _("Shareholder")
    COMPLIANCE = "compliance", _("Compliance officer")
    AUDITOR = "auditor", _("Auditor")
    ADMIN = "admin", _("Administrator")


class User(AbstractUser):
    Role = Role

    # Which organisation kinds each role may belong to.
    ROLE_ORGANISATION_KINDS = {
        Role.REGULATOR: {Organisation.Kind.REGULATOR},
        Role.SHAREHOLDER: {Organisation.Kind.SHAREHOLDER},
        Role.COMPLIANCE: {Organisation.Kind.OPERATOR},
        Role.AUDITOR: {Organisation.Kind.OPERATOR, Organisation.Kind.REGULATOR},
        Role.ADMIN: {Organisation.Kind.OPERATOR},
    }

    role = models.CharField(_("role"), max_length=20, choices=Role.choices)
    organisation = models.ForeignKey(
        Organisation, on_delete=models.PROTECT, related_name="users", null=True, blank=True
    )

    # Set by `manage.py seed_demo` only: such an account has a published password. Demo accounts may skip the
    # second factor only in a demo run (PORTAL_DEMO), and production refuses to start while any exists.
    is_demo = models.BooleanField(_("demo account"), default=False, editable=False)

    REQUIRED_FIELDS = ["email", "role"]

    class Meta:
        verbose_name = _("user")
        verbose_name_plural = _("users")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(role__in=[r.value for r in Role]), name="user_role_valid"
            ),
        ]

    def clean(self) -> None:
        super().clean()
        if self.organisation is None:
            if self.role != self.Role.ADMIN:
                raise ValidationError(
                    {"organisation": _("Every user but an administrator needs an organisation.")}
                )
            return
        allowed = self.ROLE_ORGANISATION_KINDS.get(self.Role(self.role), set())
        if self.organisation.kind not in allowed:
            raise ValidationError({"role": _("This role does not belong to an organisation of that kind.")})

    @property
    def membership_in_force(self) -> bool:
        """Whether this account's organisation and role are those of its approved membership (SPEC §3).

        Until a second person approves a membership, and after deactivation, an account's scope is empty and
        its role opens no endpoint. Read from the `in_force_flag` annotation when the user was loaded with
        `users_with_membership` (logins, tokens), else one query, remembered on the instance.
        """
        if not self.is_active or self.pk is None:
            return False
        flag = self.__dict__.get(IN_FORCE_FLAG)
        if flag is None:
            flag = self.__dict__[IN_FORCE_FLAG] = Membership.objects.filter(in_force_for(self)).exists()
        return bool(flag)

    def membership_changed(self) -> None:
        """Forget the remembered answer of `membership_in_force` (after a membership service changed it)."""
        self.__dict__.pop(IN_FORCE_FLAG, None)

    def save(self, *args, **kwargs) -> None:
        super().save(*args, **kwargs)
        update_fields = kwargs.get("update_fields")
        if update_fields is None or {"organisation", "role", "is_active"} & set(update_fields):
            self._sync_organisation_group()

    def _sync_organisation_group(self) -> None:
        """Keep the user in their organisation's group (and no other's) while their membership is in force,
        so that nothing reading guardian's group permissions finds a membership nobody approved."""
        self.membership_changed()
        org_groups = Group.objects.filter(organisation__isnull=False)
        current = set(self.groups.filter(organisation__isnull=False).values_list("pk", flat=True))
        in_force = self.organisation is not None and self.membership_in_force
        wanted = {self.organisation.group_id} if in_force and self.organisation is not None else set()
        if current != wanted:
            self.groups.remove(*org_groups.filter(pk__in=current - wanted))
            self.groups.add(*wanted)


class Membership(models.Model):
    """An account's organisation and role, granted like data (SPEC §3): requested by one person (an
    administrator or a compliance officer), approved by a compliance officer who is neither the requester nor
    the account. Only an approved membership matching the account's organisation and role is in force; at most
    one per account. A move to another organisation or role is a new membership: the old one stays in force
    until the new one is approved, then ends."""

    class Status(models.TextChoices):
        REQUESTED = "requested", _("Requested")
        APPROVED = "approved", _("Approved")
        REJECTED = "rejected", _("Rejected")
        ENDED = "ended", _("Ended")

    user = models.ForeignKey(User, on_delete=models.PROTECT, related_name="memberships")
    organisation = models.ForeignKey(
        Organisation, on_delete=models.PROTECT, related_name="memberships", null=True, blank=True
    )
    role = models.CharField(_("role"), max_length=20, choices=Role.choices)
    status = models.CharField(_("status"), max_length=20, choices=Status.choices, default=Status.REQUESTED)
    reason = models.TextField(_("reason"), blank=True)
    # Null only for memberships recorded from before the workflow existed (migration accounts.0005).
    requested_by = models.ForeignKey(
        User,
        on_delete=models.PROTECT,
        related_name="+",
        null=True,
        blank=True,
        verbose_name=_("requested by"),
    )
    requested_at = models.DateTimeField(_("requested at"), default=timezone.now)
    decided_by = models.ForeignKey(
        User, on_delete=models.PROTECT, related_name="+", null=True, blank=True, verbose_name=_("decided by")
    )
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)
    decision_note = models.TextField(_("decision note"), blank=True)
    ended_by = models.ForeignKey(
        User, on_delete=models.PROTECT, related_name="+", null=True, blank=True, verbose_name=_("ended by")
    )
    ended_at = models.DateTimeField(_("ended at"), null=True, blank=True)
    end_reason = models.TextField(_("end reason"), blank=True)

    class Meta:
        verbose_name = _("membership")
        verbose_name_plural = _("memberships")
        constraints = [
            models.UniqueConstraint(
                fields=["user"], condition=Q(status="approved"), name="membership_one_in_force"
            ),
            models.UniqueConstraint(
                fields=["user"], condition=Q(status="requested"), name="membership_one_open"
            ),
            models.CheckConstraint(
                condition=models.Q(role__in=[r.value for r in Role]), name="membership_role_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} → {self.organisation or '-'} ({self.role}, {self.status})"


IN_FORCE_FLAG = "in_force_flag"


def in_force_for(user: User) -> Q:
    """The condition on memberships that puts `user`'s organisation and role in force."""
    return Q(
        user_id=user.pk,
        status=Membership.Status.APPROVED,
        role=user.role,
        organisation_id=user.organisation_id,
    )


def in_force_subquery(prefix: str = "") -> Exists:
    """Exists(an approved membership matching the outer user's organisation and role). `prefix` leads from
    the outer row to the user: "" on users, "user__" on rows that point at one (tokens)."""
    outer_org = OuterRef(f"{prefix}organisation_id")
    same_organisation = Q(organisation_id=outer_org) | Q(IsNull(outer_org, True), organisation__isnull=True)
    return Exists(
        Membership.objects.filter(
            same_organisation,
            user_id=OuterRef(f"{prefix}id" if prefix else "pk"),
            status=Membership.Status.APPROVED,
            role=OuterRef(f"{prefix}role"),
        )
    )


def users_with_membership(users: QuerySet[User]) -> QuerySet[User]:
    """Users annotated with whether their membership is in force: `membership_in_force` costs no query."""
    return users.annotate(**{IN_FORCE_FLAG: in_force_subquery()})


class ApiToken(models.Model):
    """A bearer token for the REST API. Only a SHA-256 of the secret is stored: the secret is long and random,
    so a fast hash is as safe as a password hasher here, and costs microseconds instead of milliseconds on
    every request."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(_("prefix"), max_length=12, editable=False)  # tells tokens apart in lists
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    expires_at = models.DateTimeField(_("expires at"))
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)
    # The user's session auth hash (an HMAC of their password hash) when the token was issued: a password
    # change, by whatever path, makes every earlier token stop working.
    auth_hash = models.CharField(max_length=128, editable=False, default="")

    class Meta:
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")
        indexes = [models.Index(fields=["user", "expires_at"], name="token_user_expiry")]

    def __str__(self) -> str:
        return f"{self.prefix}…"


class CredentialReset(models.Model):
    """A lost password or second factor (SPEC §3): requested by one person, approved by a compliance officer
    who is neither the requester nor the account. Approval revokes the account's tokens, sessions and devices
    and issues a single-use, expiring enrolment link; only a SHA-256 of the link's secret is stored."""

    class Status(models.TextChoices):
        REQUESTED = "requested", _("Requested")
        APPROVED = "approved", _("Approved: link issued")
        REJECTED = "rejected", _("Rejected")
        USED = "used", _("Used")

    user = models.ForeignKey(User, on_delete=models.PROTECT, related_name="credential_resets")
    status = models.CharField(_("status"), max_length=20, choices=Status.choices, default=Status.REQUESTED)
    reason = models.TextField(_("reason"))
    requested_by = models.ForeignKey(
        User, on_delete=models.PROTECT, related_name="+", verbose_name=_("requested by")
    )
    requested_at = models.DateTimeField(_("requested at"), default=timezone.now)
    decided_by = models.ForeignKey(
        User, on_delete=models.PROTECT, related_name="+", null=True, blank=True, verbose_name=_("decided by")
    )
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)
    decision_note = models.TextField(_("decision note"), blank=True)
    token_hash = models.CharField(max_length=64, blank=True, editable=False)
    expires_at = models.DateTimeField(_("link expires at"), null=True, blank=True)
    used_at = models.DateTimeField(_("used at"), null=True, blank=True)

    class Meta:
        verbose_name = _("credential reset")
        verbose_name_plural = _("credential resets")
        constraints = [
            models.UniqueConstraint(
                fields=["token_hash"], condition=~Q(token_hash=""), name="credential_reset_token_unique"
            ),
            models.UniqueConstraint(
                fields=["user"], condition=Q(status="requested"), name="credential_reset_one_open"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} ({self.status})"
