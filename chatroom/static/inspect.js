// The wire view: read /stream with fetch and show every line as it arrives, labelled by
// field, beside the events an EventSource would dispatch from them (the parser follows
// the HTML spec's "event stream interpretation", so what shows is what browsers do).
"use strict";

const $ = (id) => document.getElementById(id);
let controller = null;
let received = 0;

function status(state, text) {
  $("wire-status").dataset.state = state;
  $("wire-status").textContent = text;
}

function showLine(line) {
  const row = document.createElement("span");
  let kind = "blank";
  let tag = "end";
  if (line.startsWith(":")) { kind = "comment"; tag = "comment"; }
  else if (line !== "") {
    const field = line.split(":", 1)[0];
    kind = ["id", "event", "data", "retry"].includes(field) ? field : "comment";
    tag = field;
  }
  row.className = `f-${kind}`;
  const label = document.createElement("span");
  label.className = "tag";
  label.textContent = tag;
  row.append(label, document.createTextNode(line === "" ? "(blank line: dispatch)" : line), "\n");
  const raw = $("raw");
  const atEnd = raw.scrollHeight - raw.scrollTop - raw.clientHeight < 40;
  raw.append(row);
  if (atEnd) raw.scrollTop = raw.scrollHeight;
}

function showEvent(event) {
  const item = document.createElement("li");
  const kind = document.createElement("span");
  kind.className = "kind";
  kind.textContent = event.type;
  const id = document.createElement("span");
  id.className = "eid";
  id.textContent = event.id ? `id ${event.id}` : t("no id");
  const data = document.createElement("pre");
  data.textContent = event.data;
  item.append(kind, id, data);
  $("parsed").prepend(item);
  if (event.id) $("last-id").value = event.id;
}

// The spec's parser: fields accumulate until a blank line dispatches them.
function parser() {
  let data = [], type = "", id = "";
  return (line) => {
    if (line === "") {
      if (data.length) showEvent({ type: type || "message", data: data.join("\n"), id });
      data = []; type = "";
      return;
    }
    if (line.startsWith(":")) return;
    const at = line.indexOf(":");
    const field = at < 0 ? line : line.slice(0, at);
    let value = at < 0 ? "" : line.slice(at + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") data.push(value);
    else if (field === "event") type = value;
    else if (field === "id" && !value.includes("\0")) id = value;
  };
}

async function connect() {
  drop();
  const query = new URLSearchParams();
  for (const room of $("rooms").value.split(",").map((r) => r.trim()).filter(Boolean)) query.append("room", room);
  const headers = { Accept: "text/event-stream" };
  const lastId = $("last-id").value.trim();
  if (lastId) headers["Last-Event-ID"] = lastId;
  controller = new AbortController();
  const mine = controller;
  $("drop").disabled = false;
  status("connecting", t("connecting…"));
  showLine(`: ---- GET /stream?${query}${lastId ? `  (Last-Event-ID: ${lastId})` : ""} ----`);
  try {
    const answer = await fetch(`/stream?${query}`, { headers, signal: mine.signal, cache: "no-store" });
    if (!answer.ok) {
      const body = await answer.json().catch(() => ({}));
      status("offline", t("refused: {status}", { status: answer.status }));
      const refused = t("the server answered {status}", { status: answer.status });
      showLine(`: ${refused}: ${body.code || ""}`);
      $("drop").disabled = true;
      return;
    }
    status("connected", t("connected"));
    const reader = answer.body.pipeThrough(new TextDecoderStream()).getReader();
    const feed = parser();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      received += new TextEncoder().encode(value).length;
      $("byte-count").textContent = t("({count} bytes)", { count: received });
      buffer += value;
      const lines = buffer.split(/\r\n|\r|\n/);
      buffer = lines.pop();
      for (const line of lines) { showLine(line); feed(line); }
    }
    status("offline", t("the server ended the stream"));
  } catch (error) {
    if (mine.signal.aborted) status("offline", t("dropped"));
    else status("offline", t("connection lost"));
  }
  if (controller === mine) $("drop").disabled = true;
}

function drop() {
  if (controller) {
    controller.abort();
    controller = null;
    const dropped = t("connection dropped by this page");
    showLine(`: ---- ${dropped} ----`);
  }
  $("drop").disabled = true;
}

$("controls").addEventListener("submit", (e) => { e.preventDefault(); connect(); });
$("drop").addEventListener("click", drop);
$("clear").addEventListener("click", () => { $("raw").replaceChildren(); $("parsed").replaceChildren(); received = 0; $("byte-count").textContent = ""; });
connect();
