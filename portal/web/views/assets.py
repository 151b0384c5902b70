"""/favicon.ico: browsers ask for it at the site's root on every page that names no icon (the admin console,
the API docs), so it is answered there rather than left to 404."""

from __future__ import annotations

from django.contrib.staticfiles import finders
from django.http import FileResponse, Http404, HttpRequest
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET

FAVICON = "web/favicon.ico"


@require_GET
@cache_control(max_age=7 * 24 * 3600, public=True)
def favicon(request: HttpRequest) -> FileResponse:
    path = finders.find(FAVICON)
    if not isinstance(path, str):
        raise Http404(FAVICON)
    return FileResponse(open(path, "rb"), content_type="image/x-icon")  # FileResponse closes it
