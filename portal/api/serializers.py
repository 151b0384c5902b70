"""Output shapes and input validation. Masking happens here, from what the policy said about each row."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from rest_framework import serializers

from portal.access import masking
from portal.access.models import CONSUMER_PERMISSIONS, SEGMENT_PERMISSIONS, AccessGrant
from portal.accounts.models import CredentialReset, Membership, Role, User
from portal.records.models import Account, Consumer, Segment, Transaction


class OrganisationRefSerializer(serializers.Serializer):
    short_name = serializers.CharField()
    name = serializers.CharField()
    name_zh = serializers.CharField()
    kind = serializers.CharField()


class MeSerializer(serializers.ModelSerializer):
    organisation = OrganisationRefSerializer(allow_null=True)
    membership_in_force = serializers.BooleanField(
        read_only=True, help_text="False until a second person approved this account's organisation and role."
    )

    class Meta:
        model = User
        fields = [
            "username",
            "first_name",
            "last_name",
            "email",
            "role",
            "organisation",
            "membership_in_force",
        ]


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=200, trim_whitespace=False, style={"input_type": "password"})
    otp = serializers.CharField(max_length=12, required=False, allow_blank=True)


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField()
    expires_at = serializers.DateTimeField()


class SegmentSerializer(serializers.ModelSerializer):
    permissions = serializers.SerializerMethodField()
    size = serializers.SerializerMethodField()

    class Meta:
        model = Segment
        fields = ["id", "name", "name_zh", "kind", "size", "permissions"]

    def get_permissions(self, segment: Segment) -> list[str]:
        return sorted(self.context.get("permissions", {}).get(segment.pk, []))

    def get_size(self, segment: Segment) -> int | None:
        return getattr(segment, "size", None)


class AccountSerializer(serializers.ModelSerializer):
    class Meta:
        model = Account
        fields = ["product", "credit_limit", "balance", "opened_on", "status"]


class ConsumerSerializer(serializers.ModelSerializer):
    """A consumer in a list: `masked` says whether the caller holds only masked records for them."""

    masked = serializers.SerializerMethodField()

    class Meta:
        model = Consumer
        fields = [
            "public_id",
            "name",
            "resident_id",
            "phone",
            "province",
            "city",
            "birth_year",
            "joined_on",
            "status",
            "masked",
        ]

    def get_masked(self, consumer: Consumer) -> bool:
        return not getattr(consumer, "full_records", False)

    def to_representation(self, consumer: Consumer) -> dict[str, Any]:
        data = super().to_representation(consumer)
        data.update(masking.identity(consumer, masked=data["masked"]))
        return data


def _consumer_fields(consumer: Consumer, *, masked: bool) -> dict[str, Any]:
    """ConsumerSerializer's fields of one consumer, masked as the caller's permission says."""
    return {
        "public_id": consumer.public_id,
        **masking.identity(consumer, masked=masked),
        "province": consumer.province,
        "city": consumer.city,
        "birth_year": consumer.birth_year,
        "joined_on": consumer.joined_on.isoformat(),
        "status": consumer.status,
        "masked": masked,
    }


def consumer_rows(consumers: list[Consumer]) -> list[dict[str, Any]]:
    """ConsumerSerializer's output for a page of consumers, byte for byte, without a field tree per row."""
    return [
        _consumer_fields(consumer, masked=not getattr(consumer, "full_records", False))
        for consumer in consumers
    ]


class ConsumerDetailSerializer(serializers.ModelSerializer):
    masked = serializers.BooleanField()
    current_score = serializers.IntegerField(allow_null=True)
    accounts = AccountSerializer(many=True)
    segments = serializers.ListField(child=serializers.DictField())

    class Meta:
        model = Consumer
        fields = [
            "public_id",
            "name",
            "resident_id",
            "phone",
            "province",
            "city",
            "birth_year",
            "joined_on",
            "status",
            "masked",
            "current_score",
            "accounts",
            "segments",
        ]

    def to_representation(self, instance: dict[str, Any]) -> dict[str, Any]:
        consumer: Consumer = instance["consumer"]
        return {
            **_consumer_fields(consumer, masked=instance["masked"]),
            "current_score": instance["current_score"],
            "accounts": [
                {  # AccountSerializer's output, without a field tree per account
                    "product": account.product,
                    "credit_limit": None
                    if account.credit_limit is None
                    else format(account.credit_limit, "f"),
                    "balance": format(account.balance, "f"),
                    "opened_on": account.opened_on.isoformat(),
                    "status": account.status,
                }
                for account in instance["accounts"]
            ],
            "segments": instance["segments"],
        }


class TransactionSerializer(serializers.ModelSerializer):
    consumer = serializers.CharField(source="consumer.public_id")
    account_product = serializers.CharField(source="account.product")
    merchant = serializers.CharField(source="merchant.name", allow_null=True, default=None)
    merchant_category = serializers.CharField(source="merchant.category", allow_null=True, default=None)
    currency = serializers.SerializerMethodField()

    class Meta:
        model = Transaction
        fields = [
            "consumer",
            "occurred_at",
            "kind",
            "amount",
            "currency",
            "account_product",
            "merchant",
            "merchant_category",
            "channel",
            "due_date",
            "days_late",
        ]

    def get_currency(self, txn: Transaction) -> str:
        return "CNY"


# The columns a transaction row is shaped from, in one query: plain values, no model instances.
TRANSACTION_VALUES = (
    "id",
    "consumer_id",
    "consumer__public_id",
    "occurred_at",
    "kind",
    "amount",
    "account__product",
    "merchant__name",
    "merchant__category",
    "channel",
    "due_date",
    "days_late",
)


