# Memberships need a second person's approval since 0005. Accounts that already existed had their
# organisation and role set before that rule: record each one's current membership as approved (with no
# requester or approver, which only these rows lack), so that existing users, the demo world's among them,
# keep exactly their scope. Accounts without a role's organisation (a non-administrator with none) get none.

from django.db import migrations
from django.db.models import Q
from django.utils import timezone

NOTE = "Recorded as approved when the membership workflow was introduced (accounts.0006)."


def approve_existing_memberships(apps, schema_editor):
    alias = schema_editor.connection.alias
    User = apps.get_model("accounts", "User")
    Membership = apps.get_model("accounts", "Membership")
    now = timezone.now()
    placed = User.objects.using(alias).filter(is_active=True).filter(
        Q(organisation__isnull=False) | Q(role="admin")
    )
    have = set(Membership.objects.using(alias).filter(status="approved").values_list("user_id", flat=True))
    Membership.objects.using(alias).bulk_create(
        [
            Membership(
                user_id=user.pk,
                organisation_id=user.organisation_id,
                role=user.role,
                status="approved",
                reason=NOTE,
                requested_at=now,
                decided_at=now,
                decision_note=NOTE,
            )
            for user in placed.only("pk", "organisation_id", "role").iterator()
            if user.pk not in have
        ]
    )


class Migration(migrations.Migration):

    dependencies = [
        ("accounts", "0005_memberships_and_credential_resets"),
    ]

    operations = [
        # Not undone: the rows it adds cannot be told apart from later ones but by their missing approver,
        # and deleting them on the way back would drop 0005's table contents anyway.
        migrations.RunPython(approve_existing_memberships, migrations.RunPython.noop, elidable=True),
    ]
