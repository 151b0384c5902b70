import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
application = get_wsgi_application()

from django.conf import settings  # noqa: E402

if settings.PRODUCTION:
    from portal.accounts.checks import refuse_demo_accounts

    # Production does not serve beside accounts with a published password (accounts.E001).
    refuse_demo_accounts()
