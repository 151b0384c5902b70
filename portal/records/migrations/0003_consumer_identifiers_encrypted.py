# Resident ID and phone numbers move to encrypted columns with keyed hashes for exact search.
# Step 1 of 3: the new columns, empty (0004 fills them batch by batch, 0005 drops the plaintext).

import portal.records.models
from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('records', '0002_alter_consumer_options_alter_segment_options_and_more'),
    ]

    operations = [
        migrations.AddField(
            model_name='consumer',
            name='resident_id_encrypted',
            field=portal.records.models.EncryptedIdentifierField(db_column='resident_id_encrypted', kind='resident_id', max_length=18, null=True, verbose_name='resident ID number'),
        ),
        migrations.AddField(
            model_name='consumer',
            name='phone_encrypted',
            field=portal.records.models.EncryptedIdentifierField(db_column='phone_encrypted', kind='phone', max_length=11, null=True, verbose_name='mobile number'),
        ),
        migrations.AddField(
            model_name='consumer',
            name='resident_id_hmac',
            field=portal.records.models.IdentifierHashField(kind='resident_id', null=True, source='resident_id', verbose_name='resident ID number (HMAC)'),
        ),
        migrations.AddField(
            model_name='consumer',
            name='phone_hmac',
            field=portal.records.models.IdentifierHashField(kind='phone', null=True, source='phone', verbose_name='mobile number (HMAC)'),
        ),
    ]
