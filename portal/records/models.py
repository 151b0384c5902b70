"""Consumers, their accounts and transactions, merchants, and the segments that access is granted on.

Rows here are personal data. Nothing reads them for a user except through the access policy.
"""

from __future__ import annotations

import secrets
from typing import Any

from django.core.exceptions import FieldError
from django.db import models, transaction
from django.utils.translation import gettext_lazy as _

from portal.records import identifiers

# Crockford's base32: no I, L, O or U, so a public id read aloud or retyped survives.
PUBLIC_ID_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
PUBLIC_ID_LENGTH = 17  # "C" + 16 symbols = 80 random bits


def new_public_id() -> str:
    return "C" + "".join(secrets.choice(PUBLIC_ID_ALPHABET) for _ in range(PUBLIC_ID_LENGTH - 1))


class EncryptedIdentifierField(models.CharField):
    """A resident ID or phone number: the attribute holds the plain value, the column its ciphertext.

    Encrypted on the way in (get_prep_value), decrypted on the way out (from_db_value), so serializers,
    exports, the admin and masking read `consumer.resident_id` as before. The ciphertext is randomised, so the
    column cannot be filtered on: every lookup but isnull is refused; search the `<name>_hmac` column
    (`identifiers.search_hashes`) instead. max_length bounds the plain value (forms, schema); the column is
    text.
    """

    def __init__(self, *args: Any, kind: str, **kwargs: Any) -> None:
        if kind not in identifiers.KINDS:
            raise ValueError(f"unknown identifier kind {kind!r}")
        self.kind = kind
        super().__init__(*args, **kwargs)

    def deconstruct(self) -> Any:
        name, path, args, kwargs = super().deconstruct()
        kwargs["kind"] = self.kind
        return name, path, args, kwargs

    def db_type(self, connection) -> str | None:
        return connection.data_types["TextField"]

    def cast_db_type(self, connection) -> str | None:
        return self.db_type(connection)

    def from_db_value(self, value: str | None, expression, connection) -> str | None:
        return None if value is None else identifiers.keyring().decrypt(self.kind, value)

    def get_prep_value(self, value: Any) -> str | None:
        value = super().get_prep_value(value)
        return None if value is None else identifiers.keyring().encrypt(self.kind, value)

    def get_lookup(self, lookup_name: str):
        if lookup_name == "isnull":
            return super().get_lookup(lookup_name)
        raise FieldError(
            f"{self.name} is stored encrypted and cannot be filtered with {lookup_name!r}: "
            f"compare {self.name}_hmac with identifiers.search_hashes({self.kind!r}, value)"
        )


class IdentifierHashField(models.CharField):
    """The keyed hash (HMAC) of an encrypted identifier, for exact search; computed from the source field's
    plain value on every save and bulk_create (a QuerySet.update of the source does not refresh it)."""

    def __init__(self, *args: Any, source: str, kind: str, **kwargs: Any) -> None:
        if kind not in identifiers.KINDS:
            raise ValueError(f"unknown identifier kind {kind!r}")
        self.source, self.kind = source, kind
        kwargs.setdefault("max_length", 80)
        kwargs.setdefault("editable", False)
        super().__init__(*args, **kwargs)

    def deconstruct(self) -> Any:
        name, path, args, kwargs = super().deconstruct()
        kwargs["source"], kwargs["kind"] = self.source, self.kind
        if kwargs.get("max_length") == 80:
            del kwargs["max_length"]
        if kwargs.get("editable") is False:
            del kwargs["editable"]
        return name, path, args, kwargs

    def pre_save(self, model_instance: models.Model, add: bool) -> str | None:
        plain = getattr(model_instance, self.source)
        value = None if plain is None else identifiers.keyring().digest(self.kind, plain)
        setattr(model_instance, self.attname, value)
        return value


