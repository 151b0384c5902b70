# Step 2 of 3: encrypt and hash every consumer's plaintext identifiers, in keyset batches of its own
# transactions, so a large table is converted without one huge transaction and an interrupted run resumes
# where it stopped (rows already done have their hashes).

from django.db import migrations, transaction

from portal.records import identifiers

BATCH = 5000
TABLE = identifiers.CONSUMER_TABLE
COLUMNS = ('resident_id_encrypted', 'resident_id_hmac', 'phone_encrypted', 'phone_hmac')


def fill(apps, schema_editor):
    connection = schema_editor.connection
    ring = identifiers.keyring()
    last = 0
    while True:
        with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
            cursor.execute(
                f'SELECT id, resident_id, phone FROM {TABLE} '
                'WHERE id > %s AND (resident_id_hmac IS NULL OR phone_hmac IS NULL) ORDER BY id LIMIT %s',
                [last, BATCH],
            )
            rows = cursor.fetchall()
            if not rows:
                return
            params = []
            for pk, resident_id, phone in rows:
                params += [
                    pk,
                    ring.encrypt(identifiers.RESIDENT_ID, resident_id),
                    ring.digest(identifiers.RESIDENT_ID, resident_id),
                    ring.encrypt(identifiers.PHONE, phone),
                    ring.digest(identifiers.PHONE, phone),
                ]
            cursor.execute(identifiers.update_from_values_sql(TABLE, COLUMNS, len(rows)), params)
        last = rows[-1][0]


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ('records', '0003_consumer_identifiers_encrypted'),
    ]

    operations = [
        # Backwards there is nothing to undo: 0003 going back drops the columns.
        migrations.RunPython(fill, migrations.RunPython.noop),
    ]
