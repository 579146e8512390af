// The chat page: rooms, private conversations, presence, and one event stream per browser.
//
// Every text from the server goes into the page through textContent, never as HTML; links
// and code are built as DOM nodes too. Rendering is incremental: a new message adds one
// element, a deletion removes one, a presence change updates one list, a badge its own
// number, so a reader's text selection and keyboard focus survive incoming traffic.
// The stream follows every room at once, so unread markers and online counts stay live;
// messages are kept per view by id, so a replay after a reconnect never shows one twice.
"use strict";

const $ = (id) => document.getElementById(id);
// What the server tells the page: who this is, and its limits (never copied in here).
const page = document.body.dataset;
const me = page.user;
const myKey = page.userKey;
const amHost = Boolean(page.host);
const TEXT_MAX = Number(page.textMax);
const FIRST_PAGE = Number(page.historyPage);
const OLDER_PAGE = Number(page.olderPage);
const ROOM_PATTERN = new RegExp(`^(?:${page.roomPattern})$`, "u");

const state = {
  current: { kind: "room", name: "general" },
  rooms: new Map(),   // name -> {name, created_by, read_only, slow_mode, online: [names]}
  convs: new Set(),   // names of people with a private conversation
  views: new Map(),   // "room:<name>" | "dm:<name>" -> view
  lastId: null,       // the last event position seen, sent back as Last-Event-ID
  mutedUntil: undefined,  // undefined: not muted; null: until unmuted; else ms
  privateMessages: true,
  away: 0,            // messages that arrived while the tab was hidden
  sound: localStorage.getItem("chatroom:sound") === "on",
};

function viewKey(kind, name) { return `${kind}:${name}`; }

// Every field a view has, in one place.
function view(kind, name) {
  const key = viewKey(kind, name);
  if (!state.views.has(key)) {
    state.views.set(key, {
      kind, name,
      messages: [],       // oldest first
      ids: new Set(),     // of the messages above: a replay never shows one twice
      unread: 0,          // messages not yet seen here
      mentions: 0,        // of those, the ones that name this user
      seenUpTo: null,     // the newest id seen when the reader last left: the "new" divider
      loaded: false,      // its first page of history has arrived
      complete: false,    // no older history to load
      loadingOlder: false,
      rendered: false,    // shown once (then scrolling keeps the reader's place)
    });
  }
  return state.views.get(key);
}

function isCurrent(v) { return v.kind === state.current.kind && v.name === state.current.name; }
function author(m) { return m.user ?? m.from; }
function mentionsMe(m) { return Array.isArray(m.mentions) && m.mentions.includes(myKey); }

// ---------------------------------------------------------------- message text --

const LINK = /\bhttps?:\/\/[^\s<>"'`]+/gu;

// Plain text, with http(s) links, `code` and ``` fenced blocks; nothing else is markup.
function renderText(el, text) {
  const parts = text.split("```");
  parts.forEach((part, i) => {
    const fenced = i % 2 === 1 && i < parts.length - 1;
    if (!fenced) {
      inlineText(el, i % 2 === 1 ? "```" + part : part);
      return;
    }
    const pre = document.createElement("pre");
    const code = document.createElement("code");
    // A first line of one word is the language's name (```python), not code.
    code.textContent = part.replace(/^[\w+-]*\n/u, "").replace(/\n$/u, "");
    pre.append(code);
    el.append(pre);
  });
}

function inlineText(el, text) {
  for (const piece of text.split(/(`[^`\n]+`)/u)) {
    if (/^`[^`\n]+`$/u.test(piece)) {
      const code = document.createElement("code");
      code.textContent = piece.slice(1, -1);
      el.append(code);
    } else {
      linkify(el, piece);
    }
  }
}

function linkify(el, text) {
  let at = 0;
  for (const match of text.matchAll(LINK)) {
    // Punctuation that ends a sentence is not part of the address.
    const raw = match[0].replace(/[.,;:!?)\]]+$/u, "");
    let url = null;
    try { url = new URL(raw); } catch { url = null; }
    if (!url || (url.protocol !== "http:" && url.protocol !== "https:")) continue;
    el.append(text.slice(at, match.index));
    const a = document.createElement("a");
    a.href = url.href;
    a.textContent = raw;
    a.rel = "noopener noreferrer";
    a.target = "_blank";
    el.append(a);
    at = match.index + raw.length;
  }
  el.append(text.slice(at));
}

