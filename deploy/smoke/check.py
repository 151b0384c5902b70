#!/usr/bin/env python3
"""The smoke test's client: talks to the running stack only through nginx, over verified TLS.

Checks, in order: /healthz is ok (database, broker, a worker, beat, the audit triggers); static files come
from nginx; plain HTTP redirects to HTTPS; an unknown Host is refused (ALLOWED_HOSTS); `regulator` logs in
and reads one consumer from another client address (127.0.0.2) while sending a forged X-Forwarded-For, and
exports a segment (built by the exports worker, downloaded from web with the recorded SHA-256); then,
as `auditor`, the audit event of that read appears sealed by the worker (chain position, hash, sealed_at),
with the client address nginx forwarded (not the forged one) and the request id nginx issued. Standard
library only; exits non-zero with a message on the first failed check.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import ssl
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

FORGED_ADDRESS = "203.0.113.9"  # TEST-NET-3: a client's claim that nginx must overwrite


class SmokeFailure(Exception):
    pass


class Client:
    def __init__(self, *, host: str, port: int, cafile: Path, source: str, server_name: str) -> None:
        self.host, self.port, self.source, self.server_name = host, port, source, server_name
        self.context = ssl.create_default_context(cafile=str(cafile))

    def request(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        host_header: str | None = None,
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        connection = http.client.HTTPSConnection(
            self.host,
            self.port,
            context=self.context,
            source_address=(self.source, 0),
            timeout=30,
        )
        # TLS is verified against 127.0.0.1 (in the certificate); the Host header may differ (ALLOWED_HOSTS).
        try:
            all_headers = {"Host": host_header or f"{self.server_name}:{self.port}", **(headers or {})}
            payload = None
            if body is not None:
                payload = json.dumps(body).encode()
                all_headers["Content-Type"] = "application/json"
            connection.request(method, path, body=payload, headers=all_headers)
            response = connection.getresponse()
            return response.status, response.headers, response.read()
        finally:
            connection.close()

    def json(self, method: str, path: str, **kwargs: Any) -> tuple[int, http.client.HTTPMessage, Any]:
        status, headers, raw = self.request(method, path, **kwargs)
        try:
            return status, headers, json.loads(raw)
        except ValueError:
            raise SmokeFailure(f"{method} {path}: {status}, not JSON: {raw[:200]!r}") from None


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise SmokeFailure(message)
    print(f"ok: {message}", flush=True)


def wait_healthy(client: Client, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            status, _, body = client.json("GET", "/healthz")
            last = (status, body)
            if status == 200 and body.get("status") == "ok" and body.get("beat", {}).get("ok"):
                return body
        except (OSError, SmokeFailure) as exc:
            last = exc
        time.sleep(1)
    raise SmokeFailure(f"/healthz not ok through nginx within {timeout:.0f} s; last answer: {last}")


def token(client: Client, username: str, password: str, **kwargs: Any) -> str:
    status, _, body = client.json(
        "POST", "/api/v1/auth/token/", body={"username": username, "password": password}, **kwargs
    )
    if status != 201 or "token" not in body:
        raise SmokeFailure(f"login as {username}: {status} {body}")
    return str(body["token"])


def export_through_the_worker(client: Client, auth: dict[str, str], args: argparse.Namespace) -> None:
    """An export: requested through nginx, built by the exports worker into PORTAL_VAR_DIR, downloaded
    through nginx from web (another process), the file's SHA-256 as the portal recorded it."""
    status, _, segments = client.json("GET", "/api/v1/segments/", headers=auth)
    exportable = [s for s in segments["results"] if "export_records" in s["permissions"]]
    expect(status == 200 and bool(exportable), f"regulator may export segment {exportable[0]['id']}")
    status, _, export = client.json(
        "POST", "/api/v1/exports/", body={"segment": exportable[0]["id"], "kind": "consumers"}, headers=auth
    )
    if status != 202:
        raise SmokeFailure(f"export request: {status} {export}")
    deadline = time.monotonic() + args.seal_timeout
    while export["status"] not in ("ready", "failed"):
        if time.monotonic() > deadline:
            raise SmokeFailure(f"the export was not built within {args.seal_timeout:.0f} s: {export}")
        time.sleep(1)
        _, _, export = client.json("GET", f"/api/v1/exports/{export['id']}/", headers=auth)
    expected_url = f"https://{args.server_name}:{args.port}/api/v1/exports/{export['id']}/download/"
    expect(
        export["status"] == "ready" and export["download"] == expected_url,
        f"export {export['id']} built by the exports worker ({export['row_count']} rows), "
        f"link {export['download']}",
    )
    status, _, body = client.request("GET", urlsplit(export["download"]).path, headers=auth)
    expect(
        status == 200 and hashlib.sha256(body).hexdigest() == export["sha256"],
        f"download through nginx: {len(body)} bytes, SHA-256 as recorded ({export['sha256'][:16]}…)",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, required=True, help="nginx's TLS port")
    parser.add_argument("--http-port", type=int, required=True, help="nginx's plain HTTP port")
    parser.add_argument("--cafile", type=Path, required=True, help="the self-signed certificate")
    parser.add_argument("--static-root", type=Path, required=True)
    parser.add_argument("--password-file", type=Path, required=True, help="DEMO_PASSWORD")
    parser.add_argument("--server-name", default="localhost")
    parser.add_argument("--client-address", default="127.0.0.2", help="source address of the regulator")
    parser.add_argument("--seal-timeout", type=float, default=90)
    args = parser.parse_args(argv)
    password = args.password_file.read_text().strip()

    local = Client(
        host="127.0.0.1", port=args.port, cafile=args.cafile, source="127.0.0.1", server_name=args.server_name
    )
    remote = Client(
        host="127.0.0.1",
        port=args.port,
        cafile=args.cafile,
        source=args.client_address,
        server_name=args.server_name,
    )
    try:
        health = wait_healthy(local, timeout=120)
        expect(
            health["database"]["engine"] == "postgresql" and health["broker"]["mode"] == "redis",
            f"/healthz through nginx: PostgreSQL, Redis, workers {health['worker']['responding']}, beat, "
            f"audit triggers present ({health['audit']['sealed']} sealed, "
            f"{health['audit']['pending']} pending)",
        )

        # Static files: served by nginx from STATIC_ROOT (Django serves none with DEBUG off).
        static_path = "admin/css/base.css"
        status, headers, body = local.request("GET", f"/static/{static_path}")
        on_disk = (args.static_root / static_path).read_bytes()
        expect(
            status == 200 and body == on_disk and headers.get("X-Content-Type-Options") == "nosniff",
            f"/static/{static_path} served by nginx from collectstatic's output "
            f"(sha256 {hashlib.sha256(body).hexdigest()[:12]}…)",
        )

        plain = http.client.HTTPConnection("127.0.0.1", args.http_port, timeout=10)
        plain.request("GET", "/api/v1/me/", headers={"Host": args.server_name})
        redirect = plain.getresponse()
        plain.close()
        expect(
            redirect.status == 301
            and (redirect.headers.get("Location") or "").startswith(
                f"https://{args.server_name}:{args.port}/"
            ),
            f"plain HTTP answers 301 to {redirect.headers.get('Location')}",
        )

        status, _, _ = local.request("GET", "/healthz", host_header="attacker.example")
        expect(status == 400, f"a request for an unknown host is refused by ALLOWED_HOSTS ({status})")

        status, _, body = local.json("GET", "/api/v1/consumers/")
        expect(status == 401, f"no credentials: 401 ({body.get('detail')})")

        # The regulator, from another address, claiming yet another one in X-Forwarded-For.
        forged = {"X-Forwarded-For": FORGED_ADDRESS}
        regulator = token(remote, "regulator", password, headers=forged)
        auth = {"Authorization": f"Bearer {regulator}", **forged}
        status, _, page = remote.json("GET", "/api/v1/consumers/?page_size=5", headers=auth)
        expect(
            status == 200 and page["results"], f"regulator lists consumers ({len(page['results'])} on page 1)"
        )
        public_id = page["results"][0]["public_id"]
        status, headers, consumer = remote.json("GET", f"/api/v1/consumers/{quote(public_id)}/", headers=auth)
        request_ids = headers.get_all("X-Request-ID") or []
        expect(
            status == 200 and consumer["public_id"] == public_id and len(request_ids) == 1,
            f"regulator reads consumer {public_id} through nginx (request id {request_ids})",
        )
        request_id = request_ids[0]

        export_through_the_worker(remote, auth, args)

        auditor = token(local, "auditor", password)
        query = urlencode({"actor": "regulator", "consumer": public_id, "action": "consumer.read"})
        deadline = time.monotonic() + args.seal_timeout
        event: dict[str, Any] | None = None
        while True:
            status, _, events = local.json(
                "GET", f"/api/v1/audit/events/?{query}", headers={"Authorization": f"Bearer {auditor}"}
            )
            if status != 200:
                raise SmokeFailure(f"auditor's event search: {status} {events}")
            matching = [e for e in events["results"] if e["request_id"] == request_id]
            event = matching[0] if matching else None
            if event is not None and event["chain_position"] is not None:
                break
            if time.monotonic() > deadline:
                raise SmokeFailure(
                    f"the read's audit event was not sealed within {args.seal_timeout:.0f} s: {event}"
                )
            time.sleep(1)
        expect(
            event["outcome"] == "allowed"
            and event["subjects"] == [public_id]
            and event["grant_id"] is not None,
            f"audit event #{event['id']}: consumer.read of {public_id} under grant {event['grant_id']}",
        )
        expect(
            len(event["hash"]) == 64 and event["sealed_at"] is not None,
            f"sealed by the audit worker: chain position {event['chain_position']}, "
            f"hash {event['hash'][:16]}…",
        )
        expect(
            event["client_ip"] == args.client_address,
            f"client IP recorded is the one nginx forwarded ({event['client_ip']}, "
            f"not the forged {FORGED_ADDRESS})",
        )
        expect(event["request_id"] == request_id, f"request id recorded is nginx's ({request_id})")

        status, _, verify = local.json(
            "GET", "/api/v1/audit/verify/", headers={"Authorization": f"Bearer {auditor}"}
        )
        expect(
            status == 200 and verify["ok"] and verify["sealed"] >= event["chain_position"],
            f"chain verifies over the API ({verify['sealed']} sealed, {verify['pending']} pending)",
        )
    except SmokeFailure as exc:
        print(f"SMOKE FAILED: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
