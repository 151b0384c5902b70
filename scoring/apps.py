from django.apps import AppConfig


class ScoringConfig(AppConfig):
    """Scorecards, feature SQL, the score refresh service and its Celery tasks."""

    name = "scoring"
