// The chat page: rooms, private conversations, presence, and one event stream per browser.
//
// Every text from the server goes into the page through textContent, never as HTML.
// The stream follows every room at once, so unread markers and online counts stay live;
// messages are kept per view by id, so a replay after a reconnect never shows one twice.
"use strict";

const me = document.body.dataset.user;
const amHost = Boolean(document.body.dataset.host);
const $ = (id) => document.getElementById(id);

const state = {
  current: { kind: "room", name: "general" },
  rooms: new Map(),   // name -> {name, created_by, online: [names]}
  convs: new Set(),   // names of people with a private conversation
  views: new Map(),   // "room:<name>" | "dm:<name>" -> view
  lastId: null,       // the last event position seen, sent back as Last-Event-ID
  mutedUntil: undefined,  // undefined: not muted; null: until unmuted; else ms
  privateMessages: true,
};

function viewKey(kind, name) { return `${kind}:${name}`; }

function view(kind, name) {
  const key = viewKey(kind, name);
  if (!state.views.has(key)) {
    state.views.set(key, { kind, name, messages: [], ids: new Set(), unread: 0, loaded: false, complete: false });
  }
  return state.views.get(key);
}

function isCurrent(v) { return v.kind === state.current.kind && v.name === state.current.name; }

// ---------------------------------------------------------------- rendering --

function timeLabel(ts) {
  const when = new Date(ts);
  const el = document.createElement("time");
  el.dateTime = when.toISOString();
  el.title = when.toLocaleString();
  el.textContent = when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  return el;
}

function messageItem(m) {
  const li = document.createElement("li");
  li.className = "message";
  li.dataset.id = m.id;
  const author = m.user ?? m.from;
  if (author === me) li.classList.add("mine");
  const who = document.createElement("span");
  who.className = "author";
  who.textContent = author;
  const text = document.createElement("p");
  text.className = "text";
  text.textContent = m.text;
  li.append(timeLabel(m.ts), who);
  if (m.host) {
    // Only the server sets "host": no one else can get this badge.
    const badge = document.createElement("span");
    badge.className = "host-badge";
    badge.textContent = "host";
    li.append(badge);
  }
  if (m.room && (amHost || author === me)) {
    const del = document.createElement("button");
    del.type = "button";
    del.className = "delete";
    del.textContent = "Delete";
    del.setAttribute("aria-label", `Delete message from ${author}`);
    del.addEventListener("click", () => deleteMessage(m.room, m.id));
    li.append(del);
  }
  li.append(text);
  return li;
}

async function deleteMessage(room, id) {
  const answer = await api("DELETE", `/api/rooms/${encodeURIComponent(room)}/messages/${id}`);
  if (!answer.ok) notice(answer.error);
}

function removeMessage(room, id) {
  const v = view("room", room);
  if (!v.ids.has(id)) return;
  v.messages = v.messages.filter((m) => m.id !== id);
  if (isCurrent(v)) renderMessages();
}

// What the message box can do now: muted, a read-only room, slow mode, stated plainly.
function renderBoxState() {
  const lines = [];
  let blocked = false;
  const muted = state.mutedUntil !== undefined && (state.mutedUntil === null || state.mutedUntil > Date.now());
  if (muted) {
    blocked = true;
    lines.push(state.mutedUntil === null
      ? "The host has muted you until further notice."
      : `The host has muted you until ${new Date(state.mutedUntil).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}.`);
  }
  if (state.current.kind === "room") {
    const room = state.rooms.get(state.current.name);
    if (room?.read_only && !amHost) {
      blocked = true;
      lines.push(`#${room.name} is read-only: only the host posts here.`);
    } else if (room?.slow_mode && !amHost) {
      lines.push(`Slow mode: one message every ${room.slow_mode} s.`);
    }
  } else if (!state.privateMessages && !amHost) {
    blocked = true;
    lines.push("The host has turned private messages off.");
  }
  $("box-state").textContent = lines.join(" ");
  $("box-state").hidden = lines.length === 0;
  $("text").disabled = blocked;
  $("send").querySelector("button").disabled = blocked;
  if (amHost) renderHostPanel();
}

function renderHostPanel() {
  const inRoom = state.current.kind === "room";
  const room = inRoom ? state.rooms.get(state.current.name) : null;
  for (const id of ["read-only", "slow-mode", "clear-room"]) $(id).disabled = !inRoom;
  $("read-only").checked = Boolean(room?.read_only);
  $("slow-mode").value = String(room?.slow_mode || 0);
  for (const kind of ["txt", "html", "json", "csv"]) {
    const link = $(`export-${kind}`);
    if (room) link.href = `/api/rooms/${encodeURIComponent(room.name)}/export?format=${kind}`;
    else link.removeAttribute("href");
  }
  $("private-messages").checked = state.privateMessages;
}

