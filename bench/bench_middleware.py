"""Routes a benchmark client's requests to bench/bare_urls.py (set on that client's handler only)."""


class BareUrlconf:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.urlconf = "bare_urls"
        return self.get_response(request)
