"""The web pages (SPEC §6 Web). Consumers are addressed by public id only."""

from django.urls import path

from portal.web.views import accounts, assets, audit, auth, exports, grants, records, scoring, segments

app_name = "web"

urlpatterns = [
    path("", auth.home, name="home"),
    path("favicon.ico", assets.favicon, name="favicon"),
    path("accounts/login/", auth.login_view, name="login"),
    path("accounts/logout/", auth.logout_view, name="logout"),
    path("accounts/enrol/", auth.enrol, name="enrol"),
    path("accounts/session/extend/", auth.session_keepalive, name="session-extend"),
    path("accounts/requests/", accounts.request_list, name="account-requests"),
    path(
        "accounts/requests/<str:kind>/<str:pk>/<str:verb>/",
        accounts.decide,
        name="account-request-decide",
    ),
    path("dashboard/", records.dashboard, name="dashboard"),
    path("consumers/", records.consumer_list, name="consumers"),
    path("consumers/<str:public_id>/", records.consumer_detail, name="consumer"),
    path("exports/", exports.export_list, name="exports"),
    path("exports/request/", exports.export_create, name="export-create"),
    path("exports/<str:export_id>/download/", exports.export_download, name="export-download"),
    path("overview/", segments.overview, name="overview"),
    path("segments/", segments.segment_list, name="segments"),
    path("segments/<str:segment_id>/", segments.segment_detail, name="segment"),
    path("grants/", grants.grant_list, name="grants"),
    path("grants/request/", grants.grant_request, name="grant-request"),
    path("grants/<str:grant_id>/", grants.grant_detail, name="grant"),
    path("grants/<str:grant_id>/approve/", grants.grant_approve, name="grant-approve"),
    path("grants/<str:grant_id>/reject/", grants.grant_reject, name="grant-reject"),
    path("grants/<str:grant_id>/revoke/", grants.grant_revoke, name="grant-revoke"),
    path("scoring/runs/", scoring.run_list, name="score-runs"),
    path("scoring/runs/progress.json", scoring.run_progress, name="score-runs-progress"),
    path("scoring/runs/start/", scoring.run_start, name="score-run-start"),
    path("scoring/models/", scoring.model_list, name="scoring-models"),
    path("scoring/models/<str:version>/", scoring.model_detail, name="scoring-model"),
    path("scoring/models/<str:version>/<str:step>/", scoring.model_step, name="scoring-model-step"),
    path("audit/events/", audit.event_list, name="audit-events"),
    path("audit/events/csv/", audit.event_csv, name="audit-events-csv"),
    path("audit/events/<str:event_id>/", audit.event_detail, name="audit-event"),
    path("audit/access-log/", audit.access_log, name="audit-access-log"),
    path("audit/chain/", audit.chain, name="audit-chain"),
    path("audit/checkpoints/<str:position>/download/", audit.checkpoint_download, name="audit-checkpoint"),
]