function renderMessages() {
  const v = view(state.current.kind, state.current.name);
  const list = $("messages");
  const nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  list.replaceChildren(...v.messages.map(messageItem));
  if (v.messages.length === 0) {
    const empty = document.createElement("li");
    empty.className = "empty";
    empty.textContent = v.loaded ? "No messages yet. Say hello!" : "Loading…";
    list.append(empty);
  }
  if (nearBottom || !v.rendered) list.scrollTop = list.scrollHeight;
  v.rendered = true;
}

function channelItem(kind, name, label, extra) {
  const v = view(kind, name);
  const li = document.createElement("li");
  const button = document.createElement("button");
  button.type = "button";
  button.className = "channel";
  if (isCurrent(v)) button.setAttribute("aria-current", "page");
  const title = document.createElement("span");
  title.className = "name";
  title.textContent = label;
  button.append(title);
  if (extra) button.append(extra);
  if (v.unread > 0) {
    const badge = document.createElement("span");
    badge.className = "unread";
    badge.textContent = v.unread;
    badge.setAttribute("aria-label", `${v.unread} unread`);
    button.append(badge);
  }
  button.addEventListener("click", () => open(kind, name));
  li.append(button);
  return li;
}

function renderSidebar() {
  const rooms = [...state.rooms.values()];
  $("rooms").replaceChildren(...rooms.map((room) => {
    const count = document.createElement("span");
    count.className = "count";
    count.textContent = room.online.length;
    count.setAttribute("aria-label", `${room.online.length} online`);
    const li = channelItem("room", room.name, `#${room.name}`, count);
    if (room.created_by === me) {
      const close = document.createElement("button");
      close.type = "button";
      close.className = "close-room";
      close.textContent = "×";
      close.setAttribute("aria-label", `Close room ${room.name}`);
      close.addEventListener("click", () => closeRoom(room.name));
      li.append(close);
    }
    return li;
  }));
  $("dms").replaceChildren(...[...state.convs].sort().map((name) => channelItem("dm", name, `@${name}`)));
  $("dms-hint").hidden = state.convs.size > 0;
  const unreadTotal = [...state.views.values()].reduce((n, v) => n + v.unread, 0);
  document.title = `${unreadTotal ? `(${unreadTotal}) ` : ""}${$("title").textContent} · chatroom`;
}

function renderPeople() {
  const list = $("online");
  if (state.current.kind !== "room") {
    list.replaceChildren();
    $("people-heading").textContent = "Private conversation";
    return;
  }
  const room = state.rooms.get(state.current.name);
  const online = room ? room.online : [];
  $("people-heading").textContent = `Online in #${state.current.name}`;
  $("online-count").textContent = online.length;
  list.replaceChildren(...online.map((name) => {
    const li = document.createElement("li");
    if (name === me) {
      li.textContent = `${name} (you)`;
      return li;
    }
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = name;
    button.title = `Write to ${name} privately`;
    button.addEventListener("click", () => { state.convs.add(name); open("dm", name); });
    li.append(button);
    if (amHost) li.append(userMenu(name));
    return li;
  }));
}

// The host's menu for one person: mute, unmute, kick, ban.
function userMenu(name) {
  const menu = document.createElement("span");
  menu.className = "user-menu";
  const path = `/api/users/${encodeURIComponent(name)}`;
  const actions = [
    ["Mute 10 min", "POST", "/mute", { minutes: 10 }],
    ["Unmute", "DELETE", "/mute"],
    ["Kick", "POST", "/kick"],
    ["Ban", "POST", "/ban"],
  ];
  for (const [label, method, tail, body] of actions) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    b.setAttribute("aria-label", `${label} ${name}`);
    b.addEventListener("click", async () => {
      const answer = await api(method, path + tail, body);
      notice(answer.ok ? "" : answer.error);
    });
    menu.append(b);
  }
  return menu;
}

function render() {
  $("title").textContent = state.current.kind === "room" ? `#${state.current.name}` : `@${state.current.name}`;
  renderMessages();
  renderSidebar();
  renderPeople();
  renderBoxState();
}

function notice(text) {
  $("notice").textContent = text;
  $("notice").hidden = !text;
}

// ------------------------------------------------------------------ data --

