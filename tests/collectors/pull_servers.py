"""Local servers that speak the providers' documented audit-log APIs, for the pull tests: Okta's System Log
API, GitHub's audit log API and Microsoft's Management Activity API, each answering from its own state
(events are added while it runs) the way the provider's documentation says: paging links and headers,
cursors, rate-limit answers, and the credentials each expects.

`ReplayServer` is a `ThreadingHTTPServer` on 127.0.0.1 in a thread; every request is recorded. `throttle`
queues rate-limit answers for the next requests to a path prefix.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass
class Answer:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, document: Any, status: int = 200, headers: dict[str, str] | None = None, **more: str) -> Answer:
        return cls(status, json.dumps(document).encode(), {"Content-Type": "application/json", **(headers or {}),
                                                           **more})


class ReplayServer:
    def __init__(self, handle: Callable[[Request], Answer]) -> None:
        self.handle = handle
        self.requests: list[Request] = []
        self.throttles: list[tuple[str, Answer]] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                split = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                request = Request(self.command, split.path, {k: v[-1] for k, v in parse_qs(split.query).items()},
                                  {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length))
                answer = server._answer(request)
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            do_GET = do_POST = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def _answer(self, request: Request) -> Answer:
        with self._lock:
            self.requests.append(request)
            for index, (prefix, answer) in enumerate(self.throttles):
                if request.path.startswith(prefix):
                    del self.throttles[index]
                    return answer
        return self.handle(request)

    def throttle(self, prefix: str, answer: Answer) -> None:
        with self._lock:
            self.throttles.append((prefix, answer))

    def __enter__(self) -> ReplayServer:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _cursor(value: int) -> str:
    return base64.urlsafe_b64encode(f"pos:{value}".encode()).decode()


def _position(cursor: str) -> int:
    return int(base64.urlsafe_b64decode(cursor.encode()).decode().split(":")[1])


# --- Okta System Log API -------------------------------------------------------------------------------------


def okta_event(number: int, published: str = "2026-12-01T10:00:00.000Z") -> dict[str, Any]:
    """A LogEvent as Okta documents it (a subset of its fields)."""
    return {"uuid": f"okta-{number:05d}", "published": published, "eventType": "user.session.start",
            "version": "0", "severity": "INFO", "displayMessage": "User login to Okta",
            "actor": {"id": f"00u{number}", "type": "User", "alternateId": f"user{number}@example.org"},
            "client": {"ipAddress": "198.51.100.7"}, "outcome": {"result": "SUCCESS"}}


class OktaLogs:
    """`GET /api/v1/logs`: `since` + ascending order, pages of at most `page` events, a `next` link always
    (its `after` cursor is the position after the page), `SSWS` token, `X-Rate-Limit-*` headers."""

    def __init__(self, token: str, *, page: int = 100) -> None:
        self.token, self.page = token, page
        self.events: list[dict[str, Any]] = []
        self.pages: dict[int, bytes] = {}  # position -> a raw body served instead (a broken page)
        self.server = ReplayServer(self.handle)

    def handle(self, request: Request) -> Answer:
        if request.headers.get("authorization") != f"SSWS {self.token}":
            return Answer.json({"errorCode": "E0000011", "errorSummary": "Invalid token provided"}, 401)
        if request.path != "/api/v1/logs" or request.query.get("sortOrder") != "ASCENDING":
            return Answer.json({"errorSummary": "not found"}, 404)
        limit = min(int(request.query.get("limit", 100)), self.page)
        if "after" in request.query:
            start = _position(request.query["after"])
        else:
            since = request.query["since"]
            start = next((i for i, event in enumerate(self.events) if event["published"] >= since), len(self.events))
        chosen = self.events[start:start + limit]
        end = start + len(chosen)
        base = f"{self.server.url}/api/v1/logs"
        following = urlencode({"limit": request.query.get("limit", 100), "sortOrder": "ASCENDING",
                               "after": _cursor(end)})
        headers = {"Link": f'<{base}?{urlencode(request.query)}>; rel="self", <{base}?{following}>; rel="next"',
                   "X-Rate-Limit-Limit": "120", "X-Rate-Limit-Remaining": "119",
                   "X-Rate-Limit-Reset": str(int(datetime.now(UTC).timestamp()) + 60)}
        if start in self.pages:
            return Answer(200, self.pages.pop(start), {**headers, "Content-Type": "application/json"})
        return Answer.json(chosen, headers=headers)


# --- GitHub audit log API ------------------------------------------------------------------------------------


def github_entry(number: int, timestamp_ms: int) -> dict[str, Any]:
    return {"@timestamp": timestamp_ms, "_document_id": f"doc-{number:05d}", "action": "protected_branch.destroy",
            "actor": "octocat", "org": "acme", "created_at": timestamp_ms, "repo": "acme/site"}


class GitHubAuditLog:
    """`GET /orgs/{org}/audit-log`: `phrase=created:>=T`, `order=asc`, `per_page`, cursor paging with a `next`
    link only while more entries follow, `Bearer` token."""

    def __init__(self, org: str, token: str) -> None:
        self.org, self.token = org, token
        self.entries: list[dict[str, Any]] = []
        self.server = ReplayServer(self.handle)

    def handle(self, request: Request) -> Answer:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return Answer.json({"message": "Bad credentials"}, 401)
        if request.path != f"/orgs/{self.org}/audit-log" or request.query.get("order") != "asc":
            return Answer.json({"message": "Not Found"}, 404)
        per_page = min(int(request.query.get("per_page", 30)), 100)
        phrase = request.query.get("phrase", "")
        since_ms = 0
        if phrase.startswith("created:>="):
            since_ms = int(datetime.fromisoformat(phrase[len("created:>="):].replace("Z", "+00:00"))
                           .timestamp() * 1000)
        matching = sorted((entry for entry in self.entries if entry["@timestamp"] >= since_ms),
                          key=lambda entry: (entry["@timestamp"], entry["_document_id"]))
        start = _position(request.query["after"]) if "after" in request.query else 0
        chosen = matching[start:start + per_page]
        headers = {"x-ratelimit-limit": "1750", "x-ratelimit-remaining": "1700"}
        if start + per_page < len(matching):
            query = {**request.query, "after": _cursor(start + per_page)}
            headers["Link"] = f'<{self.server.url}{request.path}?{urlencode(query)}>; rel="next"'
        return Answer.json(chosen, headers=headers)


# --- Office 365 Management Activity API ----------------------------------------------------------------------


class ManagementActivity:
    """Token endpoint (client credentials), `subscriptions/start` (AF20024 once started), `subscriptions/content`
    listing by availability time with `NextPageUri` after `page` blobs, and the content blobs."""

    def __init__(self, tenant: str, client_id: str, secret: str, *, page: int = 2) -> None:
        self.tenant, self.client_id, self.secret, self.page = tenant, client_id, secret, page
        self.started: set[str] = set()
        self.blobs: list[dict[str, Any]] = []  # contentType, contentId, contentCreated, records | raw
        self.tokens_issued = 0
        self.server = ReplayServer(self.handle)

    def add_blob(self, content_type: str, content_id: str, created: datetime, records: list[dict[str, Any]] | None,
                 raw: bytes | None = None) -> None:
        self.blobs.append({"contentType": content_type, "contentId": content_id, "records": records, "raw": raw,
                           "contentCreated": created.strftime("%Y-%m-%dT%H:%M:%S.000Z")})

    def handle(self, request: Request) -> Answer:
        if request.path == f"/{self.tenant}/oauth2/v2.0/token":
            form = {k: v[-1] for k, v in parse_qs(request.body.decode()).items()}
            if (form.get("grant_type"), form.get("client_id"), form.get("client_secret"), form.get("scope")) != (
                    "client_credentials", self.client_id, self.secret, "https://manage.office.com/.default"):
                return Answer.json({"error": "invalid_client"}, 401)
            self.tokens_issued += 1
            return Answer.json({"token_type": "Bearer", "expires_in": 3599, "access_token": f"at-{self.tokens_issued}"})
        if not request.headers.get("authorization", "").startswith("Bearer at-"):
            return Answer.json({"error": {"code": "AF10001", "message": "no token"}}, 401)
        feed = f"/api/v1.0/{self.tenant}/activity/feed"
        if request.path == f"{feed}/subscriptions/start" and request.method == "POST":
            content_type = request.query["contentType"]
            if content_type in self.started:
                return Answer.json({"error": {"code": "AF20024", "message": "The subscription is already enabled. "
                                              "No property change."}}, 400)
            self.started.add(content_type)
            return Answer.json({"contentType": content_type, "status": "enabled", "webhook": None})
        if request.path == f"{feed}/subscriptions/content":
            content_type = request.query["contentType"]
            if content_type not in self.started:
                return Answer.json({"error": {"code": "AF20022", "message": "No subscription found"}}, 400)
            start, end = request.query["startTime"], request.query["endTime"]
            listed = [blob for blob in self.blobs if blob["contentType"] == content_type
                      and start <= blob["contentCreated"][:19] < end]
            offset = int(request.query.get("nextPage", 0))
            chosen = listed[offset:offset + self.page]
            headers = {}
            if offset + self.page < len(listed):
                headers["NextPageUri"] = (f"{self.server.url}{feed}/subscriptions/content?"
                                          f"{urlencode({**request.query, 'nextPage': offset + self.page})}")
            return Answer.json([{"contentType": blob["contentType"], "contentId": blob["contentId"],
                                 "contentUri": f"{self.server.url}{feed}/audit/{blob['contentId']}",
                                 "contentCreated": blob["contentCreated"],
                                 "contentExpiration": "2099-01-01T00:00:00.000Z"} for blob in chosen], headers=headers)
        if request.path.startswith(f"{feed}/audit/"):
            content_id = request.path.rsplit("/", 1)[1]
            blob = next(blob for blob in self.blobs if blob["contentId"] == content_id)
            if blob["raw"] is not None:
                return Answer(200, blob["raw"], {"Content-Type": "application/json"})
            return Answer.json(blob["records"])
        return Answer.json({"error": {"code": "AF404", "message": request.path}}, 404)
