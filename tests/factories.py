import factory

from portal.accounts.models import Organisation, User


class OrganisationFactory(factory.django.DjangoModelFactory[Organisation]):
    class Meta:
        model = Organisation
        django_get_or_create = ("short_name",)

    short_name = factory.Sequence(lambda n: f"org-{n}")
    name = factory.LazyAttribute(lambda o: f"Organisation {o.short_name}")
    kind = Organisation.Kind.REGULATOR


class UserFactory(factory.django.DjangoModelFactory[User]):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    role = User.Role.REGULATOR
    organisation = factory.SubFactory(OrganisationFactory)
    password = factory.django.Password("correct horse battery staple")

    @factory.post_generation
    def membership(obj: User, create: bool, extracted: bool | None, **kwargs) -> None:
        """The account's membership, approved (as if by two people; the workflow itself is tested in
        tests/accounts/test_memberships.py). `UserFactory(membership=False)` leaves the account without."""
        if not create or extracted is False:
            return
        from portal.accounts.models import Membership

        Membership.objects.create(
            user=obj,
            organisation=obj.organisation,
            role=obj.role,
            status=Membership.Status.APPROVED,
            reason="Test fixture.",
        )
        obj._sync_organisation_group()