class Consumer(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        FROZEN = "frozen", _("Frozen")
        CLOSED = "closed", _("Closed")

    # The only identifier that ever appears in a URL; the sequential id stays inside the database. Unique
    # through ConsumerPublicId, whose key it is: a table distributed by id cannot hold a unique key on it.
    public_id = models.CharField(
        _("public id"), max_length=PUBLIC_ID_LENGTH, db_index=True, default=new_public_id
    )
    name = models.CharField(_("name"), max_length=50)
    # Encrypted at rest; searchable through the keyed hashes (SPEC §3 search `q`), unique through
    # ConsumerResidentId.
    resident_id = EncryptedIdentifierField(
        _("resident ID number"),
        max_length=18,
        kind=identifiers.RESIDENT_ID,
        db_column="resident_id_encrypted",
    )
    resident_id_hmac = IdentifierHashField(
        _("resident ID number (HMAC)"), source="resident_id", kind=identifiers.RESIDENT_ID
    )
    phone = EncryptedIdentifierField(
        _("mobile number"), max_length=11, kind=identifiers.PHONE, db_column="phone_encrypted"
    )
    phone_hmac = IdentifierHashField(_("mobile number (HMAC)"), source="phone", kind=identifiers.PHONE)
    province = models.CharField(_("province"), max_length=20)
    city = models.CharField(_("city"), max_length=30)
    birth_year = models.PositiveSmallIntegerField(_("birth year"))
    joined_on = models.DateField(_("date joined"))
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.ACTIVE)
    # Denormalised from the latest score, so lists can show and filter it without a join.
    current_score = models.SmallIntegerField(_("current score"), null=True, blank=True)

    class Meta:
        verbose_name = _("consumer")
        verbose_name_plural = _("consumers")
        indexes = [
            models.Index(fields=["province", "public_id"], name="consumer_province_public_id"),
            models.Index(fields=["phone_hmac"], name="consumer_phone_hmac"),
            # Here rather than db_index=True: no pattern-ops twin index, which a hash never needs.
            models.Index(fields=["resident_id_hmac"], name="consumer_resident_id_hmac"),
        ]
        # Object permissions for case-level grants (SPEC §3), held in the access app's guardian tables.
        permissions = [
            ("view_records", "View this consumer's records"),
            ("view_scores", "View this consumer's scores"),
        ]

    def __str__(self) -> str:
        # The admin's change log keeps this text forever: never personal data.
        return self.public_id

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Save, and keep this consumer's rows in the key tables in step, in the same transaction (a
        duplicate public id or resident ID fails here, on the key table's primary key)."""
        from portal.records.keys import consumer_keys_sync

        with transaction.atomic():
            super().save(*args, **kwargs)
            consumer_keys_sync(consumer_ids=[self.pk])


# Key tables: each maps an identifier a request arrives with to the consumer's id, and is keyed (and, on
# Citus, distributed) by that identifier, so its uniqueness holds across the cluster and a lookup by it
# reads one shard, after which the consumer's own rows are read by id on one shard too (deploy/SCALING.md
# §3). Derived from records_consumer by portal/records/keys.py; no foreign key, because a table distributed
# by the identifier cannot reference one distributed by consumer (Citus allows foreign keys between
# distributed tables only on their co-located distribution columns).
class ConsumerPublicId(models.Model):
    public_id = models.CharField(_("public id"), max_length=PUBLIC_ID_LENGTH, primary_key=True)
    consumer = models.ForeignKey(Consumer, on_delete=models.CASCADE, db_constraint=False, related_name="+")

    class Meta:
        verbose_name = _("consumer public id")
        verbose_name_plural = _("consumer public ids")

    def __str__(self) -> str:
        return self.public_id


class ConsumerResidentId(models.Model):
    resident_id_hmac = models.CharField(_("resident ID number (HMAC)"), max_length=80, primary_key=True)
    consumer = models.ForeignKey(Consumer, on_delete=models.CASCADE, db_constraint=False, related_name="+")

    class Meta:
        verbose_name = _("consumer resident ID")
        verbose_name_plural = _("consumer resident IDs")

    def __str__(self) -> str:
        return f"{self.consumer_id}"


class ConsumerPhone(models.Model):
    """Phone numbers are not unique (a household shares one): the key holds the consumer too."""

    pk = models.CompositePrimaryKey("phone_hmac", "consumer")
    phone_hmac = models.CharField(_("mobile number (HMAC)"), max_length=80)
    consumer = models.ForeignKey(Consumer, on_delete=models.CASCADE, db_constraint=False, related_name="+")

    class Meta:
        verbose_name = _("consumer mobile number")
        verbose_name_plural = _("consumer mobile numbers")

    def __str__(self) -> str:
        return f"{self.consumer_id}"


class Account(models.Model):
    class Product(models.TextChoices):
        WALLET = "wallet", _("Wallet")
        CREDIT_LINE = "credit_line", _("Revolving credit line")
        INSTALMENT_LOAN = "instalment_loan", _("Instalment loan")
        CASH_LOAN = "cash_loan", _("Cash loan")
        MONEY_FUND = "money_fund", _("Money-market fund")
        INSURANCE = "insurance", _("Insurance")

    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        CLOSED = "closed", _("Closed")
        DELINQUENT = "delinquent", _("Delinquent")

    consumer = models.ForeignKey(Consumer, on_delete=models.PROTECT, related_name="accounts")
    product = models.CharField(_("product"), max_length=20, choices=Product.choices)
    credit_limit = models.DecimalField(_("limit"), max_digits=14, decimal_places=2, null=True, blank=True)
    balance = models.DecimalField(_("balance"), max_digits=14, decimal_places=2)
    opened_on = models.DateField(_("opened on"))
    status = models.CharField(_("status"), max_length=12, choices=Status.choices, default=Status.OPEN)

    class Meta:
        verbose_name = _("account")
        verbose_name_plural = _("accounts")

    def __str__(self) -> str:
        return f"{self.get_product_display()} #{self.pk}"