// ---------------------------------------------------------------- messages --

function timeLabel(ts) {
  const when = new Date(ts);
  const el = document.createElement("time");
  el.dateTime = when.toISOString();
  el.title = when.toLocaleString(LANG);
  el.textContent = when.toLocaleTimeString(LANG, { hour: "numeric", minute: "2-digit" });
  return el;
}

function messageItem(m) {
  const li = document.createElement("li");
  li.className = "message";
  li.dataset.id = m.id;
  const who = author(m);
  if (who === me) li.classList.add("mine");
  if (mentionsMe(m)) li.classList.add("mention");
  const name = document.createElement("span");
  name.className = "author";
  name.textContent = who;
  li.append(timeLabel(m.ts), name);
  if (m.host) {
    // Only the server sets "host": no one else can get this badge.
    const badge = document.createElement("span");
    badge.className = "host-badge";
    badge.textContent = t("host");
    li.append(badge);
  }
  if (m.room && (amHost || who === me)) {
    const del = document.createElement("button");
    del.type = "button";
    del.className = "delete";
    del.textContent = t("Delete");
    del.setAttribute("aria-label", t("Delete message from {name}", { name: who }));
    del.addEventListener("click", () => deleteMessage(m.room, m.id));
    li.append(del);
  }
  const text = document.createElement("div");
  text.className = "text";
  renderText(text, m.text);
  li.append(text);
  return li;
}

function divider() {
  const li = document.createElement("li");
  li.className = "divider";
  li.setAttribute("role", "separator");
  li.textContent = t("New messages");
  return li;
}

function emptyItem(v) {
  const li = document.createElement("li");
  li.className = "empty";
  li.textContent = v.loaded ? t("No messages yet. Say hello!") : t("Loading…");
  return li;
}

// The whole list: only when the reader opens a view or older history arrives.
function renderMessages() {
  const v = view(state.current.kind, state.current.name);
  const list = $("messages");
  const nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  const items = [];
  let divided = v.seenUpTo === null;
  for (const m of v.messages) {
    if (!divided && m.id > v.seenUpTo && author(m) !== me) {
      items.push(divider());
      divided = true;
    }
    items.push(messageItem(m));
  }
  list.replaceChildren(...(items.length ? items : [emptyItem(v)]));
  if (nearBottom || !v.rendered) list.scrollTop = list.scrollHeight;
  v.rendered = true;
}

