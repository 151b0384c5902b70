"""PostgreSQL: the audit events table partitioned by month of occurred_at (see audit/partitions.py).

The primary key becomes (id, occurred_at) in SQL while Django keeps addressing events by id; existing events
are copied into monthly partitions (and a default one); the SQL functions that create partitions ahead of
time and detach covered months are created here, SECURITY DEFINER, owned by the role that migrates. The
append-only triggers are installed on the new table and on every partition.

Subjects keep their event id without a database foreign key (a key to a partitioned table must include the
partition key, and would block detaching a month): see AuditSubject. On SQLite only that change applies:
the events table stays a plain table.
"""

from django.db import migrations, models

from audit import partitions, triggers


def partition(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    partitions.convert_to_partitioned(connection)
    triggers.install(connection)


def unpartition(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    triggers.uninstall(connection)
    partitions.revert_to_plain(connection)
    triggers.install(connection)


class Migration(migrations.Migration):
    # One transaction: a failure half-way leaves the plain table as it was.
    atomic = True

    dependencies = [
        ("audit", "0003_append_only"),
    ]

    operations = [
        migrations.AlterField(
            model_name="auditsubject",
            name="event",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=models.deletion.DO_NOTHING,
                related_name="subjects",
                to="audit.auditevent",
            ),
        ),
        migrations.RunPython(partition, unpartition, elidable=False),
    ]
