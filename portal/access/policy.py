"""The access policy: the one answer to "what may this user see?". Every path to consumer data asks it.

Scope comes only from approved, unexpired access grants; until a user holds one, they see no consumer,
whatever their role or staff flags (SPEC §3: nobody has implicit scope).
"""

from django.db.models import QuerySet

from portal.accounts.models import User
from portal.records.models import Account, Consumer, Transaction


def visible_consumers(user: User) -> QuerySet[Consumer]:
    # Grants arrive with the access workflow; without one there is no scope at all.
    return Consumer.objects.none()


def visible_accounts(user: User) -> QuerySet[Account]:
    return Account.objects.filter(consumer__in=visible_consumers(user))


def visible_transactions(user: User) -> QuerySet[Transaction]:
    return Transaction.objects.filter(consumer__in=visible_consumers(user))