async function api(method, path, body) {
  const options = { method, headers: { Accept: "application/json" } };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  let answer;
  try {
    answer = await fetch(path, options);
  } catch {
    return { ok: false, status: 0, error: "The chat cannot be reached: check your network." };
  }
  const data = await answer.json().catch(() => ({}));
  if (answer.status === 401) location.reload();  // the session ended: back to the name picker
  let error = data.error || `The server answered ${answer.status}.`;
  if (answer.status === 429) error = data.error || `Slow down: try again in ${answer.headers.get("Retry-After")} s.`;
  return { ok: answer.ok, status: answer.status, data, error };
}

function messagesPath(v) {
  const name = encodeURIComponent(v.name);
  return v.kind === "room" ? `/api/rooms/${name}/messages` : `/api/users/${name}/messages`;
}

function addMessage(v, m) {
  if (v.ids.has(m.id)) return false;
  v.ids.add(m.id);
  const list = v.messages;
  if (list.length === 0 || list[list.length - 1].id < m.id) list.push(m);
  else {
    const at = list.findIndex((x) => x.id > m.id);
    list.splice(at < 0 ? list.length : at, 0, m);
  }
  return true;
}

async function loadHistory(v, before) {
  const query = new URLSearchParams({ limit: before ? 50 : 100 });
  if (before) query.set("before", before);
  const answer = await api("GET", `${messagesPath(v)}?${query}`);
  if (!answer.ok) return;
  const messages = answer.data.messages;
  messages.forEach((m) => addMessage(v, m));
  if (before && messages.length < 50) v.complete = true;
  if (!before && messages.length < 100) v.complete = true;
  v.loaded = true;
}

async function loadRooms() {
  const answer = await api("GET", "/api/rooms");
  if (!answer.ok) return false;
  const known = new Map(state.rooms);
  state.rooms.clear();
  for (const room of answer.data.rooms) {
    state.rooms.set(room.name, { ...room, online: known.get(room.name)?.online ?? [] });
  }
  await Promise.all([...state.rooms.keys()].map(async (name) => {
    const presence = await api("GET", `/api/rooms/${encodeURIComponent(name)}/presence`);
    if (presence.ok && state.rooms.has(name)) state.rooms.get(name).online = presence.data.online;
  }));
  return true;
}

async function open(kind, name) {
  state.current = { kind, name };
  const v = view(kind, name);
  v.unread = 0;
  notice("");
  document.body.classList.remove("show-sidebar", "show-people");
  render();
  if (!v.loaded) {
    await loadHistory(v);
    if (isCurrent(v)) renderMessages();
  }
  $("text").focus();
}

async function closeRoom(name) {
  if (!confirm(`Close #${name} for everyone?`)) return;
  const answer = await api("DELETE", `/api/rooms/${encodeURIComponent(name)}`);
  if (!answer.ok) $("room-error").textContent = answer.error;
}

// ------------------------------------------------------------ stream events --

function onEvent(kind, data, id) {
  // Positions ("<epoch>-<id>") arrive in order: the last one is where to resume.
  if (id) state.lastId = id;
  if (kind === "message" || kind === "dm") {
    const other = kind === "dm" ? (data.from === me ? data.to : data.from) : null;
    if (other) state.convs.add(other);
    const v = kind === "message" ? view("room", data.room) : view("dm", other);
    if (!addMessage(v, data)) return;
    const author = data.user ?? data.from;
    if (!isCurrent(v) && author !== me) v.unread += 1;
    if (isCurrent(v)) renderMessages();
    renderSidebar();
  } else if (kind === "presence" || kind === "join" || kind === "leave") {
    const room = state.rooms.get(data.room);
    if (room) room.online = data.online;
    renderSidebar();
    renderPeople();
  } else if (kind === "room_created") {
    if (!state.rooms.has(data.room)) {
      state.rooms.set(data.room, { name: data.room, created_by: data.by, online: [] });
      if (leader) stream.follow([...state.rooms.keys()]);
    }
    renderSidebar();
  } else if (kind === "message_deleted") {
    removeMessage(data.room, data.id);
  } else if (kind === "room_cleared") {
    const v = view("room", data.room);
    v.messages = [];
    v.ids.clear();
    if (isCurrent(v)) renderMessages();
  } else if (kind === "room_updated") {
    const room = state.rooms.get(data.room);
    if (room) Object.assign(room, { read_only: data.read_only, slow_mode: data.slow_mode });
    renderBoxState();
  } else if (kind === "user_muted" || kind === "user_unmuted") {
    if (data.user === me) state.mutedUntil = kind === "user_muted" ? data.until : undefined;
    renderBoxState();
  } else if (kind === "settings") {
    state.privateMessages = data.private_messages;
    renderBoxState();
  } else if (kind === "kicked") {
    if (data.user === me) {
      notice(data.banned ? "The host has removed you from the chat." : "The host has logged you out.");
      setTimeout(() => location.reload(), 1500);
    }
  } else if (kind === "room_closed") {
    state.rooms.delete(data.room);
    state.views.delete(viewKey("room", data.room));
    if (state.current.kind === "room" && state.current.name === data.room) {
      open("room", "general");
      notice(`#${data.room} was closed by ${data.by}; you are back in #general.`);
    }
    renderSidebar();
  }
}

