from django.urls import path

from portal.api.views import accounts, audit, auth, exports, grants, records, scoring, segments

app_name = "api"

urlpatterns = [
    path("auth/token/", auth.TokenView.as_view(), name="token"),
    path("me/", auth.MeView.as_view(), name="me"),
    path("segments/", records.SegmentListView.as_view(), name="segment-list"),
    path("segments/<str:segment_id>/summary/", records.SegmentSummaryView.as_view(), name="segment-summary"),
    path(
        "segments/<str:segment_id>/fairness/", segments.SegmentFairnessView.as_view(), name="segment-fairness"
    ),
    path("consumers/", records.ConsumerListView.as_view(), name="consumer-list"),
    path("consumers/<str:public_id>/", records.ConsumerDetailView.as_view(), name="consumer-detail"),
    path(
        "consumers/<str:public_id>/transactions/",
        records.ConsumerTransactionListView.as_view(),
        name="consumer-transactions",
    ),
    path(
        "consumers/<str:public_id>/access-log/",
        audit.ConsumerAccessLogView.as_view(),
        name="consumer-access-log",
    ),
    path("audit/events/", audit.AuditEventListView.as_view(), name="audit-events"),
    path("audit/verify/", audit.AuditVerifyView.as_view(), name="audit-verify"),
    path("audit/checkpoints/", audit.AuditCheckpointListView.as_view(), name="audit-checkpoints"),
    path("audit/log/checkpoint", audit.LogCheckpointView.as_view(), name="audit-log-checkpoint"),
    path("audit/log/key", audit.LogKeyView.as_view(), name="audit-log-key"),
    path("audit/log/inclusion/", audit.LogInclusionView.as_view(), name="audit-log-inclusion"),
    path("audit/log/consistency/", audit.LogConsistencyView.as_view(), name="audit-log-consistency"),
    path("audit/log/tile/<str:level>/<path:index>", audit.LogTileView.as_view(), name="audit-log-tile"),
    path(
        "audit/checkpoints/<str:position>/",
        audit.AuditCheckpointDetailView.as_view(),
        name="audit-checkpoint",
    ),
    path("consumers/<str:public_id>/scores/", scoring.ConsumerScoresView.as_view(), name="consumer-scores"),
    path("scoring/models/", scoring.ScorecardListView.as_view(), name="scoring-models"),
    path("scoring/models/<str:version>/", scoring.ScorecardDetailView.as_view(), name="scoring-model"),
    path(
        "scoring/models/<str:version>/<str:step>/",
        scoring.ScorecardStepView.as_view(),
        name="scoring-model-step",
    ),
    path("scoring/runs/", scoring.ScoreRunListView.as_view(), name="scoring-runs"),
    path("scoring/runs/<str:run_id>/", scoring.ScoreRunDetailView.as_view(), name="scoring-run"),
    path("transactions/", records.TransactionListView.as_view(), name="transaction-list"),
    path("exports/", exports.ExportListView.as_view(), name="export-list"),
    path("exports/<str:export_id>/", exports.ExportDetailView.as_view(), name="export-detail"),
    path("exports/<str:export_id>/download/", exports.ExportDownloadView.as_view(), name="export-download"),
    path("grants/", grants.GrantListView.as_view(), name="grant-list"),
    path("grants/<str:grant_id>/approve/", grants.GrantApproveView.as_view(), name="grant-approve"),
    path("grants/<str:grant_id>/reject/", grants.GrantRejectView.as_view(), name="grant-reject"),
    path("grants/<str:grant_id>/revoke/", grants.GrantRevokeView.as_view(), name="grant-revoke"),
    path("accounts/", accounts.AccountListView.as_view(), name="account-list"),
    path(
        "accounts/<str:username>/deactivate/",
        accounts.AccountDeactivateView.as_view(),
        name="account-deactivate",
    ),
    path("memberships/", accounts.MembershipListView.as_view(), name="membership-list"),
    path(
        "memberships/<str:membership_id>/approve/",
        accounts.MembershipApproveView.as_view(),
        name="membership-approve",
    ),
    path(
        "memberships/<str:membership_id>/reject/",
        accounts.MembershipRejectView.as_view(),
        name="membership-reject",
    ),
    path("credential-resets/", accounts.CredentialResetListView.as_view(), name="credential-reset-list"),
    path(
        "credential-resets/<str:reset_id>/approve/",
        accounts.CredentialResetApproveView.as_view(),
        name="credential-reset-approve",
    ),
    path(
        "credential-resets/<str:reset_id>/reject/",
        accounts.CredentialResetRejectView.as_view(),
        name="credential-reset-reject",
    ),
]
