// The console page: a Zoom Team Chat look-alike fed live by the console server's WebSocket.
//
// The server sends a snapshot when the socket opens, then each message whole whenever it is
// posted, edited or deleted, and one log entry per webhook, hook and Zoom API call. What a
// person does here goes to the console's JSON API, which signs it and sends it into the bot.

import { card, el } from "./cards.js";

const state = {
  people: [],
  places: [],
  hooks: [],
  faults: [],
  slash: "/opsbot",
  user: "alice",
  place: "#ops",
  messages: new Map(),
  unread: new Map(),
  health: null,
  connected: false,
};

const $ = (id) => document.getElementById(id);
const typed = [];
let recalled = 0;

function me() {
  return state.people.find((p) => p.key === state.user) || { key: state.user, id: "", jid: "", name: state.user };
}

function placeJid(key) {
  if (key === "dm") return me().jid;
  const place = state.places.find((p) => p.key === key);
  return place ? place.jid : "";
}

function placeOf(message) {
  const channel = state.places.find((p) => p.jid && p.jid === message.conversation);
  if (channel) return channel.key;
  return message.conversation === me().jid ? "dm" : null;
}

// Who may see a message: a private reply only the user it names; a direct chat its owner.
function visible(message) {
  if (message.deleted) return false;
  if (message.kind === "bot" && message.visible_to) {
    const who = me();
    return message.visible_to === who.id || message.visible_to === who.jid;
  }
  return true;
}

function inView(message) {
  return message.conversation === placeJid(state.place) && visible(message);
}

async function post(path, data) {
  const resp = await fetch(`/console/api/${path}`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(data),
  });
  let body = null;
  try {
    body = await resp.json();
  } catch {
    body = null;
  }
  if (!resp.ok) throw new Error((body && body.error) || `the console answered ${resp.status}`);
  return body;
}

function showError(text) {
  const box = $("composer-error");
  box.textContent = text;
  box.hidden = !text;
}

// A webhook the bot refused (4xx/5xx) is worth saying out loud: Zoom would drop the action.
function checkWebhook(answer) {
  if (answer && answer.status && answer.status !== 200) {
    showError(`The bot answered the webhook with ${answer.status}: ${JSON.stringify(answer.response)}`);
  } else showError("");
}

const act = (message) => ({
  click: async (item, button) => {
    button.disabled = true;
    try {
      checkWebhook(await post("click", { user: state.user, message_id: message.id, value: item.value }));
    } catch (err) {
      showError(err.message);
    } finally {
      button.disabled = false;
    }
  },
  select: async (values) => {
    try {
      checkWebhook(await post("select", { user: state.user, message_id: message.id, values }));
    } catch (err) {
      showError(err.message);
    }
  },
  edit: async (origin, target, input) => {
    input.disabled = true;
    try {
      checkWebhook(await post("edit", { user: state.user, message_id: message.id, origin, target }));
    } catch (err) {
      showError(err.message);
    } finally {
      input.disabled = false;
    }
  },
  field: async (key, value, input) => {
    input.disabled = true;
    try {
      checkWebhook(await post("field", { user: state.user, message_id: message.id, key, value }));
    } catch (err) {
      showError(err.message);
    } finally {
      input.disabled = false;
    }
  },
});