const STATUS_TEXT = { connected: "connected", reconnecting: "reconnecting…", offline: "offline", connecting: "connecting…", limit: "too many tabs" };

function onStatus(status) {
  const el = $("status");
  el.dataset.state = status;
  el.textContent = STATUS_TEXT[status] || status;
  if (status === "limit") {
    notice("This browser has too many chat tabs open to connect another: close one and this tab reconnects.");
  } else if ($("notice").textContent.startsWith("This browser has too many")) {
    notice("");
  }
}

// ------------------------------------------------------------------ the stream --

const EVENT_KINDS = [
  "message", "dm", "presence", "join", "leave", "room_created", "room_closed",
  "message_deleted", "room_cleared", "room_updated", "user_muted", "user_unmuted", "kicked",
  "settings",
];

// One EventSource: reconnects by itself (sending Last-Event-ID); when it gives up, or the
// rooms change, a new one starts from the last id seen, so nothing is missed.
class Stream {
  constructor(deliver, status) {
    this.deliver = deliver;
    this.status = status;
    this.rooms = ["general"];
    this.source = null;
    this.retry = 1000;
    this.opened = false;
  }

  follow(rooms) {
    const changed = rooms.join() !== this.rooms.join();
    this.rooms = rooms;
    if (changed || !this.source) this.start();
  }

  start() {
    if (this.source) this.source.close();
    const query = new URLSearchParams();
    this.rooms.forEach((room) => query.append("room", room));
    if (state.lastId !== null) query.set("last_event_id", state.lastId);
    const source = new EventSource(`/stream?${query}`);
    this.source = source;
    this.opened = false;
    // Browsers allow about six connections per host over HTTP/1.1: a tab past that
    // never opens, and should say so rather than spin.
    clearTimeout(this.limitTimer);
    this.limitTimer = setTimeout(() => { if (!this.opened && navigator.onLine) this.status("limit"); }, 8000);
    source.onopen = () => { this.opened = true; this.retry = 1000; this.status("connected"); };
    source.onerror = () => {
      if (source !== this.source) return;
      if (source.readyState === EventSource.CLOSED) {
        // The server refused or vanished: if the session ended (a logout in another tab),
        // api() goes back to the name picker; else try again, backing off up to 15 s.
        api("GET", "/api/session");
        this.status(navigator.onLine ? "reconnecting" : "offline");
        setTimeout(() => { if (source === this.source) this.start(); }, this.retry);
        this.retry = Math.min(this.retry * 2, 15000);
      } else {
        this.status(navigator.onLine ? "reconnecting" : "offline");
      }
    };
    for (const kind of EVENT_KINDS) {
      source.addEventListener(kind, (e) => {
        if (source === this.source) this.deliver(kind, JSON.parse(e.data), e.lastEventId);
      });
    }
  }
}

// Tabs of one browser share one stream when the browser can coordinate them (Web Locks
// need https or localhost): the tab holding the lock streams and forwards to the others.
const channel = "BroadcastChannel" in window ? new BroadcastChannel(`chatroom:${me}`) : null;
let leader = !(navigator.locks && channel);
const stream = new Stream(
  (kind, data, id) => {
    onEvent(kind, data, id);
    if (channel && leader) channel.postMessage({ type: "event", kind, data, id });
  },
  (status) => {
    onStatus(status);
    if (channel && leader) channel.postMessage({ type: "status", status });
  },
);

