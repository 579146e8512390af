"""The OpenAPI document: every route in it, and a fuzzer finding nothing outside it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent


def test_every_route_is_in_the_document(start_server, tmp_path: Path) -> None:
    server = start_server("memory")
    document = requests.get(server.url + "/api/openapi.json", timeout=5).json()
    assert document["openapi"].startswith("3.1")
    listed = {(path, method.upper()) for path, ops in document["paths"].items() for method in ops}
    routes = subprocess.run(
        [sys.executable, "-c",
         "import json, sys\n"
         "from chatroom import create_app\n"
         "app = create_app({'memory': 'true', 'data_dir': sys.argv[1]})\n"
         "print(json.dumps([[r.rule, sorted(r.methods - {'HEAD', 'OPTIONS'})]"
         " for r in app.url_map.iter_rules() if r.endpoint != 'static']))",
         str(tmp_path / "routes")],
        capture_output=True, text=True, check=True, timeout=60, cwd=ROOT,
    )
    served = {
        (re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule), method)
        for rule, methods in json.loads(routes.stdout) for method in methods
    }
    assert served - listed == set(), "routes missing from the OpenAPI document"
    assert listed - served == set(), "the document lists routes the server does not have"


@pytest.mark.parametrize("logged_in", [False, True], ids=["anonymous", "logged-in"])
def test_a_schema_fuzzer_finds_no_5xx_and_nothing_undocumented(
    start_server, mode, unique, logged_in
) -> None:
    server = start_server(mode)
    headers = []
    if logged_in:
        visitor = server.visitor(unique("fuzz"))
        visitor.say("something to read")
        headers = ["-H", f"Cookie: {visitor.cookie()}"]
    done = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "run", f"{server.url}/api/openapi.json",
         "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
         "response_schema_conformance",
         # The stream never ends; logging out would end the session the run uses.
         "--exclude-path", "/stream", "--exclude-path", "/logout",
         "--max-examples", "8", "--max-time", "15", "--seed", "1", "--workers", "2",
         "--generation-database", "none", *headers],
        capture_output=True, text=True, timeout=150, cwd=ROOT,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "Traceback" not in server.output()
