# Step 3 of 3: drop the plaintext columns; the encrypted fields take their names (the columns keep theirs),
# and the hashes carry the uniqueness of resident IDs and the phone index. Reversible: going back decrypts
# into re-created plaintext columns.

import portal.records.models
from django.db import migrations, models, transaction

from portal.records import identifiers

BATCH = 5000
TABLE = identifiers.CONSUMER_TABLE


def restore_plaintext(apps, schema_editor):
    connection = schema_editor.connection
    ring = identifiers.keyring()
    last = 0
    while True:
        with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
            cursor.execute(
                f'SELECT id, resident_id_encrypted, phone_encrypted FROM {TABLE} '
                'WHERE id > %s ORDER BY id LIMIT %s',
                [last, BATCH],
            )
            rows = cursor.fetchall()
            if not rows:
                return
            params = []
            for pk, resident_id, phone in rows:
                params += [
                    pk,
                    ring.decrypt(identifiers.RESIDENT_ID, resident_id),
                    ring.decrypt(identifiers.PHONE, phone),
                ]
            cursor.execute(identifiers.update_from_values_sql(TABLE, ('resident_id', 'phone'), len(rows)), params)
        last = rows[-1][0]


class Migration(migrations.Migration):

    dependencies = [
        ('records', '0004_consumer_identifiers_fill'),
    ]

    operations = [
        migrations.AlterField(
            model_name='consumer',
            name='resident_id',
            field=models.CharField(max_length=18, null=True, verbose_name='resident ID number'),
        ),
        migrations.AlterField(
            model_name='consumer',
            name='phone',
            field=models.CharField(max_length=11, null=True, verbose_name='mobile number'),
        ),
        migrations.RunPython(migrations.RunPython.noop, restore_plaintext),
        migrations.RemoveField(
            model_name='consumer',
            name='resident_id',
        ),
        migrations.RemoveField(
            model_name='consumer',
            name='phone',
        ),
        migrations.RenameField(
            model_name='consumer',
            old_name='resident_id_encrypted',
            new_name='resident_id',
        ),
        migrations.RenameField(
            model_name='consumer',
            old_name='phone_encrypted',
            new_name='phone',
        ),
        migrations.AlterField(
            model_name='consumer',
            name='resident_id',
            field=portal.records.models.EncryptedIdentifierField(db_column='resident_id_encrypted', kind='resident_id', max_length=18, verbose_name='resident ID number'),
        ),
        migrations.AlterField(
            model_name='consumer',
            name='phone',
            field=portal.records.models.EncryptedIdentifierField(db_column='phone_encrypted', kind='phone', max_length=11, verbose_name='mobile number'),
        ),
        migrations.AlterField(
            model_name='consumer',
            name='resident_id_hmac',
            field=portal.records.models.IdentifierHashField(kind='resident_id', source='resident_id', verbose_name='resident ID number (HMAC)'),
        ),
        migrations.AlterField(
            model_name='consumer',
            name='phone_hmac',
            field=portal.records.models.IdentifierHashField(kind='phone', source='phone', verbose_name='mobile number (HMAC)'),
        ),
        migrations.AddIndex(
            model_name='consumer',
            index=models.Index(fields=['phone_hmac'], name='consumer_phone_hmac'),
        ),
        migrations.AddConstraint(
            model_name='consumer',
            constraint=models.UniqueConstraint(fields=('resident_id_hmac',), name='consumer_resident_id_hmac'),
        ),
    ]
