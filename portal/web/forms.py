"""The web's forms. Every refusal is shown next to the field it concerns, in the user's language."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
from typing import Any, cast

from django import forms
from django.contrib.auth import authenticate
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _

from audit.models import AuditEvent
from portal.access import services
from portal.access.models import CONSUMER_PERMISSIONS, SEGMENT_PERMISSIONS, Export, Permission
from portal.access.policy import PUBLIC_ID_PATTERN
from portal.accounts.models import Organisation, Role, User
from portal.records.models import Segment, Transaction
from scoring.models import ScoreRun

MAX_SEARCH_LENGTH = 64
# A search term is a public id, an 18-character resident ID or an 11-digit phone number.
SEARCH_PATTERN = re.compile(r"[0-9A-Za-z]{4,32}")
TEXT_FILTER_PATTERN = re.compile(r"[^\x00-\x1f]{1,200}")


class LoginForm(forms.Form):
    username = forms.CharField(label=_("Username"), max_length=150)
    password = forms.CharField(label=_("Password"), strip=False, widget=forms.PasswordInput)
    otp = forms.CharField(
        label=_("Authentication code"),
        required=False,
        max_length=16,
        help_text=_("Only if two-factor authentication is on for your account."),
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )

    error_messages = {"invalid_login": _("Sign-in failed. Check your username, password and code.")}

    def __init__(self, request: HttpRequest, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.request = request
        self.user: User | None = None

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if self.errors:
            return data
        user = authenticate(
            self.request,
            username=data.get("username"),
            password=data.get("password"),
            otp=data.get("otp") or None,
        )
        if user is None or not user.is_active:
            # One message for every failure: the form tells nothing of which part was wrong.
            raise forms.ValidationError(self.error_messages["invalid_login"], code="invalid_login")
        self.user = cast(User, user)
        return data


class SearchForm(forms.Form):
    q = forms.CharField(
        label=_("Public id, resident ID or mobile number"),
        max_length=MAX_SEARCH_LENGTH,
        required=True,
        error_messages={"required": _("Enter a public id, a resident ID number or a mobile number.")},
    )

    def clean_q(self) -> str:
        term = self.cleaned_data["q"].strip()
        if not SEARCH_PATTERN.fullmatch(term):
            raise forms.ValidationError(
                _("Not a public id, resident ID number or mobile number: letters and digits only."),
                code="malformed",
            )
        return term.upper() if term[0] in "cC" and len(term) == 17 else term


class DateInput(forms.DateInput):
    input_type = "date"


class DayField(forms.DateField):
    """A day whose start and end can be stored and compared as moments: the calendar's first and last days
    cannot (local midnight of 0001-01-01 lies before the first UTC moment, 9999-12-31 has no next day), so
    they are refused next to the field rather than failing the query."""

    widget = DateInput
    default_error_messages = {"out_of_range": _("This date is out of range.")}

    def validate(self, value: Any) -> None:
        super().validate(value)
        if value in self.empty_values:
            return
        try:
            next_day = value + timedelta(days=1)
            _start_of(value).astimezone(UTC)
            _start_of(next_day).astimezone(UTC)
        except (OverflowError, ValueError):
            raise forms.ValidationError(self.error_messages["out_of_range"], code="out_of_range") from None


def _start_of(day) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def _end_of(day) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.max))


class TransactionFilterForm(forms.Form):
    since = DayField(label=_("From"), required=False)
    until = DayField(label=_("To"), required=False)
    kind = forms.ChoiceField(label=_("Kind"), required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        kinds = cast(forms.ChoiceField, self.fields["kind"])
        kinds.choices = [("", _("All kinds")), *Transaction.Kind.choices]

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            self.add_error("until", _("The end date must not come before the start date."))
        return data

    def apply(self, transactions):
        data = self.cleaned_data
        if data.get("since"):
            transactions = transactions.filter(occurred_at__gte=_start_of(data["since"]))
        if data.get("until"):
            transactions = transactions.filter(occurred_at__lte=_end_of(data["until"]))
        if data.get("kind"):
            transactions = transactions.filter(kind=data["kind"])
        return transactions


class LocalNameChoiceField(forms.ModelChoiceField):
    """Segments and organisations by their name in the page's language."""

    def label_from_instance(self, obj: Any) -> str:
        chinese = getattr(obj, "name_zh", "")
        return chinese if (get_language() or "").startswith("zh") and chinese else str(obj)


