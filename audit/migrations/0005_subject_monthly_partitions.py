"""Audit subjects carry their event's time and, on PostgreSQL, are partitioned by the same months as the
events (see audit/partitions.py): a month is detached with its subjects, so the detached pair re-verifies on
its own, and the per-consumer access log joins subject to event on (event, occurred_at), which reads only
that month's event partition.

Every subject gets its event's occurred_at (subjects of events no longer in the trail, from months detached
before this migration, move to audit_auditsubject_unattached for the operator to archive with those
months). On PostgreSQL the table becomes partitioned, with a partition for every month the events table has
one and a default partition; the primary key becomes (id, occurred_at) and the (event, public_id) unique
constraint also names occurred_at. The partition functions are re-created to make and detach both tables'
partitions of a month together, and creating partitions is no longer open to PUBLIC (create-roles.sh grants
it to the application's and the sealer's roles). The append-only triggers cover every subject partition.
On SQLite the subjects table stays a plain table.
"""

from django.db import migrations, models

from audit import partitions, triggers


def fill_time(apps, schema_editor):
    partitions.subjects_fill_time(schema_editor.connection)


def partition(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    # The old table leaves with its triggers; the new one and its partitions get theirs right after.
    partitions.convert_subjects_to_partitioned(connection)
    triggers.install(connection)


def unpartition(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    partitions.revert_subjects_to_plain(connection)
    triggers.install(connection)


def install_triggers(apps, schema_editor):
    # SQLite rebuilt the subjects table to make the column NOT NULL, which took its triggers along.
    triggers.install(schema_editor.connection)


class Migration(migrations.Migration):
    # One transaction: a failure half-way leaves the plain table as it was.
    atomic = True

    dependencies = [
        ("audit", "0004_event_monthly_partitions"),
    ]

    operations = [
        migrations.AddField(
            model_name="auditsubject",
            name="occurred_at",
            field=models.DateTimeField(null=True, verbose_name="event time"),
        ),
        migrations.RunPython(fill_time, migrations.RunPython.noop, elidable=False),
        migrations.AlterField(
            model_name="auditsubject",
            name="occurred_at",
            field=models.DateTimeField(verbose_name="event time"),
        ),
        # Dropped before the table is rebuilt, so that only the new index is built, once.
        migrations.RemoveIndex(
            model_name="auditsubject",
            name="audit_subject_consumer",
        ),
        migrations.RunPython(partition, unpartition, elidable=False),
        migrations.AddIndex(
            model_name="auditsubject",
            index=models.Index(
                fields=["public_id", "occurred_at", "event"], name="audit_subject_consumer_time"
            ),
        ),
        migrations.RunPython(install_triggers, install_triggers, elidable=False),
    ]
