# The `is_demo` mark (0003) started out False everywhere, so a database seeded with the demo world before it
# still held the demo accounts, with their published password, unmarked: production's accounts.E001 check
# would not see them. Mark the users that carry seed_demo's usernames. Production then refuses to start until
# they are deleted, or deactivated and unmarked.

from django.db import migrations

# seed_demo's usernames as of this migration (portal/management/commands/seed_demo.py, USERS).
DEMO_USERNAMES = ("regulator", "regulator2", "shareholder", "compliance", "compliance2", "auditor", "admin")


def flag_demo_accounts(apps, schema_editor):
    User = apps.get_model("accounts", "User")
    User.objects.using(schema_editor.connection.alias).filter(
        username__in=DEMO_USERNAMES, is_demo=False
    ).update(is_demo=True)


class Migration(migrations.Migration):

    dependencies = [
        ("accounts", "0003_security"),
    ]

    operations = [
        # Not undone: which users were marked before cannot be told apart afterwards.
        migrations.RunPython(flag_demo_accounts, migrations.RunPython.noop, elidable=True),
    ]