PERMISSION_CHOICES = [(p.value, p.label) for p in Permission]


class GrantRequestForm(forms.Form):
    """A regulator asks for access for their organisation; compliance asks on behalf of a state shareholder.
    Every rule of the grant service is checked here first so that each refusal lands next to its field."""

    TARGETS = [("segment", _("A segment")), ("consumer", _("One consumer (case-level)"))]

    grantee_organisation = LocalNameChoiceField(
        label=_("Shareholder"), queryset=Organisation.objects.none(), required=False
    )
    target_kind = forms.ChoiceField(label=_("Access to"), choices=TARGETS, widget=forms.RadioSelect)
    segment = LocalNameChoiceField(label=_("Segment"), queryset=Segment.objects.all(), required=False)
    consumer = forms.CharField(label=_("Consumer public id"), required=False, max_length=32)
    permissions = forms.MultipleChoiceField(
        label=_("Permissions"), choices=PERMISSION_CHOICES, widget=forms.CheckboxSelectMultiple
    )
    purpose = forms.CharField(label=_("Purpose"), widget=forms.Textarea(attrs={"rows": 3}), max_length=2000)
    legal_basis = forms.CharField(label=_("Legal basis"), max_length=300)
    case_reference = forms.CharField(label=_("Case reference"), max_length=100)
    valid_from = DayField(label=_("Valid from"), required=False, help_text=_("Empty: from approval on."))
    valid_until = DayField(
        label=_("Valid until"), help_text=_("The end of this day; at most one year ahead.")
    )
    for_requester_only = forms.BooleanField(label=_("For me only, not my organisation"), required=False)

    def __init__(self, *args: Any, requester: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.requester = requester
        for name in ("purpose", "legal_basis", "case_reference", "permissions", "valid_until", "target_kind"):
            self.fields[name].error_messages["required"] = _("This field is required.")
        if requester.role == Role.COMPLIANCE:
            shareholders = Organisation.objects.filter(kind=Organisation.Kind.SHAREHOLDER)
            field = self.fields["grantee_organisation"]
            field.queryset = shareholders  # type: ignore[attr-defined]
            field.required = True
            field.error_messages["required"] = _("Choose the state shareholder.")
            del self.fields["for_requester_only"]
            # A state shareholder may only hold aggregates of a segment: the form offers nothing else.
            only = _("A state shareholder may only be granted aggregates of a segment.")
            permissions = cast(forms.MultipleChoiceField, self.fields["permissions"])
            permissions.choices = [(Permission.VIEW_AGGREGATES.value, Permission.VIEW_AGGREGATES.label)]
            permissions.error_messages["invalid_choice"] = only
            target = cast(forms.ChoiceField, self.fields["target_kind"])
            target.choices = self.TARGETS[:1]
            target.initial = "segment"
            target.error_messages["invalid_choice"] = only
            del self.fields["consumer"]
        else:
            del self.fields["grantee_organisation"]

    def clean_purpose(self) -> str:
        purpose = self.cleaned_data["purpose"].strip()
        if not purpose:
            raise forms.ValidationError(_("This field is required."), code="required")
        return purpose

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        now = timezone.now()
        kind = data.get("target_kind")
        if kind == "segment" and not data.get("segment"):
            self.add_error("segment", _("Choose a segment."))
        if kind == "consumer":
            public_id = (data.get("consumer") or "").strip().upper()
            if not PUBLIC_ID_PATTERN.fullmatch(public_id):
                self.add_error("consumer", _("Not a consumer public id."))
            data["consumer"] = public_id
        permissions = data.get("permissions") or []
        allowed = SEGMENT_PERMISSIONS if kind == "segment" else CONSUMER_PERMISSIONS
        if kind and any(p not in allowed for p in permissions):
            self.add_error(
                "permissions",
                _("A consumer grant can only carry view records and view scores.")
                if kind == "consumer"
                else _("Not a segment permission."),
            )
        if (
            self.requester.role == Role.COMPLIANCE
            and permissions
            and (list(permissions) != [Permission.VIEW_AGGREGATES] or kind != "segment")
        ):
            self.add_error(
                "permissions", _("A state shareholder may only be granted aggregates of a segment.")
            )
        valid_from = _start_of(data["valid_from"]) if data.get("valid_from") else now
        if data.get("valid_from") and _end_of(data["valid_from"]) < now:
            self.add_error("valid_from", _("A grant cannot start in the past."))
        elif valid_from > now + services.MAX_GRANT_LENGTH:
            self.add_error("valid_from", _("A grant may start at most one year ahead."))
        until = data.get("valid_until")
        if until is not None:
            valid_until = _end_of(until)
            if valid_until <= now:
                self.add_error("valid_until", _("The end of a grant cannot be in the past."))
            elif valid_until <= valid_from:
                self.add_error("valid_until", _("The end must come after the start."))
            elif valid_until - max(valid_from, now) > services.MAX_GRANT_LENGTH + timedelta(days=1):
                self.add_error("valid_until", _("A grant may last at most one year."))
            data["valid_until_at"] = valid_until
        data["valid_from_at"] = _start_of(data["valid_from"]) if data.get("valid_from") else None
        return data


class DecisionForm(forms.Form):
    note = forms.CharField(
        label=_("Note (optional)"), required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 3})
    )


