"""The credit-data oversight portal: the Django site and its own apps."""

from portal.celery import app as celery_app

__all__ = ["celery_app"]
