"""Schemathesis hooks for the API fuzzing run in CI (.ci/security): every case carries a live bearer token of
`regulator`. Fuzzing DELETE /api/v1/auth/token/ revokes the token in use, so the next case takes the next of
the tokens minted beforehand (one per line in the file named by PORTAL_FUZZ_TOKENS)."""

from __future__ import annotations

import os
from pathlib import Path

import schemathesis

TOKEN_PATH = "/api/v1/auth/token/"


@schemathesis.auth(refresh_interval=None)
class RegulatorTokens:
    def __init__(self) -> None:
        lines = Path(os.environ["PORTAL_FUZZ_TOKENS"]).read_text().split()
        self.tokens = [line for line in lines if line.startswith("cop_")]
        self.index = 0
        self.revoked = False

    def get(self, case, context):
        if self.revoked:
            self.index = min(self.index + 1, len(self.tokens) - 1)
            self.revoked = False
        return self.tokens[self.index]

    def set(self, case, data, context):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"
        if case.method.upper() == "DELETE" and case.path == TOKEN_PATH:
            self.revoked = True
