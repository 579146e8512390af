"""A room's history as a file a teacher keeps: text, HTML, JSON or CSV."""

from __future__ import annotations

import csv
import html
import io
import json
from datetime import datetime, timezone
from typing import Any

FORMATS = {
    "txt": "text/plain; charset=utf-8",
    "html": "text/html; charset=utf-8",
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
}


def _when(ts: int) -> str:
    return datetime.fromtimestamp(ts / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def render(kind: str, room: str, messages: list[dict[str, Any]]) -> bytes:
    """Return ``messages`` of ``room`` in format ``kind`` (one of :data:`FORMATS`)."""
    if kind == "json":
        return json.dumps({"room": room, "messages": messages}, ensure_ascii=False).encode()
    if kind == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["id", "time", "user", "host", "text"])
        for m in messages:
            writer.writerow([m["id"], _when(m["ts"]), m["user"], bool(m.get("host")), m["text"]])
        # The byte-order mark tells spreadsheets the file is UTF-8 (Chinese text survives).
        return "\ufeff".encode() + out.getvalue().encode()
    if kind == "html":
        rows = "\n".join(
            f"<tr><td>{_when(m['ts'])}</td><td>{html.escape(m['user'])}"
            f"{' (host)' if m.get('host') else ''}</td>"
            f"<td>{html.escape(m['text']).replace(chr(10), '<br>')}</td></tr>"
            for m in messages
        )
        title = html.escape(f"#{room}")
        return (
            f'<!doctype html><html><head><meta charset="utf-8"><title>{title}</title></head>'
            f"<body><h1>{title}</h1><table><tr><th>Time</th><th>Who</th><th>Message</th></tr>"
            f"\n{rows}\n</table></body></html>\n"
        ).encode()
    lines = [f"#{room}"]
    lines += [f"[{_when(m['ts'])}] {m['user']}{' (host)' if m.get('host') else ''}: {m['text']}"
              for m in messages]
    return ("\n".join(lines) + "\n").encode()