def transaction_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """TransactionSerializer's output for rows of TRANSACTION_VALUES, byte for byte (its fields' own
    formatting: times in the current zone, ISO 8601; amounts as fixed-point strings), without building a
    model instance and a field tree per row: on a page of 50 that is most of the request's time."""
    zone = timezone.get_current_timezone()
    shaped = []
    for row in rows:
        occurred = row["occurred_at"].astimezone(zone).isoformat()
        due = row["due_date"]
        shaped.append(
            {
                "consumer": row["consumer__public_id"],
                "occurred_at": occurred[:-6] + "Z" if occurred.endswith("+00:00") else occurred,
                "kind": row["kind"],
                "amount": format(row["amount"], "f"),
                "currency": "CNY",
                "account_product": row["account__product"],
                "merchant": row["merchant__name"],
                "merchant_category": row["merchant__category"],
                "channel": row["channel"],
                "due_date": due.isoformat() if due is not None else None,
                "days_late": row["days_late"],
            }
        )
    return shaped


class GrantSerializer(serializers.ModelSerializer):
    grantee_organisation: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="short_name", read_only=True, allow_null=True
    )
    grantee_user: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    requested_by: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )
    decided_by: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    revoked_by: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    target = serializers.SerializerMethodField()

    class Meta:
        model = AccessGrant
        fields = [
            "id",
            "status",
            "grantee_organisation",
            "grantee_user",
            "target",
            "permissions",
            "purpose",
            "legal_basis",
            "case_reference",
            "valid_from",
            "valid_until",
            "requested_by",
            "requested_at",
            "decided_by",
            "decided_at",
            "decision_note",
            "revoked_by",
            "revoked_at",
            "revocation_reason",
        ]

    def get_target(self, grant: AccessGrant) -> dict[str, Any]:
        if grant.segment is not None:
            return {"kind": "segment", "id": grant.segment.pk, "name": grant.segment.name}
        return {"kind": "consumer", "public_id": grant.consumer.public_id if grant.consumer else None}


class GrantRequestSerializer(serializers.Serializer):
    segment = serializers.IntegerField(required=False, min_value=1)
    consumer = serializers.CharField(required=False, max_length=32)
    permissions = serializers.ListField(
        child=serializers.ChoiceField(choices=sorted(SEGMENT_PERMISSIONS | CONSUMER_PERMISSIONS)),
        allow_empty=False,
        max_length=5,
    )
    purpose = serializers.CharField(max_length=2000)
    legal_basis = serializers.CharField(max_length=300)
    case_reference = serializers.CharField(max_length=100)
    valid_from = serializers.DateTimeField(required=False)
    valid_until = serializers.DateTimeField()
    grantee_organisation = serializers.SlugField(required=False, max_length=50)
    for_requester_only = serializers.BooleanField(required=False, default=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("segment" in attrs) == ("consumer" in attrs):
            raise serializers.ValidationError({"segment": ["Name exactly one target: segment or consumer."]})
        return attrs


class GrantDecisionSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, max_length=2000)


class GrantRevokeSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=2000)


def _username() -> serializers.SlugRelatedField:
    return serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)


class MembershipSerializer(serializers.ModelSerializer):
    user = _username()
    organisation: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="short_name", read_only=True, allow_null=True
    )
    requested_by = _username()
    decided_by = _username()
    ended_by = _username()

    class Meta:
        model = Membership
        fields = [
            "id",
            "user",
            "organisation",
            "role",
            "status",
            "reason",
            "requested_by",
            "requested_at",
            "decided_by",
            "decided_at",
            "decision_note",
            "ended_by",
            "ended_at",
            "end_reason",
        ]


class MembershipRequestSerializer(serializers.Serializer):
    user = serializers.CharField(max_length=150, help_text="The account's username.")
    role = serializers.ChoiceField(choices=Role.choices)
    organisation = serializers.SlugField(
        required=False,
        allow_null=True,
        max_length=50,
        help_text="Short name; none only for an administrator.",
    )
    reason = serializers.CharField(max_length=2000)


class AccountCreateSerializer(serializers.Serializer):
    username = serializers.RegexField(r"^[\w.@+-]+\Z", max_length=150)
    email = serializers.EmailField(required=False, allow_blank=True, default="")
    first_name = serializers.CharField(required=False, allow_blank=True, max_length=150, default="")
    last_name = serializers.CharField(required=False, allow_blank=True, max_length=150, default="")
    role = serializers.ChoiceField(choices=Role.choices)
    organisation = serializers.SlugField(required=False, allow_null=True, max_length=50)
    reason = serializers.CharField(max_length=2000)


class AccountDeactivateSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=2000)


class CredentialResetSerializer(serializers.ModelSerializer):
    user = _username()
    requested_by = _username()
    decided_by = _username()

    class Meta:
        model = CredentialReset
        fields = [
            "id",
            "user",
            "status",
            "reason",
            "requested_by",
            "requested_at",
            "decided_by",
            "decided_at",
            "decision_note",
            "expires_at",
            "used_at",
        ]


class CredentialResetRequestSerializer(serializers.Serializer):
    user = serializers.CharField(max_length=150, help_text="The account's username.")
    reason = serializers.CharField(max_length=2000)


class CredentialResetIssuedSerializer(CredentialResetSerializer):
    enrolment_url = serializers.CharField(
        read_only=True,
        help_text="Shown once: hand it to the account's owner; it works once, until expires_at.",
    )

    class Meta(CredentialResetSerializer.Meta):
        fields = [*CredentialResetSerializer.Meta.fields, "enrolment_url"]
