import pytest
from django.core.exceptions import ValidationError

from portal.accounts.models import Organisation, User
from tests.factories import OrganisationFactory, UserFactory


@pytest.mark.django_db
def test_an_organisation_owns_a_group():
    organisation = OrganisationFactory.create(short_name="pbc")
    assert organisation.group.name == "org:pbc"


@pytest.mark.django_db
def test_a_user_is_in_their_organisations_group_only_while_their_membership_is_in_force():
    first, second = OrganisationFactory.create(), OrganisationFactory.create()
    user = UserFactory.create(organisation=first)
    assert list(user.groups.all()) == [first.group]
    # A move nobody approved (written straight to the row) leaves the old group and joins none.
    user.organisation = second
    user.save()
    assert list(user.groups.all()) == []
    assert not UserFactory.create(organisation=first, membership=False).groups.exists()


@pytest.mark.django_db
def test_a_role_must_fit_the_organisation_kind():
    shareholder_org = OrganisationFactory.create(kind=Organisation.Kind.SHAREHOLDER)
    user = UserFactory.build(role=User.Role.REGULATOR, organisation=shareholder_org)
    with pytest.raises(ValidationError, match="role"):
        user.full_clean()


@pytest.mark.django_db
def test_only_an_administrator_may_lack_an_organisation():
    with pytest.raises(ValidationError, match="organisation"):
        UserFactory.build(role=User.Role.AUDITOR, organisation=None).full_clean()
    UserFactory.build(role=User.Role.ADMIN, organisation=None, username="root").full_clean()