// One message into the shown list, at its place by id.
function showMessage(m) {
  const list = $("messages");
  list.querySelector(".empty")?.remove();
  const nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  const later = [...list.querySelectorAll(".message")].find((el) => Number(el.dataset.id) > m.id);
  list.insertBefore(messageItem(m), later ?? null);
  if (nearBottom || author(m) === me) list.scrollTop = list.scrollHeight;
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

async function deleteMessage(room, id) {
  const answer = await api("DELETE", `/api/rooms/${encodeURIComponent(room)}/messages/${id}`);
  if (!answer.ok) notice(answer.error);
}

function removeMessage(room, id) {
  const v = view("room", room);
  if (!v.ids.has(id)) return;
  v.ids.delete(id);
  v.messages = v.messages.filter((m) => m.id !== id);
  if (isCurrent(v)) {
    $("messages").querySelector(`.message[data-id="${id}"]`)?.remove();
    if (!v.messages.length) $("messages").replaceChildren(emptyItem(v));
  }
}

function clearMessages(room) {
  const v = view("room", room);
  v.messages = [];
  v.ids.clear();
  if (isCurrent(v)) $("messages").replaceChildren(emptyItem(v));
}

// ---------------------------------------------------------------- the sidebar --

// One element per room and conversation, kept and updated in place.
const channelEls = new Map();  // view key -> {li, button, badge, count}

function channelItem(kind, name, label) {
  const li = document.createElement("li");
  const button = document.createElement("button");
  button.type = "button";
  button.className = "channel";
  const title = document.createElement("span");
  title.className = "name";
  title.textContent = label;
  button.append(title);
  const entry = { li, button, badge: null, count: null };
  if (kind === "room") {
    entry.count = document.createElement("span");
    entry.count.className = "count";
    button.append(entry.count);
  }
  button.addEventListener("click", () => open(kind, name));
  li.append(button);
  channelEls.set(viewKey(kind, name), entry);
  return entry;
}

function updateChannel(kind, name) {
  const entry = channelEls.get(viewKey(kind, name));
  if (!entry) return;
  const v = view(kind, name);
  if (isCurrent(v)) entry.button.setAttribute("aria-current", "page");
  else entry.button.removeAttribute("aria-current");
  if (entry.count) {
    const room = state.rooms.get(name);
    const online = room?.online ? room.online.length : room?.count ?? 0;
    entry.count.textContent = online;
    entry.count.setAttribute("aria-label", t("{count} online", { count: online }));
  }
  if (v.unread > 0) {
    if (!entry.badge) {
      entry.badge = document.createElement("span");
      entry.button.append(entry.badge);
    }
    entry.badge.className = v.mentions > 0 ? "unread mentioned" : "unread";
    entry.badge.textContent = v.mentions > 0 ? `@${v.unread}` : v.unread;
    entry.badge.setAttribute("aria-label", v.mentions > 0
      ? t("{count} unread, {mentions} mentioning you", { count: v.unread, mentions: v.mentions })
      : t("{count} unread", { count: v.unread }));
  } else if (entry.badge) {
    entry.badge.remove();
    entry.badge = null;
  }
}

function addRoomItem(room) {
  const key = viewKey("room", room.name);
  if (channelEls.has(key)) return;
  const entry = channelItem("room", room.name, `#${room.name}`);
  if (room.created_by === me || amHost) {
    const close = document.createElement("button");
    close.type = "button";
    close.className = "close-room";
    close.textContent = "×";
    close.setAttribute("aria-label", t("Close room {room}", { room: room.name }));
    close.addEventListener("click", () => closeRoom(room.name));
    if (room.name !== "general") entry.li.append(close);
  }
  // general first, then by name, as the server lists them.
  const names = [...state.rooms.keys()].filter((n) => n !== "general").sort();
  const next = room.name === "general" ? names[0] : names[names.indexOf(room.name) + 1];
  const before = next ? channelEls.get(viewKey("room", next))?.li : null;
  $("rooms").insertBefore(entry.li, before && before.parentNode === $("rooms") ? before : null);
  updateChannel("room", room.name);
}

function removeRoomItem(name) {
  channelEls.get(viewKey("room", name))?.li.remove();
  channelEls.delete(viewKey("room", name));
}

function addConversation(name) {
  if (state.convs.has(name)) return;
  state.convs.add(name);
  const entry = channelItem("dm", name, `@${name}`);
  const later = [...state.convs].sort().find((n) => n > name);
  $("dms").insertBefore(entry.li, later ? channelEls.get(viewKey("dm", later)).li : null);
  $("dms-hint").hidden = true;
  updateChannel("dm", name);
}

function renderSidebar() {
  $("rooms").replaceChildren();
  for (const key of [...channelEls.keys()].filter((k) => k.startsWith("room:"))) channelEls.delete(key);
  for (const room of state.rooms.values()) addRoomItem(room);
  $("dms-hint").hidden = state.convs.size > 0;
}

// ---------------------------------------------------------------- people --

function personItem(name) {
  const li = document.createElement("li");
  li.dataset.name = name;
  if (name === me) {
    li.textContent = t("{name} (you)", { name });
    return li;
  }
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = name;
  button.title = t("Write to {name} privately", { name });
  button.addEventListener("click", () => { addConversation(name); open("dm", name); });
  li.append(button);
  if (amHost) li.append(userMenu(name));
  return li;
}

// The online list of the current room, changed entry by entry.
function renderPeople() {
  const list = $("online");
  if (state.current.kind !== "room") {
    list.replaceChildren();
    $("people-heading").textContent = t("Private conversation");
    return;
  }
  const online = state.rooms.get(state.current.name)?.online ?? [];
  $("people-heading").textContent = t("Online in #{room}", { room: state.current.name });
  $("online-count").textContent = online.length;
  const shown = new Map([...list.children].map((li) => [li.dataset.name, li]));
  for (const [name, li] of shown) if (!online.includes(name)) li.remove();
  let previous = null;
  for (const name of online) {
    let li = shown.get(name);
    if (!li || !li.isConnected) li = personItem(name);
    const expected = previous ? previous.nextSibling : list.firstChild;
    if (li !== expected) list.insertBefore(li, expected);
    previous = li;
  }
}

// The host's menu for one person: mute, unmute, kick, ban.
function userMenu(name) {
  const menu = document.createElement("span");
  menu.className = "user-menu";
  const path = `/api/users/${encodeURIComponent(name)}`;
  const actions = [
    [t("Mute 10 min"), "POST", "/mute", { minutes: 10 }],
    [t("Unmute"), "DELETE", "/mute"],
    [t("Kick"), "POST", "/kick"],
    [t("Ban"), "POST", "/ban"],
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

// ---------------------------------------------------------------- the message box --

// What the message box can do now: muted, a read-only room, slow mode, stated plainly.
function renderBoxState() {
  const lines = [];
  let blocked = false;
  const muted = state.mutedUntil !== undefined && (state.mutedUntil === null || state.mutedUntil > Date.now());
  if (muted) {
    blocked = true;
    lines.push(state.mutedUntil === null
      ? t("The host has muted you until further notice.")
      : t("The host has muted you until {time}.", { time: new Date(state.mutedUntil).toLocaleTimeString(LANG, { hour: "numeric", minute: "2-digit" }) }));
  }
  if (state.current.kind === "room") {
    const room = state.rooms.get(state.current.name);
    if (room?.read_only && !amHost) {
      blocked = true;
      lines.push(t("#{room} is read-only: only the host posts here.", { room: room.name }));
    } else if (room?.slow_mode && !amHost) {
      lines.push(t("Slow mode: one message every {seconds} s.", { seconds: room.slow_mode }));
    }
  } else if (!state.privateMessages && !amHost) {
    blocked = true;
    lines.push(t("The host has turned private messages off."));
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

// ---------------------------------------------------------------- unread at a glance --

// "(3) #general — chatroom" and a dot on the icon while the tab is hidden.
function updateTitle() {
  const where = state.current.kind === "room" ? `#${state.current.name}` : `@${state.current.name}`;
  const count = document.hidden && state.away ? `(${state.away}) ` : "";
  document.title = `${count}${where} — chatroom`;
  drawFavicon(document.hidden && state.away > 0);
}

let faviconDrawn = null;
function drawFavicon(dot) {
  if (faviconDrawn === dot) return;
  faviconDrawn = dot;
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = 32;
  const g = canvas.getContext("2d");
  if (!g) return;
  g.fillStyle = "#1f57c3";
  g.beginPath();
  g.roundRect(2, 4, 26, 20, 6);
  g.fill();
  g.beginPath();
  g.moveTo(8, 22); g.lineTo(8, 30); g.lineTo(16, 22);
  g.fill();
  if (dot) {
    g.fillStyle = "#d93025";
    g.beginPath();
    g.arc(25, 8, 7, 0, Math.PI * 2);
    g.fill();
  }
  $("favicon").href = canvas.toDataURL("image/png");
}

let audio = null;
function beep() {
  if (!state.sound) return;
  try {
    audio ??= new AudioContext();
    const tone = audio.createOscillator();
    const gain = audio.createGain();
    tone.frequency.value = 880;
    gain.gain.setValueAtTime(0.15, audio.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + 0.25);
    tone.connect(gain).connect(audio.destination);
    tone.start();
    tone.stop(audio.currentTime + 0.25);
  } catch { /* no sound on this device */ }
}

// A message arrived: count it where it belongs, and tell a reader who is elsewhere.
function arrived(v, m) {
  if (author(m) === me) return;
  const mention = mentionsMe(m);
  const seen = isCurrent(v) && !document.hidden;
  if (!isCurrent(v)) {
    v.unread += 1;
    if (mention) v.mentions += 1;
    updateChannel(v.kind, v.name);
  }
  if (document.hidden) {
    state.away += 1;
    updateTitle();
  }
  if (mention || !seen) beep();
}

document.addEventListener("visibilitychange", () => {
  if (!document.hidden) state.away = 0;
  updateTitle();
});

// ------------------------------------------------------------------ data --

const TOO_MANY_TABS = t("This browser has too many chat tabs open to connect another: close one and this tab reconnects.");

// The page words every error from its code, in the reader's language.
const ERRORS = {
  login_required: t("Log in first."),
  session_ended: t("This session has ended: log in again."),
  name_taken: t("Someone else is using this name now. Log in again with another name."),
  invalid_username: t("A name is 1 to 32 characters, with no invisible characters."),
  invalid_room_name: t("A room name is 1 to 32 letters or digits of any script, - or _ (no spaces)."),
  room_exists: t("A room of that name exists already."),
  unknown_room: t("There is no such room."),
  too_many_rooms: t("This chat has as many rooms as it holds. Ask for one to be closed first."),
  not_room_creator: t("Only whoever created a room can close it."),
  cannot_close_general: t("The general room cannot be closed."),
  unknown_user: t("Nobody of that name is in this chat."),
  message_to_self: t("Private messages go to someone else."),
  empty_text: t("The message is empty."),
  text_too_long: t("A message is at most {max} characters.", { max: TEXT_MAX }),
  invalid_text: t("The message holds characters that are not text."),
  rate_limited: t("Slow down: try again in {seconds} s."),
  slow_mode: t("Slow mode: try again in {seconds} s."),
  muted: t("The host has muted you."),
  read_only: t("Only the host can post here now."),
  private_messages_off: t("The host has turned private messages off."),
  banned: t("The host has banned this device from the chat."),
  host_only: t("Only the host can do that."),
  not_author: t("Only its author or the host can delete a message."),
  unknown_message: t("That message is gone."),
  cross_origin: t("Requests that change things must come from this chat's own pages."),
  broker_unavailable: t("The chat cannot deliver messages right now. Try again in a few seconds."),
  storage_unavailable: t("The chat cannot store messages right now. Try again in a few seconds."),
  kick_self: t("The host cannot kick themselves."),
  ban_self: t("That user shares this device's address: kick instead."),
  too_large: t("The request is too large."),
};

function errorText(code, answer) {
  const wait = answer.headers.get("Retry-After") || "?";
  return (ERRORS[code] || t("The server answered {status}.", { status: answer.status })).replace("{seconds}", wait);
}

function notice(text) {
  $("notice").textContent = text;
  $("notice").hidden = !text;
}

async function api(method, path, body, headers = {}) {
  const options = { method, headers: { Accept: "application/json", ...headers } };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  let answer;
  try {
    answer = await fetch(path, options);
  } catch {
    return { ok: false, status: 0, data: {}, error: t("The chat cannot be reached: check your network.") };
  }
  const data = await answer.json().catch(() => ({}));
  if (answer.status === 401) location.reload();  // the session ended: back to the name picker
  const error = answer.ok ? "" : errorText(data.code, answer);
  return { ok: answer.ok, status: answer.status, data, error };
}

// A message is sent with a key of its own and sent again, with the same key, while the
// chat is unavailable (a 503 while Redis fails over) or the connection dropped: the server
// answers a repeated key with the message it already has, so it is never posted twice.
const RESEND_FOR_MS = 30000;

function newKey() {
  // crypto.randomUUID exists only on https pages; a LAN chat is often plain http.
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function postOnce(path, body, onRetry) {
  const headers = { "Idempotency-Key": newKey() };
  const until = Date.now() + RESEND_FOR_MS;
  for (let wait = 500; ; wait = Math.min(wait * 2, 4000)) {
    const answer = await api("POST", path, body, headers);
    if (answer.ok || (answer.status !== 0 && answer.status !== 503) || Date.now() + wait > until) return answer;
    onRetry();
    await new Promise((resolve) => setTimeout(resolve, wait));
  }
}

function messagesPath(v) {
  const name = encodeURIComponent(v.name);
  return v.kind === "room" ? `/api/rooms/${name}/messages` : `/api/users/${name}/messages`;
}

async function loadHistory(v, before) {
  const size = before ? OLDER_PAGE : FIRST_PAGE;
  const query = new URLSearchParams({ limit: size });
  if (before) query.set("before", before);
  const answer = await api("GET", `${messagesPath(v)}?${query}`);
  if (!answer.ok) return;
  const messages = answer.data.messages;
  messages.forEach((m) => addMessage(v, m));
  if (messages.length < size) v.complete = true;
  v.loaded = true;
}

async function loadRooms() {
  const answer = await api("GET", "/api/rooms");
  if (!answer.ok) return false;
  const known = new Map(state.rooms);
  state.rooms.clear();
  for (const room of answer.data.rooms) {
    // "online" is a count here; the names come with the stream's presence events (or,
    // for the room a reader opens, one request), never a request per room.
    state.rooms.set(room.name, { ...room, count: room.online, online: known.get(room.name)?.online ?? null });
  }
  return true;
}

async function open(kind, name) {
  const leaving = view(state.current.kind, state.current.name);
  leaving.seenUpTo = leaving.messages.length ? leaving.messages[leaving.messages.length - 1].id : null;
  const before = viewKey(state.current.kind, state.current.name);
  state.current = { kind, name };
  const v = view(kind, name);
  v.unread = 0;
  v.mentions = 0;
  notice("");
  document.body.classList.remove("show-sidebar", "show-people");
  $("title").textContent = kind === "room" ? `#${name}` : `@${name}`;
  for (const key of [before, viewKey(kind, name)]) updateChannel(...key.split(/:(.*)/su).slice(0, 2));
  updateTitle();
  renderMessages();
  renderPeople();
  renderBoxState();
  const room = kind === "room" ? state.rooms.get(name) : null;
  if (room && room.online === null) {
    const presence = await api("GET", `/api/rooms/${encodeURIComponent(name)}/presence`);
    if (presence.ok && room.online === null) room.online = presence.data.online;
    updateChannel("room", name);
    if (isCurrent(v)) renderPeople();
  }
  if (!v.loaded) {
    await loadHistory(v);
    if (isCurrent(v)) renderMessages();
  }
  $("text").focus();
}

async function closeRoom(name) {
  if (!confirm(t("Close #{room} for everyone?", { room: name }))) return;
  const answer = await api("DELETE", `/api/rooms/${encodeURIComponent(name)}`);
  if (!answer.ok) $("room-error").textContent = answer.error;
}

// ------------------------------------------------------------ stream events --

function onEvent(kind, data, id) {
  // Positions ("<epoch>-<id>") arrive in order: the last one is where to resume.
  if (id) state.lastId = id;
  if (kind === "message" || kind === "dm") {
    const other = kind === "dm" ? (data.from === me ? data.to : data.from) : null;
    if (other) addConversation(other);
    const v = kind === "message" ? view("room", data.room) : view("dm", other);
    if (!addMessage(v, data)) return;
    if (isCurrent(v)) showMessage(data);
    arrived(v, data);
  } else if (kind === "presence" || kind === "join" || kind === "leave") {
    const room = state.rooms.get(data.room);
    if (room) room.online = data.online;
    updateChannel("room", data.room);
    if (state.current.kind === "room" && state.current.name === data.room) renderPeople();
  } else if (kind === "room_created") {
    if (!state.rooms.has(data.room)) {
      state.rooms.set(data.room, { name: data.room, created_by: data.by, read_only: false, slow_mode: 0, online: [] });
      addRoomItem(state.rooms.get(data.room));
      followRooms();
    }
  } else if (kind === "room_closed") {
    state.rooms.delete(data.room);
    state.views.delete(viewKey("room", data.room));
    removeRoomItem(data.room);
    if (state.current.kind === "room" && state.current.name === data.room) {
      open("room", "general");
      notice(t("#{room} was closed by {name}; you are back in #general.", { room: data.room, name: data.by }));
    }
  } else if (kind === "message_deleted") {
    removeMessage(data.room, data.id);
  } else if (kind === "room_cleared") {
    clearMessages(data.room);
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
      notice(data.banned ? t("The host has removed you from the chat.") : t("The host has logged you out."));
      setTimeout(() => location.reload(), 1500);
    }
  }
}

const STATUS_TEXT = {
  connected: t("connected"), reconnecting: t("reconnecting…"), offline: t("offline"),
  connecting: t("connecting…"), limit: t("too many tabs"),
};

function onStatus(status) {
  const el = $("status");
  el.dataset.state = status;
  el.textContent = STATUS_TEXT[status] || status;
  if (status === "limit") {
    notice(TOO_MANY_TABS);
  } else if ($("notice").textContent === TOO_MANY_TABS) {
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

// The tabs of one browser share one stream, where the browser can coordinate them (Web
// Locks need https or localhost). The protocol:
// - Whoever holds the Web Lock "chatroom-stream" is the leader: it alone streams, and
//   posts every event ({type: "event", kind, data, id}) and every change of the
//   connection's state ({type: "status", status}) on the BroadcastChannel.
// - The others listen. A tab that opens says {type: "hello"}; the leader answers with
//   the state, so the newcomer shows "connected" at once.
// - When the leader's tab closes, the browser frees the lock: the next waiting tab gets
//   it, becomes the leader and streams from the last id it saw, so nothing is missed.
// Where the lock or the channel is missing, every tab is its own leader.
class TabGroup {
  constructor(onEvent, onStatus) {
    this.onEvent = onEvent;
    this.onStatus = onStatus;
    this.channel = "BroadcastChannel" in window ? new BroadcastChannel(`chatroom:${me}`) : null;
    this.leader = !(navigator.locks && this.channel);
    this.stream = new Stream(
      (kind, data, id) => { this.onEvent(kind, data, id); this.post({ type: "event", kind, data, id }); },
      (status) => { this.onStatus(status); this.post({ type: "status", status }); },
    );
  }

  post(msg) {
    if (this.channel && this.leader) this.channel.postMessage(msg);
  }

  start() {
    if (this.leader) {
      followRooms();
      return;
    }
    this.channel.onmessage = ({ data: msg }) => {
      if (this.leader) {
        if (msg.type === "hello") this.post({ type: "status", status: $("status").dataset.state });
        return;
      }
      if (msg.type === "event") this.onEvent(msg.kind, msg.data, msg.id);
      else if (msg.type === "status") this.onStatus(msg.status);
    };
    this.channel.postMessage({ type: "hello" });
    this.onStatus("connecting");
    navigator.locks.request("chatroom-stream", () => new Promise(() => {
      // This tab now streams for all of them, until it closes (which frees the lock).
      this.leader = true;
      followRooms();
    }));
  }

  // Stream every room there is (the leader only).
  follow(rooms) {
    if (this.leader) this.stream.follow(rooms);
  }
}

const tabs = new TabGroup(onEvent, onStatus);

function followRooms() { tabs.follow([...state.rooms.keys()]); }

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
  const answer = await postOnce(messagesPath(v), { text }, () => {
    $("error").textContent = t("Not sent yet: trying again…");
  });
  button.disabled = false;
  $("error").textContent = "";
  if (answer.ok) {
    input.value = "";
    if (addMessage(v, answer.data) && isCurrent(v)) showMessage(answer.data);
  } else {
    $("error").textContent = answer.error;
    if (answer.data.code === "muted") {
      state.mutedUntil = answer.data.until;
      renderBoxState();
    }
  }
  input.focus();
});

$("text").addEventListener("keydown", (e) => {
  // Enter that confirms an input method's candidate (Chinese, Japanese…) is not a send:
  // isComposing says so, and some browsers report only keyCode 229 instead.
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
    e.preventDefault();
    $("send").requestSubmit();
  }
});

$("text").addEventListener("input", () => {
  const length = [...$("text").value.trim()].length;
  $("error").textContent = length > TEXT_MAX ? t("Too long: {length} of at most {max} characters.", { length, max: TEXT_MAX }) : "";
});

$("new-room").addEventListener("submit", async (e) => {
  e.preventDefault();
  const name = $("room-name").value.trim().toLowerCase();
  $("room-error").textContent = "";
  if (!ROOM_PATTERN.test(name)) {
    $("room-error").textContent = $("room-name").title;
    return;
  }
  const answer = await api("POST", "/api/rooms", { name });
  if (!answer.ok) {
    $("room-error").textContent = answer.error;
    return;
  }
  $("room-name").value = "";
  if (!state.rooms.has(answer.data.name)) {
    state.rooms.set(answer.data.name, { ...answer.data, online: [] });
    addRoomItem(state.rooms.get(answer.data.name));
    followRooms();
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

$("sound").checked = state.sound;
$("sound").addEventListener("change", (e) => {
  state.sound = e.target.checked;
  localStorage.setItem("chatroom:sound", state.sound ? "on" : "off");
  if (state.sound) audio ??= new AudioContext();  // sound may start only after a click
});

for (const [button, cls] of [[$("menu"), "show-sidebar"], [$("people-toggle"), "show-people"]]) {
  button.addEventListener("click", () => {
    const shown = document.body.classList.toggle(cls);
    button.setAttribute("aria-expanded", shown);
  });
}

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

window.addEventListener("online", () => onStatus("reconnecting"));
window.addEventListener("offline", () => onStatus("offline"));

(async function start() {
  const [mine, settings] = await Promise.all([api("GET", "/api/session"), api("GET", "/api/settings")]);
  if (mine.ok && mine.data.muted) state.mutedUntil = mine.data.muted_until;
  if (settings.ok) state.privateMessages = settings.data.private_messages;
  await loadRooms();
  if (!state.rooms.has("general")) state.rooms.set("general", { name: "general", created_by: null, online: null });
  renderSidebar();
  tabs.start();
  await open("room", "general");
})();
