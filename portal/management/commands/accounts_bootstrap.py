"""manage.py accounts_bootstrap FIRST SECOND: the first two compliance officers of a fresh installation.

Memberships and credential resets need a compliance officer in force to approve them (SPEC §3), so the very
first two cannot be approved the usual way: here each one's membership is approved by the other, and an
account without a password yet gets a credential reset requested by its owner and approved by the other
officer; its enrolment link is printed once. Refused as soon as any compliance officer is in force.
"""

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.urls import reverse

from portal.accounts import services
from portal.accounts.models import User


class Command(BaseCommand):
    help = (
        "Put the first two compliance officers in force, each approved by the other; print enrolment links."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("first", help="username of a compliance account")
        parser.add_argument("second", help="username of another compliance account")
        parser.add_argument("--reason", required=True, help="why (recorded with each step)")

    def handle(self, *args, first: str, second: str, reason: str, **options) -> None:
        accounts = {}
        for username in (first, second):
            user = User.objects.filter(username=username).first()
            if user is None:
                raise CommandError(f"no account {username!r}: add it in the admin console first")
            accounts[username] = user
        try:
            with transaction.atomic():
                services.memberships_bootstrap(first=accounts[first], second=accounts[second], reason=reason)
                links = []
                for subject, other in ((first, second), (second, first)):
                    owner, colleague = User.objects.get(username=subject), User.objects.get(username=other)
                    if owner.has_usable_password():
                        continue
                    reset = services.credential_reset_request(requester=owner, user=owner, reason=reason)
                    _reset, secret = services.credential_reset_approve(reset=reset, approver=colleague)
                    links.append((subject, f"{reverse('web:enrol')}?token={secret}"))
        except services.AccountError as error:
            raise CommandError(error.message) from None
        self.stdout.write(f"{first} and {second} are in force as compliance officers.")
        for username, link in links:
            self.stdout.write(f"Enrolment link for {username} (once; prefix the portal's address): {link}")