class RejectForm(forms.Form):
    note = forms.CharField(
        label=_("Why is it rejected?"),
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
        error_messages={"required": _("Say why the request is rejected.")},
    )


class RevokeForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason"),
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
        error_messages={"required": _("Say why the grant is revoked.")},
    )


class ExportRequestForm(forms.Form):
    segment = forms.IntegerField(min_value=1, max_value=2**62)
    kind = forms.ChoiceField(choices=Export.Kind.choices, initial=Export.Kind.TRANSACTIONS)


class RunStartForm(forms.Form):
    kind = forms.ChoiceField(label=_("Kind"), choices=ScoreRun.Kind.choices)


class EventFilterForm(forms.Form):
    actor = forms.CharField(label=_("User"), required=False, max_length=150)
    organisation = forms.CharField(label=_("Organisation"), required=False, max_length=200)
    consumer = forms.CharField(label=_("Consumer public id"), required=False, max_length=32)
    action = forms.CharField(label=_("Action"), required=False, max_length=100)
    outcome = forms.ChoiceField(label=_("Outcome"), required=False)
    since = DayField(label=_("From"), required=False)
    until = DayField(label=_("To"), required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["outcome"]).choices = [
            ("", _("Any outcome")),
            *AuditEvent.Outcome.choices,
        ]

    def clean_consumer(self) -> str:
        value = self.cleaned_data["consumer"].strip().upper()
        if value and not PUBLIC_ID_PATTERN.fullmatch(value):
            raise forms.ValidationError(_("Not a consumer public id."), code="malformed")
        return value

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        for name in ("actor", "organisation", "action"):
            value = (data.get(name) or "").strip()
            if value and not TEXT_FILTER_PATTERN.fullmatch(value):
                self.add_error(name, _("Control characters are not allowed."))
            data[name] = value
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            self.add_error("until", _("The end date must not come before the start date."))
        return data

    def filters(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "actor": data.get("actor") or None,
            "organisation": data.get("organisation") or None,
            "consumer": data.get("consumer") or None,
            "action": data.get("action") or None,
            "outcome": data.get("outcome") or None,
            "since": _start_of(data["since"]) if data.get("since") else None,
            # The selector's `until` is exclusive: the day after the last day asked for.
            "until": _start_of(data["until"] + timedelta(days=1)) if data.get("until") else None,
        }


class AccessLogForm(forms.Form):
    consumer = forms.CharField(
        label=_("Consumer public id"),
        max_length=32,
        error_messages={"required": _("Enter a consumer public id.")},
    )

    def clean_consumer(self) -> str:
        value = self.cleaned_data["consumer"].strip().upper()
        if not PUBLIC_ID_PATTERN.fullmatch(value):
            raise forms.ValidationError(_("Not a consumer public id."), code="malformed")
        return value


class EnrolmentForm(forms.Form):
    """A credential reset's link: the owner's new password (the second factor is enrolled next)."""

    token = forms.CharField(widget=forms.HiddenInput, max_length=100)
    password1 = forms.CharField(
        label=_("New password"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    password2 = forms.CharField(
        label=_("Repeat the new password"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def clean(self) -> dict:
        data = super().clean() or {}
        if data.get("password1") and data.get("password1") != data.get("password2"):
            self.add_error("password2", _("The two passwords differ."))
        return data