class Merchant(models.Model):
    class Category(models.TextChoices):
        GROCERIES = "groceries", _("Groceries")
        DINING = "dining", _("Dining")
        TRANSPORT = "transport", _("Transport")
        UTILITIES = "utilities", _("Utilities and telecom")
        ELECTRONICS = "electronics", _("Electronics")
        APPAREL = "apparel", _("Apparel")
        ONLINE_RETAIL = "online_retail", _("Online retail")
        TRAVEL = "travel", _("Travel")
        HEALTHCARE = "healthcare", _("Healthcare")
        EDUCATION = "education", _("Education")
        ENTERTAINMENT = "entertainment", _("Entertainment")
        GAMING = "gaming", _("Online gaming")

    code = models.CharField(_("merchant code"), max_length=12, unique=True)
    name = models.CharField(_("name"), max_length=100)
    category = models.CharField(_("category"), max_length=20, choices=Category.choices)

    class Meta:
        verbose_name = _("merchant")
        verbose_name_plural = _("merchants")

    def __str__(self) -> str:
        return self.name


class Transaction(models.Model):
    class Kind(models.TextChoices):
        PAYMENT = "payment", _("Payment")
        TRANSFER_IN = "transfer_in", _("Transfer in")
        TRANSFER_OUT = "transfer_out", _("Transfer out")
        LOAN_DISBURSEMENT = "loan_disbursement", _("Loan disbursement")
        REPAYMENT = "repayment", _("Repayment")
        FUND_BUY = "fund_buy", _("Fund purchase")
        FUND_REDEEM = "fund_redeem", _("Fund redemption")
        INSURANCE_PREMIUM = "insurance_premium", _("Insurance premium")
        FEE = "fee", _("Fee")

    class Channel(models.TextChoices):
        APP = "app", _("App")
        QR_CODE = "qr_code", _("QR code")
        POS = "pos", _("Point of sale")
        ONLINE = "online", _("Online checkout")
        BANK_TRANSFER = "bank_transfer", _("Bank transfer")
        AUTO_DEBIT = "auto_debit", _("Automatic debit")

    id = models.BigAutoField(primary_key=True)
    # Indexed through consumer_time below; a separate single-column index would only cost writes.
    consumer = models.ForeignKey(
        Consumer, on_delete=models.PROTECT, related_name="transactions", db_index=False
    )
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="transactions")
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)
    amount = models.DecimalField(_("amount (CNY)"), max_digits=14, decimal_places=2)
    merchant = models.ForeignKey(
        Merchant, on_delete=models.PROTECT, related_name="transactions", null=True, blank=True, db_index=False
    )
    occurred_at = models.DateTimeField(_("time"))
    channel = models.CharField(_("channel"), max_length=20, choices=Channel.choices)
    # Repayments only: when the instalment was due and how late it was paid.
    due_date = models.DateField(_("due date"), null=True, blank=True)
    days_late = models.PositiveSmallIntegerField(_("days late"), null=True, blank=True)

    class Meta:
        verbose_name = _("transaction")
        verbose_name_plural = _("transactions")
        indexes = [
            # A consumer's transactions newest first, keyset-paged on (occurred_at, id).
            models.Index(fields=["consumer", "-occurred_at", "-id"], name="txn_consumer_time"),
            # Transactions across a scope, newest first: a keyset page starts where the cursor points.
            models.Index(fields=["-occurred_at", "-id"], name="txn_time"),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="txn_amount_positive"),
            models.CheckConstraint(
                condition=models.Q(kind="repayment")
                | models.Q(due_date__isnull=True, days_late__isnull=True),
                name="txn_due_only_on_repayments",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk}"


class Segment(models.Model):
    """A named set of consumers: a product line, a region, a case list. Access is granted per segment."""

    class Kind(models.TextChoices):
        PRODUCT_LINE = "product_line", _("Product line")
        REGION = "region", _("Region")
        CASE_LIST = "case_list", _("Case list")

    slug = models.SlugField(_("slug"), max_length=60, unique=True)
    name = models.CharField(_("name"), max_length=200)
    name_zh = models.CharField(_("name (Chinese)"), max_length=200)
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)
    description = models.TextField(_("description"), blank=True)
    consumers: models.ManyToManyField[Consumer, SegmentMembership] = models.ManyToManyField(
        Consumer, through="SegmentMembership", related_name="segments"
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("segment")
        verbose_name_plural = _("segments")
        # Object permissions for segment grants (SPEC §3), held in the access app's guardian tables.
        permissions = [
            ("view_aggregates", "View summary figures of the segment"),
            ("view_masked_records", "View the segment's records with personal data masked"),
            ("view_records", "View the segment's records"),
            ("view_scores", "View the segment's scores"),
            ("export_records", "Export the segment's records"),
        ]

    def __str__(self) -> str:
        return self.name


class SegmentMembership(models.Model):
    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="memberships", db_index=False)
    consumer = models.ForeignKey(
        Consumer, on_delete=models.PROTECT, related_name="memberships", db_index=False
    )

    class Meta:
        verbose_name = _("segment membership")
        verbose_name_plural = _("segment memberships")
        constraints = [
            # Serves "consumers of a segment"; the index below serves "segments of a consumer".
            models.UniqueConstraint(fields=["segment", "consumer"], name="membership_unique"),
        ]
        indexes = [models.Index(fields=["consumer", "segment"], name="membership_consumer_segment")]

    def __str__(self) -> str:
        return f"{self.segment_id}:{self.consumer_id}"
