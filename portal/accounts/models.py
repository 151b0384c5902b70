"""Organisations and users. A user's role decides which endpoints they may use; grants decide scope."""

from django.contrib.auth.models import AbstractUser, Group
from django.core.exceptions import ValidationError
from django.db import models
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

    def save(self, *args, **kwargs) -> None:
        super().save(*args, **kwargs)
        update_fields = kwargs.get("update_fields")
        if update_fields is None or "organisation" in update_fields:
            self._sync_organisation_group()

    def _sync_organisation_group(self) -> None:
        """Keep the user in their organisation's group (and no other's), so organisation grants reach them."""
        org_groups = Group.objects.filter(organisation__isnull=False)
        current = set(self.groups.filter(organisation__isnull=False).values_list("pk", flat=True))
        wanted = {self.organisation.group_id} if self.organisation is not None else set()
        if current != wanted:
            self.groups.remove(*org_groups.filter(pk__in=current - wanted))
            self.groups.add(*wanted)


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