function startStreaming() {
  if (leader) {
    stream.follow([...state.rooms.keys()]);
    return;
  }
  channel.onmessage = ({ data: msg }) => {
    if (leader) return;
    if (msg.type === "event") onEvent(msg.kind, msg.data, msg.id);
    else if (msg.type === "status") onStatus(msg.status);
    else if (msg.type === "hello") channel.postMessage({ type: "status", status: $("status").dataset.state });
  };
  channel.postMessage({ type: "hello" });
  onStatus("connecting");
  navigator.locks.request("chatroom-stream", () => new Promise(() => {
    // This tab now streams for all of them, until it closes (which frees the lock).
    leader = true;
    stream.follow([...state.rooms.keys()]);
  }));
  channel.addEventListener("message", ({ data: msg }) => {
    if (leader && msg.type === "hello") channel.postMessage({ type: "status", status: $("status").dataset.state });
  });
}

// ------------------------------------------------------------------ actions --

$("send").addEventListener("submit", async (e) => {
  e.preventDefault();
  const input = $("text");
  const text = input.value.trim();
  $("error").textContent = "";
  if (!text) return;
  const v = view(state.current.kind, state.current.name);
  const button = e.target.querySelector("button");
  button.disabled = true;
  const answer = await api("POST", messagesPath(v), { text });
  button.disabled = false;
  if (answer.ok) {
    input.value = "";
    addMessage(v, answer.data);
    renderMessages();
  } else {
    $("error").textContent = answer.error;
    if (answer.data.code === "muted") {
      state.mutedUntil = answer.data.until;
      renderBoxState();
    }
  }
  input.focus();
});

if (amHost) {
  const roomPath = () => `/api/rooms/${encodeURIComponent(state.current.name)}`;
  const hostCall = async (method, path, body) => {
    const answer = await api(method, path, body);
    $("host-error").textContent = answer.ok ? "" : answer.error;
  };
  $("read-only").addEventListener("change", (e) => hostCall("PATCH", roomPath(), { read_only: e.target.checked }));
  $("slow-mode").addEventListener("change", (e) => hostCall("PATCH", roomPath(), { slow_mode: Number(e.target.value) }));
  $("clear-room").addEventListener("click", () => hostCall("POST", `${roomPath()}/clear`));
  $("private-messages").addEventListener("change", (e) => hostCall("PATCH", "/api/settings", { private_messages: e.target.checked }));
  $("wipe").addEventListener("click", () => { $("wipe-confirm").hidden = false; });
  $("wipe-no").addEventListener("click", () => { $("wipe-confirm").hidden = true; });
  $("wipe-yes").addEventListener("click", async () => {
    $("wipe-confirm").hidden = true;
    await hostCall("POST", "/api/wipe");
  });
}

$("text").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    $("send").requestSubmit();
  }
});

$("text").addEventListener("input", () => {
  const length = $("text").value.trim().length;
  $("error").textContent = length > 2000 ? `Too long: ${length} of at most 2000 characters.` : "";
});

$("new-room").addEventListener("submit", async (e) => {
  e.preventDefault();
  const name = $("room-name").value.trim().toLowerCase();
  $("room-error").textContent = "";
  const answer = await api("POST", "/api/rooms", { name });
  if (!answer.ok) {
    $("room-error").textContent = answer.error;
    return;
  }
  $("room-name").value = "";
  if (!state.rooms.has(answer.data.name)) {
    state.rooms.set(answer.data.name, { ...answer.data, online: [] });
    if (leader) stream.follow([...state.rooms.keys()]);
  }
  open("room", answer.data.name);
});

$("messages").addEventListener("scroll", async () => {
  const list = $("messages");
  const v = view(state.current.kind, state.current.name);
  if (list.scrollTop > 40 || v.complete || v.loadingOlder || !v.messages.length) return;
  v.loadingOlder = true;
  const before = list.scrollHeight;
  await loadHistory(v, v.messages[0].id);
  v.loadingOlder = false;
  if (isCurrent(v)) {
    renderMessages();
    list.scrollTop = list.scrollHeight - before;  // keep the reader's place
  }
});

for (const [button, cls] of [[$("menu"), "show-sidebar"], [$("people-toggle"), "show-people"]]) {
  button.addEventListener("click", () => {
    const shown = document.body.classList.toggle(cls);
    button.setAttribute("aria-expanded", shown);
  });
}

window.addEventListener("online", () => onStatus("reconnecting"));
window.addEventListener("offline", () => onStatus("offline"));

(async function start() {
  const [mine, settings] = await Promise.all([api("GET", "/api/session"), api("GET", "/api/settings")]);
  if (mine.ok && mine.data.muted) state.mutedUntil = mine.data.muted_until;
  if (settings.ok) state.privateMessages = settings.data.private_messages;
  await loadRooms();
  if (!state.rooms.has("general")) state.rooms.set("general", { name: "general", created_by: null, online: [] });
  startStreaming();
  await open("room", "general");
})();
