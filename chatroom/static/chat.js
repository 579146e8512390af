// The plain chat page: history, a live stream with replay on reconnect, and a send box.
"use strict";

const room = "general";
const list = document.getElementById("messages");
const statusLine = document.getElementById("status");
const errorLine = document.getElementById("error");
const seen = new Set();

function show(message) {
  if (seen.has(message.id)) return;  // history and the stream can overlap
  seen.add(message.id);
  const item = document.createElement("li");
  const time = document.createElement("time");
  time.dateTime = new Date(message.ts).toISOString();
  time.textContent = new Date(message.ts).toLocaleTimeString();
  const user = document.createElement("span");
  user.className = "user";
  user.textContent = message.user;
  const text = document.createElement("span");
  text.textContent = message.text;  // always text, never HTML
  item.append(time, user, text);
  list.append(item);
  list.scrollTop = list.scrollHeight;
}

async function loadHistory() {
  const answer = await fetch(`/api/rooms/${room}/messages`);
  const body = await answer.json();
  body.messages.forEach(show);
  return body.messages.length ? body.messages[body.messages.length - 1].id : null;
}

function connect(lastId) {
  const query = new URLSearchParams({ room });
  if (lastId !== null) query.set("last_event_id", lastId);
  const source = new EventSource(`/stream?${query}`);
  source.onopen = () => { statusLine.textContent = "connected"; };
  source.onerror = () => { statusLine.textContent = "reconnecting…"; };
  source.addEventListener("message", (e) => show(JSON.parse(e.data)));
}

document.getElementById("send").addEventListener("submit", async (e) => {
  e.preventDefault();
  const input = document.getElementById("text");
  errorLine.textContent = "";
  const answer = await fetch(`/api/rooms/${room}/messages`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ text: input.value }),
  }).catch(() => null);
  if (answer === null) { errorLine.textContent = "The server cannot be reached."; return; }
  if (answer.ok) { input.value = ""; return; }
  const body = await answer.json().catch(() => ({}));
  errorLine.textContent = body.error || `The message was not sent (${answer.status}).`;
});

loadHistory().then(connect, () => connect(null));
