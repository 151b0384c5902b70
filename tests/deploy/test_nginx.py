"""The nginx sites and the audit trail agree on the client address: nginx replaces X-Forwarded-For with
the peer it sees, gunicorn is reached from nginx's address only, and that address is the trusted proxy."""

from __future__ import annotations

import re

import pytest
from django.test import RequestFactory

from audit.recorder import client_ip
from tests.deploy.conftest import DEPLOY, load_script

render = load_script("smoke/render_nginx.py")
SITES = [DEPLOY / "nginx" / "portal.conf", DEPLOY / "nginx" / "container.conf.template"]


def _env_example() -> dict[str, str]:
    lines = (DEPLOY / "portal.env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if re.match(r"^[A-Z_]+=", line))


@pytest.mark.parametrize("site", SITES, ids=lambda p: p.name)
def test_every_proxied_location_replaces_forwarded_for(site):
    text = site.read_text()
    proxied = text.count("proxy_pass http://portal_web;")
    assert proxied >= 1
    assert text.count("proxy_set_header X-Forwarded-For   $remote_addr;") == proxied
    assert "$proxy_add_x_forwarded_for" not in text  # appending would let a client choose its address
    assert text.count("proxy_hide_header X-Request-ID;") == proxied


def test_host_site_proxies_to_the_gunicorn_address_the_environment_trusts():
    env = _env_example()
    upstream = re.search(r"server (\S+):\d+;", (DEPLOY / "nginx" / "portal.conf").read_text())
    assert upstream is not None
    assert upstream.group(1) in env["TRUSTED_PROXIES"].split(",")
    assert upstream.group(1) in env["FORWARDED_ALLOW_IPS"].split(",")


def test_recorded_client_is_the_address_nginx_forwarded(settings):
    settings.TRUSTED_PROXIES = _env_example()["TRUSTED_PROXIES"].split(",")
    factory = RequestFactory()
    # What nginx sends after replacing a forged header with the peer it saw.
    via_nginx = factory.get("/", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.7")
    assert client_ip(via_nginx) == "198.51.100.7"
    # A client reaching gunicorn directly cannot choose its recorded address.
    direct = factory.get("/", REMOTE_ADDR="192.0.2.10", HTTP_X_FORWARDED_FOR="198.51.100.7")
    assert client_ip(direct) == "192.0.2.10"


def test_rendering_changes_only_the_machine_specific_directives(tmp_path):
    site = (DEPLOY / "nginx" / "portal.conf").read_text()
    rendered = render.render_site(
        site,
        server_name="localhost",
        address="127.0.0.1",
        http_port=8822,
        tls_port=8823,
        upstream="127.0.0.1:8821",
        static_root=tmp_path / "static",
        certificate=tmp_path / "cert.pem",
        key=tmp_path / "key.pem",
        logs=tmp_path / "logs",
    )
    assert "listen 127.0.0.1:8823 ssl http2;" in rendered
    assert "server 127.0.0.1:8821;" in rendered
    assert f"alias {tmp_path}/static/;" in rendered
    assert "/etc/ssl/portal" not in rendered and "/var/log/nginx" not in rendered
    unchanged = [line for line in site.splitlines() if "proxy_set_header" in line or "add_header" in line]
    assert all(line in rendered.splitlines() for line in unchanged)


def test_rendering_refuses_a_site_without_an_expected_directive(tmp_path):
    site = (DEPLOY / "nginx" / "portal.conf").read_text().replace("listen 443 ssl http2;", "listen 443 ssl;")
    with pytest.raises(render.SiteChanged, match="listen 443 ssl http2"):
        render.render_site(
            site,
            server_name="localhost",
            address="127.0.0.1",
            http_port=8822,
            tls_port=8823,
            upstream="127.0.0.1:8821",
            static_root=tmp_path,
            certificate=tmp_path / "c",
            key=tmp_path / "k",
            logs=tmp_path,
        )


# What would put a search term (resident ID or phone number in `q`) into a log line: the request line or URI
# with its arguments, the arguments themselves, or the Referer of a page reached from a results page.
NGINX_LEAKS = ("$request ", '$request"', "$request_uri", "$args", "$query_string", "$http_referer", "$arg_")
GUNICORN_LEAKS = ("%(r)s", "%(q)s", "%(f)s", "%({referer}i)s")


@pytest.mark.parametrize(
    "site", [*SITES, DEPLOY / "k8s" / "config.yaml"], ids=lambda p: f"{p.parent.name}/{p.name}"
)
def test_access_logs_carry_no_query_string_or_referer(site):
    formats = re.findall(r"log_format\s+\w+((?:\s*'[^']*')+);", site.read_text())
    assert formats, f"no log_format in {site}"
    for fmt in formats:
        assert not [leak for leak in NGINX_LEAKS if leak in fmt], fmt
        assert "$uri" in fmt


def test_gunicorn_access_log_carries_the_path_only():
    namespace: dict = {}
    exec((DEPLOY / "gunicorn.conf.py").read_text(), namespace)  # noqa: S102 (our own configuration file)
    fmt = namespace["access_log_format"]
    assert not [leak for leak in GUNICORN_LEAKS if leak in fmt], fmt
    assert "%(U)s" in fmt