function time(at) {
  const date = new Date(at * 1000);
  return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function initials(name) {
  return name.split(/\s+/).map((w) => w[0] || "").join("").slice(0, 2).toUpperCase();
}

function messageNode(message) {
  const node = el("div", `msg msg-${message.kind}`);
  node.dataset.messageId = message.id;
  const bot = message.kind === "bot";
  const name = bot ? "opsbot" : message.name;
  const avatar = el("div", `avatar ${bot ? "avatar-bot" : `avatar-${message.user}`}`, bot ? "⚙" : initials(name));
  avatar.setAttribute("aria-hidden", "true");
  const main = el("div", "msg-main");
  const meta = el("div", "msg-meta");
  meta.append(el("span", "msg-name", name));
  if (bot) meta.append(el("span", "badge", "App"));
  const when = el("time", "msg-time", time(message.at));
  when.dateTime = new Date(message.at * 1000).toISOString();
  meta.append(when);
  if (message.edits) meta.append(el("span", "msg-edited", "(edited)"));
  main.append(meta);
  if (bot && message.visible_to) {
    const note = el("div", "private-note", "Only visible to you");
    note.setAttribute("aria-label", "Only visible to you");
    main.append(note);
  }
  if (bot && message.reply_to && !document.querySelector(`.msg[data-message-id="${CSS.escape(message.reply_to)}"]`)) {
    main.append(el("div", "thread-note", "replied in a thread"));
  }
  if (bot) {
    const content = message.content || {};
    const drawn = card(content, act(message), state, message.markdown);
    const simple = !content.head && Array.isArray(content.body) && content.body.every((b) => b && b.type === "message");
    if (simple) drawn.classList.add("z-card-plain");
    main.append(drawn);
  } else {
    main.append(el("div", "msg-text", message.text));
  }
  const thread = el("div", "thread");
  thread.dataset.threadOf = message.id;
  main.append(thread);
  node.append(avatar, main);
  return node;
}

function parentThread(message) {
  if (!message.reply_to) return null;
  return document.querySelector(`.thread[data-thread-of="${CSS.escape(message.reply_to)}"]`);
}

// Draw one message where it belongs: replace it if shown, else add it (to its thread if any).
function upsert(message) {
  const existing = document.querySelector(`.msg[data-message-id="${CSS.escape(message.id)}"]`);
  if (!inView(message)) {
    if (existing) existing.remove();
    return;
  }
  const node = messageNode(message);
  if (existing) {
    // Keep its replies: they belong to the thread, not to the card.
    const replies = existing.querySelector(`.thread[data-thread-of="${CSS.escape(message.id)}"]`);
    if (replies) node.querySelector(".thread").replaceWith(replies);
    existing.replaceWith(node);
    return;
  }
  const timeline = $("timeline");
  for (const empty of timeline.querySelectorAll(".empty")) empty.remove();
  const thread = parentThread(message);
  (thread || timeline).append(node);
  if (!thread) timeline.scrollTop = timeline.scrollHeight;
}

function drawTimeline() {
  const timeline = $("timeline");
  timeline.replaceChildren();
  let shown = 0;
  for (const message of state.messages.values()) {
    if (inView(message)) {
      upsert(message);
      shown += 1;
    }
  }
  if (!shown) {
    const empty = el("div", "empty", `Nothing here yet. Type ${state.slash} help below (or just help).`);
    timeline.append(empty);
  }
  timeline.scrollTop = timeline.scrollHeight;
}

function drawNav() {
  const who = $("who");
  who.replaceChildren();
  for (const person of state.people) {
    const option = el("option", "", person.admin ? `${person.name} (admin)` : person.name);
    option.value = person.key;
    option.selected = person.key === state.user;
    who.append(option);
  }
  const channels = $("channels");
  const dms = $("dms");
  channels.replaceChildren();
  dms.replaceChildren();
  for (const place of state.places) {
    const item = el("li");
    const button = el("button", "nav-item", place.key === "dm" ? "opsbot" : place.name);
    button.type = "button";
    button.dataset.place = place.key;
    if (place.key === state.place) {
      button.classList.add("active");
      button.setAttribute("aria-current", "page");
    }
    const unread = state.unread.get(place.key);
    if (unread) button.append(el("span", "unread", String(unread)));
    button.addEventListener("click", () => go(state.user, place.key));
    item.append(button);
    (place.key === "dm" ? dms : channels).append(item);
  }
  const dm = state.place === "dm";
  $("place-name").textContent = dm ? "opsbot" : state.place;
  $("place-note").textContent = dm ? "Direct message with the bot" : `Channel · you are ${me().name}`;
  $("say").placeholder = dm ? "Message opsbot" : `Message ${state.place}: ${state.slash} help, or just help`;
  $("composer-hint").textContent = dm
    ? "In a direct message the bot gets what you type."
    : `In a channel Zoom sends the bot what follows ${state.slash}; the console takes it either way.`;
}

function go(user, place) {
  state.user = user;
  state.place = place;
  state.unread.delete(place);
  showError("");
  drawNav();
  drawTimeline();
}

function onMessage(message) {
  const before = state.messages.get(message.id);
  state.messages.set(message.id, message);
  if (inView(message)) upsert(message);
  else {
    const gone = document.querySelector(`.msg[data-message-id="${CSS.escape(message.id)}"]`);
    if (gone) gone.remove();
    const where = placeOf(message);
    if (!before && where && visible(message) && where !== state.place) {
      state.unread.set(where, (state.unread.get(where) || 0) + 1);
      drawNav();
    }
  }
}

// The side panel: one entry per webhook, hook and API call, newest first, JSON on demand.
function logNode(entry) {
  const item = el("li", `entry entry-${entry.kind} ${entry.ok ? "ok" : "failed"}`);
  item.dataset.kind = entry.kind;
  const details = el("details");
  const summary = el("summary");
  const label = { webhook: "webhook", api: "Zoom API", hook: "hook", note: "console" }[entry.kind] || entry.kind;
  summary.append(el("span", "entry-kind", label), el("span", "entry-title", entry.title));
  if (entry.status !== null && entry.status !== undefined) {
    summary.append(el("span", "entry-status", entry.status === 0 ? "dropped" : String(entry.status)));
  }
  summary.append(el("time", "entry-time", time(entry.at)));
  details.append(summary);
  if (entry.request !== null && entry.request !== undefined) {
    details.append(el("div", "entry-label", entry.kind === "api" ? "Zoom received" : "sent"));
    details.append(el("pre", "json", JSON.stringify(entry.request, null, 2)));
  }
  if (entry.headers && Object.keys(entry.headers).length) {
    details.append(el("div", "entry-label", "headers"));
    details.append(el("pre", "json", JSON.stringify(entry.headers, null, 2)));
  }
  if (entry.response !== null && entry.response !== undefined) {
    details.append(el("div", "entry-label", entry.kind === "api" ? "Zoom answered" : "the bot answered"));
    details.append(el("pre", "json", JSON.stringify(entry.response, null, 2)));
  }
  item.append(details);
  return item;
}

function onLog(entry) {
  const log = $("log");
  log.prepend(logNode(entry));
  while (log.children.length > 1000) log.lastChild.remove();
}

function drawHealth() {
  const box = $("health");
  if (!state.connected) {
    box.textContent = "Disconnected from the console: reconnecting…";
    box.className = "health health-bad";
    return;
  }
  const health = state.health || { status: "starting", details: {} };
  const details = health.details || {};
  const queued = details.queued ?? 0;
  let text = `Bot ${health.status} · ${queued} queued`;
  if (details.oldest_queued_seconds) text += ` (oldest ${details.oldest_queued_seconds} s)`;
  if (details.reason) text += ` · ${details.reason}`;
  box.textContent = text;
  box.className = `health health-${health.status === "ok" ? "ok" : "bad"}`;
}

function drawHooks() {
  const routes = $("hook-route");
  routes.replaceChildren();
  state.hooks.forEach((hook, i) => {
    const option = el("option", "", `${hook.method} ${hook.path}`);
    option.value = String(i);
    routes.append(option);
  });
  if (!state.hooks.length) routes.append(el("option", "", "(no plugin has hooks)"));
  pickHook();
}

function pickHook() {
  const hook = state.hooks[Number($("hook-route").value)];
  if (!hook) return;
  $("hook-method").value = hook.method;
  $("hook-path").value = hook.path;
  $("hook-secret").value = hook.secret;
  $("hook-body").value = hook.body;
}

function drawFaults() {
  const select = $("fault-status");
  select.replaceChildren();
  for (const status of state.faults) {
    const labels = { 0: "drop the connection", 429: "429 Too Many Requests", 500: "500 Internal Server Error", 502: "502 Bad Gateway", 503: "503 Service Unavailable", 504: "504 Gateway Timeout" };
    const option = el("option", "", labels[status] || String(status));
    option.value = String(status);
    if (status === 429) option.selected = true;
    select.append(option);
  }
}

function onSnapshot(snapshot) {
  state.people = snapshot.people;
  state.places = snapshot.places;
  state.hooks = snapshot.hooks;
  state.faults = snapshot.faults;
  state.slash = snapshot.slash;
  state.health = snapshot.health;
  state.messages = new Map(snapshot.messages.map((m) => [m.id, m]));
  $("log").replaceChildren();
  snapshot.log.forEach(onLog);
  drawNav();
  drawTimeline();
  drawHooks();
  drawFaults();
  drawHealth();
  document.body.dataset.ready = "true";
}

function connect() {
  const scheme = window.location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${window.location.host}/console/ws`);
  socket.addEventListener("open", () => {
    state.connected = true;
  });
  socket.addEventListener("message", (event) => {
    const data = JSON.parse(event.data);
    if (data.type === "snapshot") onSnapshot(data);
    else if (data.type === "message") onMessage(data.message);
    else if (data.type === "log") onLog(data.entry);
    else if (data.type === "places") {
      state.places = data.places;
      drawNav();
    }
    else if (data.type === "health") {
      state.health = data.health;
      drawHealth();
    }
  });
  socket.addEventListener("close", () => {
    state.connected = false;
    document.body.dataset.ready = "false";
    drawHealth();
    setTimeout(connect, 1000);
  });
}

function wire() {
  $("composer").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = $("say");
    const text = input.value.trim();
    if (!text) return;
    try {
      const answer = await post("say", { user: state.user, place: state.place, text });
      typed.push(text);
      recalled = typed.length;
      input.value = "";
      checkWebhook(answer);
    } catch (err) {
      showError(err.message);
    }
  });
  // Up and Down go through what was typed before, as in a terminal.
  $("say").addEventListener("keydown", (event) => {
    if (event.key !== "ArrowUp" && event.key !== "ArrowDown") return;
    const step = event.key === "ArrowUp" ? -1 : 1;
    const next = Math.max(0, Math.min(typed.length, recalled + step));
    if (next === recalled) return;
    event.preventDefault();
    recalled = next;
    event.target.value = typed[recalled] ?? "";
  });
  $("who").addEventListener("change", (event) => go(event.target.value, state.place));
  for (const tab of document.querySelectorAll("[role=tab]")) {
    tab.addEventListener("click", () => {
      for (const other of document.querySelectorAll("[role=tab]")) {
        const on = other === tab;
        other.setAttribute("aria-selected", String(on));
        $(`tab-${other.dataset.tab}`).hidden = !on;
      }
    });
  }
  for (const box of document.querySelectorAll(".filters input[data-kind]")) {
    box.addEventListener("change", () => $("log").classList.toggle(`hide-${box.dataset.kind}`, !box.checked));
  }
  $("clear-log").addEventListener("click", () => $("log").replaceChildren());
  $("hook-route").addEventListener("change", pickHook);
  $("hook-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const result = $("hook-result");
    try {
      const headers = {};
      for (const line of $("hook-headers").value.split("\n")) {
        const at = line.indexOf(":");
        if (line.trim() && at < 1) throw new Error(`headers: "${line}" is not Name: value`);
        if (line.trim()) headers[line.slice(0, at).trim()] = line.slice(at + 1).trim();
      }
      const answer = await post("hook", {
        method: $("hook-method").value,
        path: $("hook-path").value,
        secret: $("hook-secret").value,
        headers,
        body: $("hook-body").value,
      });
      result.textContent = `${answer.status}\n${JSON.stringify(answer.response, null, 2)}`;
      result.className = `result ${answer.status < 300 ? "ok" : "failed"}`;
    } catch (err) {
      result.textContent = err.message;
      result.className = "result failed";
    }
    result.hidden = false;
  });
  const fault = async (action) => {
    const result = $("fault-result");
    try {
      await post("fault", { action, status: Number($("fault-status").value), count: Number($("fault-count").value) });
      result.textContent = action === "restore" ? "Zoom answers normally again." : action === "outage" ? "Outage started: every API request fails until you restore Zoom." : "Armed.";
      result.className = "result ok";
    } catch (err) {
      result.textContent = err.message;
      result.className = "result failed";
    }
    result.hidden = false;
  };
  $("fault-form").addEventListener("submit", (event) => {
    event.preventDefault();
    fault("inject");
  });
  for (const button of document.querySelectorAll("#fault-form button[type=button]")) {
    button.addEventListener("click", () => fault(button.dataset.action));
  }
}

wire();
connect();
