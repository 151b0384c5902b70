"""Scores, scorecards and refresh runs over the API."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from audit.recorder import AuditWriteError
from portal.access.models import Permission
from portal.api import params
from portal.api.pagination import Keyset
from portal.api.schema import paginated
from portal.api.views.base import NOT_FOUND, PortalView
from portal.api.views.records import CURSOR_PARAMS, GRANT_HEADER_PARAM
from scoring import selectors, services
from scoring.models import CreditScore, Scorecard, ScoreRun

SCORE_PAGES = Keyset("-computed_at", "-id")
SCORECARD_PAGES = Keyset("-id")
RUN_PAGES = Keyset("-created_at", "-id")


class CreditScoreSerializer(serializers.ModelSerializer):
    model_version = serializers.CharField(source="scorecard.version")
    run = serializers.IntegerField(source="run_id")
    reasons = serializers.SerializerMethodField()

    class Meta:
        model = CreditScore
        fields = [
            "value",
            "computed_at",
            "model_version",
            "run",
            "watermark",
            "features_hash",
            "celery_task_id",
            "reasons",
        ]

    def get_reasons(self, score: CreditScore) -> list[dict[str, Any]]:
        return score.reasons


class RunRequestSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=ScoreRun.Kind.values)
    version = serializers.CharField(required=False, max_length=50)


class ConsumerScoresView(PortalView):
    gate = "records"
    action = "consumer.scores"

    @extend_schema(
        parameters=[*CURSOR_PARAMS, GRANT_HEADER_PARAM], responses=paginated(CreditScoreSerializer)
    )
    def get(self, request: Request, public_id: str) -> Response:
        params.reject_unknown(request, set())
        access = self.consumer_access(public_id, Permission.VIEW_SCORES)
        self.note.subjects = [access.consumer.public_id]
        page = SCORE_PAGES.paginate(request, selectors.score_history(access.scored()))
        self.note.row_count = len(page.results)
        return Response(page.as_dict(CreditScoreSerializer(page.results, many=True).data))


class ScorecardListView(PortalView):
    gate = "scoring_models"
    action = "scoring.models.read"

    @extend_schema(
        operation_id="v1_scoring_models_list", parameters=CURSOR_PARAMS, responses=OpenApiTypes.OBJECT
    )
    def get(self, request: Request) -> Response:
        params.reject_unknown(request, set())
        self.note.resource_kind = "scorecard"
        page = SCORECARD_PAGES.paginate(
            request,
            Scorecard.objects.select_related("fitted_by", "validated_by", "approved_by", "activated_by"),
        )
        return Response(page.as_dict([selectors.scorecard_model_card(card) for card in page.results]))


class ScorecardDetailView(PortalView):
    """One model version's card: source, features with bins, points and IV, the validation report, who
    fitted, validated, approved and activated it and when, its yearly review, and its latest stability."""

    gate = "scoring_models"
    action = "scoring.model.read"

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, version: str) -> Response:
        params.reject_unknown(request, set())
        self.note.resource_kind, self.note.requested_id = "scorecard", version[:100]
        card = selectors.scorecard_list().filter(version=version).first()
        if card is None:
            raise NotFound(NOT_FOUND)
        return Response(
            {**selectors.scorecard_model_card(card), "stability": selectors.scorecard_stability(card)}
        )


class ScorecardStepView(PortalView):
    """POST validate, approve or activate: a compliance officer who did not fit the model; every step and
    every refusal is on the audit trail."""

    gate = "scoring_models_decide"

    @extend_schema(
        request=None,
        responses={
            200: OpenApiTypes.OBJECT,
            409: OpenApiResponse(OpenApiTypes.OBJECT, description="The step is refused; `detail` says why."),
        },
    )
    def post(self, request: Request, version: str, step: str) -> Response:
        self.note.resource_kind, self.note.requested_id = "scorecard", version[:100]
        self.note.action = f"scoring.model.{step[:20]}"
        run_step = services.LIFECYCLE.get(step)
        card = Scorecard.objects.filter(version=version).first()
        if run_step is None or card is None:
            raise NotFound(NOT_FOUND)
        try:
            card = run_step(scorecard=card, actor=self.user)
        except services.GovernanceError as error:
            return Response({"detail": str(error)}, status=status.HTTP_409_CONFLICT)
        except AuditWriteError:
            return Response(
                {"detail": "The audit trail is unavailable."}, status=status.HTTP_503_SERVICE_UNAVAILABLE
            )
        card = selectors.scorecard_list().get(pk=card.pk)
        return Response(selectors.scorecard_model_card(card))


class ScoreRunListView(PortalView):
    gates = {"GET": "scoring_runs_read", "POST": "scoring_runs_start"}

    @extend_schema(
        operation_id="v1_scoring_runs_list", parameters=CURSOR_PARAMS, responses=OpenApiTypes.OBJECT
    )
    def get(self, request: Request) -> Response:
        self.note.action, self.note.resource_kind = "scoring.runs.read", "score_run"
        params.reject_unknown(request, set())
        page = RUN_PAGES.paginate(request, selectors.score_run_list())
        return Response(page.as_dict([selectors.score_run_progress(run) for run in page.results]))

    @extend_schema(
        request=RunRequestSerializer,
        responses={
            201: OpenApiTypes.OBJECT,
            409: OpenApiResponse(OpenApiTypes.OBJECT, description="A run of that kind is running already."),
        },
    )
    def post(self, request: Request) -> Response:
        self.note.action, self.note.resource_kind = "scoring.run.start", "score_run"
        form = RunRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            run = services.score_run_start(
                kind=form.validated_data["kind"],
                requested_by=self.user,
                version=form.validated_data.get("version"),
            )
        except services.UnknownScorecard as error:
            return Response({"version": [str(error)]}, status=status.HTTP_400_BAD_REQUEST)
        except (services.RunAlreadyRunning, services.NothingToScore) as error:
            return Response({"kind": [str(error)]}, status=status.HTTP_409_CONFLICT)
        except AuditWriteError:
            # A run that cannot be audited does not start, and nothing is served.
            return Response(
                {"detail": "The audit trail is unavailable."}, status=status.HTTP_503_SERVICE_UNAVAILABLE
            )
        self.note.requested_id = str(run.pk)
        run = selectors.score_run_get(run_id=run.pk) or run
        return Response(selectors.score_run_progress(run), status=status.HTTP_201_CREATED)


class ScoreRunDetailView(PortalView):
    gate = "scoring_runs_read"
    action = "scoring.run.read"

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, run_id: str) -> Response:
        self.note.resource_kind, self.note.requested_id = "score_run", run_id[:100]
        run = selectors.score_run_get(run_id=int(run_id)) if params.is_id(run_id) else None
        if run is None:
            raise NotFound(NOT_FOUND)
        return Response(selectors.score_run_progress(run))
