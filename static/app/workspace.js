/*
 * The agent workspace (/workspace/): conversation list, thread with composer, customer pane.
 * Data from the REST API (session auth, X-Organization) and live events through live.js.
 * Every user-visible string goes through Django's JavaScript catalogue (gettext).
 */
import { connect } from "./live.js";
import { attachmentInput, renderMedia } from "./media.js";

const config = JSON.parse(document.getElementById("workspace-config").textContent);
const _ = (s) => (window.gettext ? window.gettext(s) : s);
const fmt = (s, values) => (window.interpolate ? window.interpolate(_(s), values, true) : s);
const $ = (id) => document.getElementById(id);

const WAITING = (c) => c.mode === "human" && c.status === "pending";
const HANDOFF_REASONS = {
  keyword: () => _("The customer asked for a person"),
  sentiment: () => _("Negative sentiment"),
  ai_failed: () => _("The AI failed"),
  budget: () => _("The budget is used up"),
  phone_reply: () => _("Answered from the phone"),
  no_ai_app: () => _("No AI app is set up"),
  agent: () => _("Taken over by an agent"),
};
const SENDER = {
  ai: () => _("AI"),
  phone: () => _("Phone"),
  sop: () => _("SOP"),
  system: () => _("System"),
};
const INTENT = {
  purchase: () => _("Wants to buy"),
  price_inquiry: () => _("Asks about price"),
  product_question: () => _("Product question"),
  after_sales: () => _("After-sales"),
  complaint: () => _("Complaint"),
  greeting: () => _("Greeting"),
  chitchat: () => _("Chit-chat"),
  other: () => _("Other"),
};
const SENTIMENT = {
  positive: () => _("Positive"),
  neutral: () => _("Neutral"),
  negative: () => _("Negative"),
};
const label = (map, value) => (value ? (map[value] || map.other || (() => value))() : "");
const MESSAGE_STATUS = {
  queued: () => _("Queued"),
  sending: () => _("Sending…"),
  sent: () => _("Sent"),
  failed: () => _("Failed"),
};

const state = {
  view: "all",
  filters: { account: "", label: "", status: "", q: "" },
  rows: new Map(),
  order: [],
  nextPage: null,
  current: null,
  conversation: null,
  messages: new Map(),
  notes: new Map(),
  olderUrl: null,
  loadingOlder: false,
  members: new Map(),
  canned: null,
  viewers: new Map(),
  aiStatus: null,
  waitingIds: new Set(),
  typingSentAt: 0,
  composeKind: "reply",
  cannedIndex: 0,
  cannedItems: [],
  cannedToken: 0, // the newest canned-popup update; an older one that resolves late is dropped
};

// -- HTTP ----------------------------------------------------------------------------------

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

async function api(path, { method = "GET", body } = {}) {
  const url = path.startsWith("http") || path.startsWith("/") ? path : config.urls.api + path;
  const response = await fetch(url, {
    method,
    credentials: "same-origin",
    headers: {
      Accept: "application/json",
      "X-Organization": String(config.org.id),
      ...(body !== undefined ? { "Content-Type": "application/json" } : {}),
      ...(method !== "GET" ? { "X-CSRFToken": csrfToken() } : {}),
    },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  if (response.status === 204) return null;
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = new Error((data && data.error && data.error.message) || _("Something went wrong. Try again."));
    error.status = response.status;
    error.fields = data && data.error && data.error.fields;
    throw error;
  }
  return data;
}

// -- small helpers -------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function timeLabel(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  const now = new Date();
  const pad = (n) => String(n).padStart(2, "0");
  const hm = `${pad(date.getHours())}:${pad(date.getMinutes())}`;
  if (date.toDateString() === now.toDateString()) return hm;
  const yesterday = new Date(now);
  yesterday.setDate(now.getDate() - 1);
  if (date.toDateString() === yesterday.toDateString()) return `${_("Yesterday")} ${hm}`;
  return `${date.getMonth() + 1}-${date.getDate()} ${hm}`;
}

function waitedLabel(iso) {
  if (!iso) return "";
  const minutes = Math.max(0, Math.floor((Date.now() - Date.parse(iso)) / 60000));
  if (minutes < 1) return _("waiting less than a minute");
  if (minutes < 60) return fmt("waiting %(n)s min", { n: minutes });
  return fmt("waiting %(h)s h %(m)s min", { h: Math.floor(minutes / 60), m: minutes % 60 });
}

function displayName(c) {
  return c.display_name || (c.contact && (c.contact.remark || c.contact.nickname)) || _("Unnamed customer");
}

function avatar(name, url) {
  if (url) return el("img", { class: "ws-avatar", src: url, alt: "", loading: "lazy", referrerpolicy: "no-referrer" });
  return el("span", { class: "ws-avatar ws-avatar-letter", "aria-hidden": "true", text: (name || "?").trim().slice(0, 1) });
}

function modeBadges(c) {
  const badges = [];
  if (c.mode === "ai") badges.push(["ai", _("AI")]);
  else if (c.handoff_reason === "phone_reply" && c.ai_paused_until) badges.push(["paused", _("AI paused")]);
  else badges.push(["human", _("Human")]);
  if (c.has_drafts) badges.push(["draft", _("Draft")]);
  return badges;
}

function memberName(id) {
  if (id == null) return "";
  if (id === config.user.id) return config.user.name;
  return state.members.get(id) || _("a colleague");
}

function toast(text, { kind = "info", onclick } = {}) {
  const node = el("div", { class: `ws-toast ws-toast-${kind}`, role: "status", onclick }, text);
  $("ws-toasts").append(node);
  setTimeout(() => node.remove(), 6000);
}

function showError(err) {
  toast(err.message || _("Something went wrong. Try again."), { kind: "error" });
}

// -- the list ------------------------------------------------------------------------------

function listQuery(page) {
  const params = new URLSearchParams({ view: state.view, page_size: "50" });
  const { account, label, status, q } = state.filters;
  if (account) params.set("account", account);
  if (label) params.set("label", label);
  if (status) params.set("status", status);
  if (q) params.set("q", q);
  if (page) params.set("page", page);
  return `conversations/?${params}`;
}

function matchesView(c) {
  const me = config.user.id;
  const resolved = c.status === "resolved";
  const byView = {
    mine: c.assignee === me && !resolved,
    unassigned: c.assignee == null && !resolved,
    waiting: WAITING(c),
    ai: c.mode === "ai" && (c.status === "open" || c.status === "pending"),
    resolved,
    all: true,
  }[state.view];
  if (!byView) return false;
  const f = state.filters;
  if (f.account && String(c.account) !== f.account) return false;
  if (f.status && c.status !== f.status) return false;
  if (f.label && !(c.labels || []).includes(f.label)) return false;
  return !f.q; // a search result list is not changed live (the search runs on the server)
}

function sortOrder() {
  const rows = state.order.map((id) => state.rows.get(id)).filter(Boolean);
  if (state.view === "waiting") {
    rows.sort((a, b) => (Date.parse(a.handed_off_at) || 0) - (Date.parse(b.handed_off_at) || 0) || a.id - b.id);
  } else {
    rows.sort((a, b) => (Date.parse(b.last_message_at) || 0) - (Date.parse(a.last_message_at) || 0) || b.id - a.id);
  }
  state.order = rows.map((r) => r.id);
}

let listToken = 0;
async function loadList() {
  const token = ++listToken;
  try {
    const data = await api(listQuery());
    if (token !== listToken) return;
    state.rows = new Map(data.results.map((c) => [c.id, c]));
    state.order = data.results.map((c) => c.id);
    state.nextPage = data.next ? 2 : null;
    renderList();
  } catch (err) {
    showError(err);
  }
}

async function loadMoreRows() {
  if (!state.nextPage || state.loadingRows) return;
  state.loadingRows = true;
  try {
    const data = await api(listQuery(state.nextPage));
    for (const c of data.results) {
      if (!state.rows.has(c.id)) state.order.push(c.id);
      state.rows.set(c.id, c);
    }
    state.nextPage = data.next ? state.nextPage + 1 : null;
    renderList();
  } catch (err) {
    showError(err);
  } finally {
    state.loadingRows = false;
  }
}

let countsTimer = null;
function refreshCounts() {
  clearTimeout(countsTimer);
  countsTimer = setTimeout(async () => {
    try {
      const counts = await api("conversations/counts/");
      for (const node of document.querySelectorAll("[data-count]")) {
        const value = counts[node.dataset.count];
        node.textContent = value ? String(value) : "";
      }
      updateTitle(counts.waiting || 0);
    } catch {
      /* the next event retries */
    }
  }, 150);
}

function updateTitle(waiting) {
  const base = `${_("Workspace")} · ${config.org.name}`;
  document.title = waiting ? `(${waiting}) ${base}` : base;
}

function renderRow(c) {
  const name = displayName(c);
  const badges = modeBadges(c).map(([kind, text]) => el("span", { class: `ws-badge ws-badge-${kind}`, text }));
  const meta = state.view === "waiting" && WAITING(c) ? waitedLabel(c.handed_off_at) : c.account_name || "";
  return el(
    "li",
    {
      class: `ws-row${c.id === state.current ? " ws-row-active" : ""}${c.unread_count ? " ws-row-unread" : ""}`,
      dataset: { id: c.id },
      tabindex: "0",
      onclick: () => openConversation(c.id),
      onkeydown: (e) => e.key === "Enter" && openConversation(c.id),
    },
    avatar(name, c.contact && c.contact.avatar_url),
    el(
      "div",
      { class: "ws-row-body" },
      el("div", { class: "ws-row-top" }, el("span", { class: "ws-row-name", text: name }), el("span", { class: "ws-row-time", text: timeLabel(c.last_message_at) })),
      el("div", { class: "ws-row-preview", text: c.last_message_text || "" }),
      el(
        "div",
        { class: "ws-row-meta" },
        ...badges,
        el("span", { class: "ws-muted", text: meta }),
        c.unread_count ? el("span", { class: "ws-unread", text: String(c.unread_count) }) : null,
      ),
    ),
  );
}

function renderList() {
  sortOrder();
  const list = $("ws-rows");
  list.replaceChildren(...state.order.map((id) => renderRow(state.rows.get(id))));
  $("ws-rows-empty").hidden = state.order.length > 0;
  for (const button of document.querySelectorAll("#ws-views [data-view]")) {
    button.classList.toggle("ws-active", button.dataset.view === state.view);
  }
}

function upsertRow(c, { moveToTop = false } = {}) {
  const known = state.rows.get(c.id);
  const merged = { ...(known || {}), ...c };
  if (!matchesView(merged)) {
    if (known) {
      state.rows.delete(c.id);
      state.order = state.order.filter((id) => id !== c.id);
    }
    return merged;
  }
  state.rows.set(c.id, merged);
  if (!known) state.order.unshift(c.id);
  else if (moveToTop) state.order = [c.id, ...state.order.filter((id) => id !== c.id)];
  return merged;
}

async function fetchRow(id) {
  try {
    return await api(`conversations/${id}/`);
  } catch {
    return null;
  }
}

// -- the thread ----------------------------------------------------------------------------

function senderLabel(m) {
  if (m.sender_kind === "customer") {
    const isGroup = state.conversation && state.conversation.contact && state.conversation.contact.kind === "group";
    if (isGroup) return m.sender_name || _("Group member");
    return state.conversation ? displayName(state.conversation) : _("Customer");
  }
  if (m.sender_kind === "agent") return m.sender_user_name || memberName(m.sender_user_id ?? m.sender_user);
  const appName = m.sender_kind === "ai" ? (config.ai_apps || {})[String(m.ai_app_id ?? m.ai_app ?? "")] : null;
  if (appName) return fmt("AI · %(app)s", { app: appName }); // which app answered (failover)
  return (SENDER[m.sender_kind] || (() => m.sender_kind))();
}

function statusLine(m) {
  if (m.direction !== "outbound") return null;
  const line = el("div", { class: `ws-status ws-status-${m.status}` });
  if (m.status === "failed") {
    const unknown = (m.error || "").startsWith("delivery_unknown");
    line.append(
      el("span", {
        text: unknown
          ? _("Delivery unknown: the platform may or may not have sent it. Check the chat on the phone before sending again.")
          : _("Not sent."),
        title: m.error || "",
      }),
    );
    if (config.can_write) {
      line.append(el("button", { type: "button", class: "ws-retry", text: _("Send again"), onclick: () => resend(m) }));
    }
  } else {
    line.textContent = (MESSAGE_STATUS[m.status] || (() => ""))();
  }
  return line;
}

function renderMessage(m) {
  const side = m.direction === "inbound" ? "in" : "out";
  const kind = m.kind === "system" || m.sender_kind === "system" ? " ws-bubble-system" : "";
  let body;
  // media (static/app/media.js): thumbnail, player, download link, pending or 媒体获取失败.
  const media = renderMedia(m);
  if (media) body = media;
  else if (m.text) body = el("div", { class: "ws-text", text: m.text });
  else body = el("div", { class: "ws-text ws-muted", text: `[${(config.labels.kind || {})[m.kind] || m.kind}]` });
  return el(
    "li",
    { class: `ws-bubble ws-bubble-${side} ws-from-${m.sender_kind}${kind}`, dataset: { id: `m${m.id}` } },
    el("div", { class: "ws-bubble-head" }, el("span", { class: "ws-sender", text: senderLabel(m) }), el("time", { text: timeLabel(m.created_at) })),
    body,
    statusLine(m),
    m.direction === "inbound" && (m.intent || m.sentiment)
      ? el("div", { class: "ws-analysis", text: [label(INTENT, m.intent), label(SENTIMENT, m.sentiment)].filter(Boolean).join(" · ") })
      : null,
  );
}

function renderNote(n) {
  return el(
    "li",
    { class: "ws-bubble ws-note", dataset: { id: `n${n.id}` } },
    el("div", { class: "ws-bubble-head" }, el("span", { class: "ws-sender", text: fmt("Private note · %(name)s", { name: n.author_name || memberName(n.author) }) }), el("time", { text: timeLabel(n.created_at) })),
    el("div", { class: "ws-text", text: n.text }),
  );
}

function threadItems() {
  const items = [];
  let oldest = null;
  for (const m of state.messages.values()) {
    items.push({ at: Date.parse(m.created_at), id: m.id, node: () => renderMessage(m) });
    if (oldest === null || Date.parse(m.created_at) < oldest) oldest = Date.parse(m.created_at);
  }
  for (const n of state.notes.values()) {
    const at = Date.parse(n.created_at);
    if (state.olderUrl && oldest !== null && at < oldest) continue; // older than what is loaded
    items.push({ at, id: n.id + 0.5, node: () => renderNote(n) });
  }
  items.sort((a, b) => a.at - b.at || a.id - b.id);
  return items;
}

function renderThread({ keepScroll = false, toBottom = false } = {}) {
  // While a thread loads, live messages are kept and shown with the fetched ones, never alone.
  if (state.threadLoading && state.threadLoading === state.current) return;
  const box = $("ws-messages");
  const nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  const fromBottom = box.scrollHeight - box.scrollTop;
  $("ws-bubbles").replaceChildren(...threadItems().map((item) => item.node()));
  if (keepScroll) box.scrollTop = box.scrollHeight - fromBottom;
  else if (toBottom || nearBottom) box.scrollTop = box.scrollHeight;
}

function upsertMessage(m) {
  if (!state.current || m.conversation_id !== state.current && m.conversation !== state.current) return false;
  const known = state.messages.get(m.id);
  if (known && known.updated_at && m.updated_at && Date.parse(known.updated_at) > Date.parse(m.updated_at)) return false;
  state.messages.set(m.id, { ...(known || {}), ...m, conversation_id: state.current });
  return true;
}

function renderHeader() {
  const c = state.conversation;
  if (!c) return;
  $("ws-thread-name").textContent = displayName(c);
  const badges = modeBadges(c);
  $("ws-thread-mode").textContent = badges[0][1];
  $("ws-thread-mode").className = `ws-badge ws-badge-${badges[0][0]}`;
  $("ws-thread-status").textContent = (config.labels.status || {})[c.status] || c.status;
  $("ws-thread-assignee").textContent = c.assignee ? fmt("Assigned to %(name)s", { name: c.assignee_name || memberName(c.assignee) }) : _("Unassigned");
  const actions = $("ws-actions");
  actions.hidden = !config.can_write;
  actions.querySelector('[data-action="takeover"]').hidden = c.mode === "human" && c.handoff_reason === "agent";
  actions.querySelector('[data-action="return_ai"]').hidden = c.mode === "ai";
  actions.querySelector('[data-action="resolve"]').hidden = c.status === "resolved";
  actions.querySelector('[data-action="reopen"]').hidden = c.status !== "resolved";
  renderLabels(c);
  const banner = $("ws-handoff-banner");
  if (c.mode === "human" && ((c.handoff_reason && c.handoff_reason !== "agent") || WAITING(c))) {
    const reason = HANDOFF_REASONS[c.handoff_reason] && c.handoff_reason !== "agent" ? `: ${HANDOFF_REASONS[c.handoff_reason]()}` : "";
    const waiting = WAITING(c) && c.handed_off_at ? ` · ${waitedLabel(c.handed_off_at)}` : "";
    banner.textContent = `${_("Handed to a person")}${reason}${waiting}`;
    banner.hidden = false;
  } else {
    banner.hidden = true;
  }
  renderPresence();
}

function renderLabels(c) {
  const box = $("ws-thread-labels");
  const names = c.labels || [];
  const save = (next) =>
    api(`conversations/${c.id}/labels/`, { method: "POST", body: { labels: next } })
      .then((updated) => applyConversation(updated))
      .catch(showError);
  const chips = names.map((name) =>
    el("span", { class: "ws-tag" }, name, config.can_write ? el("button", { type: "button", class: "ws-tag-x", "aria-label": _("Remove label"), text: "×", onclick: () => save(names.filter((n) => n !== name)) }) : null),
  );
  if (config.can_write) {
    const input = el("input", { class: "ws-label-input", list: "ws-label-options", placeholder: _("+ label"), "aria-label": _("Add a label") });
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && input.value.trim()) {
        e.preventDefault();
        save([...names, input.value.trim()]);
      }
    });
    const options = el("datalist", { id: "ws-label-options" }, ...(config.labels_all || []).map((n) => el("option", { value: n })));
    chips.push(input, options);
  }
  box.replaceChildren(...chips);
}

function renderPresence() {
  const parts = [];
  const now = Date.now();
  for (const [userId, info] of state.viewers) {
    if (info.until < now) {
      state.viewers.delete(userId);
      continue;
    }
    parts.push(info.typing ? fmt("%(name)s is typing…", { name: info.name }) : fmt("%(name)s is viewing", { name: info.name }));
  }
  if (state.aiStatus && state.aiStatus.until > now) {
    parts.unshift(state.aiStatus.text ? `${_("AI is replying…")} ${state.aiStatus.text}` : _("AI is replying…"));
  }
  $("ws-presence").textContent = parts.join(" · ");
}
setInterval(renderPresence, 2000);

async function openConversation(id, { pushHistory = true } = {}) {
  if (state.current && state.current !== id) {
    live.send("typing", { conversation_id: state.current, is_typing: false, viewing: false });
    live.send("leave", { conversation_id: state.current });
  }
  state.current = id;
  state.messages = new Map();
  state.notes = new Map();
  state.viewers = new Map();
  state.aiStatus = null;
  state.olderUrl = null;
  state.threadLoading = id; // live messages wait in state.messages until the thread is fetched
  $("ws-thread-placeholder").hidden = true;
  $("ws-thread-inner").hidden = false;
  $("ws-bubbles").replaceChildren();
  if (pushHistory) history.replaceState(null, "", `${config.urls.page}c/${id}/`);
  for (const row of document.querySelectorAll(".ws-row")) row.classList.toggle("ws-row-active", Number(row.dataset.id) === id);
  try {
    const [conversation, page, notes] = await Promise.all([
      api(`conversations/${id}/`),
      api(`conversations/${id}/messages/?page_size=50`),
      api(`conversations/${id}/notes/`),
    ]);
    if (state.current !== id) return;
    state.threadLoading = null;
    state.conversation = conversation;
    for (const m of page.results) upsertMessage({ ...m, conversation_id: id }); // a newer live copy wins
    for (const n of notes) state.notes.set(n.id, n);
    state.olderUrl = page.next;
    renderHeader();
    renderThread({ toBottom: true });
    renderComposer();
    joinCurrent();
    markRead();
    loadCustomer(id);
    loadDrafts(id);
  } catch (err) {
    if (state.threadLoading === id) state.threadLoading = null;
    if (err.status === 404) {
      toast(_("This conversation is not available to you."), { kind: "error" });
      closeThread();
    } else showError(err);
  }
}

function closeThread() {
  state.current = null;
  state.conversation = null;
  $("ws-thread-placeholder").hidden = false;
  $("ws-thread-inner").hidden = true;
  $("ws-customer").hidden = true;
  history.replaceState(null, "", config.urls.page);
}

function joinCurrent() {
  if (!state.current) return;
  live.send("join", { conversation_id: state.current });
  live.send("typing", { conversation_id: state.current, is_typing: false, viewing: true });
}

function markRead() {
  const c = state.current && state.rows.get(state.current);
  if (!state.current) return;
  if (c) {
    c.unread_count = 0;
    const row = document.querySelector(`.ws-row[data-id="${state.current}"]`);
    if (row) row.replaceWith(renderRow(c));
  }
  if (!live.send("mark_read", { conversation_id: state.current })) {
    api(`conversations/${state.current}/mark-read/`, { method: "POST" }).catch(() => {});
  }
}

async function loadOlder() {
  if (!state.olderUrl || state.loadingOlder || !state.current) return;
  state.loadingOlder = true;
  $("ws-older").hidden = false;
  const id = state.current;
  try {
    const page = await api(state.olderUrl);
    if (state.current !== id) return;
    for (const m of page.results) if (!state.messages.has(m.id)) state.messages.set(m.id, { ...m, conversation_id: id });
    state.olderUrl = page.next;
    renderThread({ keepScroll: true });
  } catch (err) {
    showError(err);
  } finally {
    state.loadingOlder = false;
    $("ws-older").hidden = true;
  }
}

// -- drafts (AI copilot mode) --------------------------------------------------------------

async function loadDrafts(id) {
  const box = $("ws-drafts");
  box.hidden = true;
  box.replaceChildren();
  if (!config.can_write) return;
  let drafts;
  try {
    drafts = await api(`drafts/?conversation=${id}&status=pending`);
  } catch {
    return; // drafts not available on this server
  }
  if (state.current !== id) return;
  const list = Array.isArray(drafts) ? drafts : drafts.results || [];
  renderDrafts(list.filter((d) => d.status === "pending"));
}

function renderDrafts(drafts) {
  const box = $("ws-drafts");
  box.replaceChildren(
    ...drafts.map((d) =>
      el(
        "div",
        { class: "ws-draft", dataset: { id: d.id } },
        el("div", { class: "ws-muted", text: _("AI draft") }),
        el("div", { class: "ws-text", text: d.text }),
        el(
          "div",
          { class: "ws-draft-actions" },
          el("button", { type: "button", class: "ws-primary", text: _("Send as is"), onclick: () => draftAction(d, "send") }),
          el("button", { type: "button", text: _("Edit"), onclick: () => { $("ws-input").value = d.text; $("ws-input").focus(); state.editingDraft = d.id; } }),
          el("button", { type: "button", text: _("Discard"), onclick: () => draftAction(d, "discard") }),
        ),
      ),
    ),
  );
  box.hidden = drafts.length === 0;
}

async function draftAction(draft, action, text) {
  try {
    await api(`drafts/${draft.id}/${action}/`, { method: "POST", body: text !== undefined ? { text } : {} });
    loadDrafts(state.current);
  } catch (err) {
    showError(err);
  }
}

// -- the composer --------------------------------------------------------------------------

function renderComposer() {
  const canWrite = config.can_write;
  $("ws-composer").hidden = !canWrite;
  $("ws-readonly").hidden = canWrite;
}

async function submitComposer() {
  const input = $("ws-input");
  const text = input.value.trim();
  if (!text || !state.current) return;
  const id = state.current;
  $("ws-composer-error").textContent = "";
  input.value = "";
  stopTyping();
  try {
    if (state.composeKind === "note") {
      const note = await api(`conversations/${id}/notes/`, { method: "POST", body: { text } });
      state.notes.set(note.id, note);
      renderThread({ toBottom: true });
    } else if (state.editingDraft) {
      const draftId = state.editingDraft;
      state.editingDraft = null;
      await draftAction({ id: draftId }, "edit-send", text);
    } else {
      const clientId = `ws:${config.user.id}:${Date.now()}:${Math.random().toString(36).slice(2, 8)}`;
      const message = await api(`conversations/${id}/messages/`, { method: "POST", body: { text, client_msg_id: clientId } });
      if (upsertMessage({ ...message, conversation_id: id })) renderThread({ toBottom: true });
    }
  } catch (err) {
    input.value = text;
    $("ws-composer-error").textContent = err.message;
  }
}

function sendTyping() {
  const now = Date.now();
  if (!state.current || now - state.typingSentAt < 2500) return;
  state.typingSentAt = now;
  live.send("typing", { conversation_id: state.current, is_typing: true, viewing: true });
  clearTimeout(state.typingStop);
  state.typingStop = setTimeout(stopTyping, 4000);
}

function stopTyping() {
  if (!state.typingSentAt || !state.current) return;
  state.typingSentAt = 0;
  clearTimeout(state.typingStop);
  live.send("typing", { conversation_id: state.current, is_typing: false, viewing: true });
}

async function cannedReplies() {
  if (state.canned === null) {
    try {
      const data = await api("canned-replies/?page_size=200");
      state.canned = data.results || data;
    } catch {
      state.canned = [];
    }
  }
  return state.canned;
}

async function updateCanned() {
  const token = ++state.cannedToken;
  const input = $("ws-input");
  const value = input.value;
  const box = $("ws-canned");
  if (!value.startsWith("/") || state.composeKind !== "reply") {
    box.hidden = true;
    return;
  }
  const query = value.slice(1).toLowerCase();
  const all = await cannedReplies();
  // Typing "/hi" starts three updates; one resolving after a pick must not reopen the popup.
  if (token !== state.cannedToken) return;
  state.cannedItems = all
    .filter((c) => !query || c.title.toLowerCase().includes(query) || (c.shortcut || "").toLowerCase().includes(query) || c.text.toLowerCase().includes(query))
    .slice(0, 8);
  state.cannedIndex = Math.min(state.cannedIndex, Math.max(0, state.cannedItems.length - 1));
  const list = $("ws-canned-list");
  if (!state.cannedItems.length) {
    list.replaceChildren(el("li", { class: "ws-muted", text: _("No canned reply matches.") }));
  } else {
    list.replaceChildren(
      ...state.cannedItems.map((c, i) =>
        el(
          "li",
          { class: i === state.cannedIndex ? "ws-active" : "", onmousedown: (e) => { e.preventDefault(); pickCanned(c); } },
          el("strong", { text: c.shortcut ? `/${c.shortcut} ` : "" }),
          el("span", { text: c.title }),
          el("div", { class: "ws-muted", text: c.text }),
        ),
      ),
    );
  }
  box.hidden = false;
}

async function pickCanned(canned) {
  state.cannedToken += 1;
  $("ws-canned").hidden = true;
  try {
    const rendered = await api(`canned-replies/${canned.id}/render/`, { method: "POST", body: { conversation: state.current } });
    const input = $("ws-input");
    input.value = rendered.text;
    input.focus();
    input.setSelectionRange(input.value.length, input.value.length);
  } catch (err) {
    showError(err);
  }
}

function setupComposer() {
  const input = $("ws-input");
  input.addEventListener("keydown", (e) => {
    const cannedOpen = !$("ws-canned").hidden && state.cannedItems.length;
    if (cannedOpen && (e.key === "ArrowDown" || e.key === "ArrowUp")) {
      e.preventDefault();
      state.cannedIndex = (state.cannedIndex + (e.key === "ArrowDown" ? 1 : -1) + state.cannedItems.length) % state.cannedItems.length;
      updateCanned();
      return;
    }
    if (e.key === "Escape") {
      $("ws-canned").hidden = true;
      return;
    }
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      if (cannedOpen) pickCanned(state.cannedItems[state.cannedIndex]);
      else submitComposer();
    }
  });
  input.addEventListener("input", () => {
    state.cannedIndex = 0;
    updateCanned();
    if (state.composeKind === "reply" && input.value) sendTyping();
  });
  $("ws-composer").addEventListener("submit", (e) => {
    e.preventDefault();
    submitComposer();
  });
  // media: the paperclip uploads a file and sends it at once (image / video / file).
  $("ws-composer").querySelector(".ws-composer-foot").prepend(
    attachmentInput({
      orgId: config.org.id,
      onUploaded: sendMedia,
      onError: (err) => {
        $("ws-composer-error").textContent = err.message;
      },
    }),
  );
  for (const radio of document.querySelectorAll('input[name="ws-compose-kind"]')) {
    radio.addEventListener("change", () => {
      state.composeKind = radio.value;
      $("ws-composer").classList.toggle("ws-composer-note", radio.value === "note");
      input.placeholder = radio.value === "note" ? _("Write a private note (only your team sees it)…") : _("Write a reply…");
      $("ws-send").textContent = radio.value === "note" ? _("Add note") : _("Send");
      updateCanned();
    });
  }
}

async function resend(m) {
  try {
    const message = await api(`conversations/${state.current}/messages/${m.id}/resend/`, { method: "POST" });
    if (upsertMessage({ ...message, conversation_id: state.current })) renderThread({ toBottom: true });
  } catch (err) {
    showError(err);
  }
}

// -- conversation actions ------------------------------------------------------------------

async function conversationAction(action, value) {
  const id = state.current;
  if (!id) return;
  const calls = {
    takeover: () => api(`conversations/${id}/takeover/`, { method: "POST" }),
    return_ai: () => api(`conversations/${id}/handoff/`, { method: "POST", body: { mode: "ai" } }),
    resolve: () => api(`conversations/${id}/resolve/`, { method: "POST" }),
    reopen: () => api(`conversations/${id}/reopen/`, { method: "POST" }),
    assign: () => api(`conversations/${id}/assign/`, { method: "POST", body: { assignee: value === "none" ? null : Number(value) } }),
    snooze: () => {
      let until;
      if (value === "tomorrow") {
        until = new Date();
        until.setDate(until.getDate() + 1);
        until.setHours(9, 0, 0, 0);
      } else until = new Date(Date.now() + Number(value) * 60000);
      return api(`conversations/${id}/snooze/`, { method: "POST", body: { until: until.toISOString() } });
    },
  };
  try {
    const conversation = await calls[action]();
    applyConversation(conversation);
  } catch (err) {
    if (err.status === 404) {
      toast(_("This conversation is no longer available to you."));
      removeRow(id);
      closeThread();
    } else showError(err);
  }
}

function setupActions() {
  for (const node of document.querySelectorAll("#ws-actions [data-action]")) {
    const action = node.dataset.action;
    if (node.tagName === "SELECT") {
      node.addEventListener("change", () => {
        if (node.value) conversationAction(action, node.value);
        node.value = "";
      });
    } else node.addEventListener("click", () => conversationAction(action));
  }
}

function fillAssignees() {
  const select = document.querySelector('#ws-actions [data-action="assign"]');
  const options = [el("option", { value: "", text: _("Assign…") }), el("option", { value: String(config.user.id), text: _("To me") })];
  for (const [id, name] of state.members) if (id !== config.user.id) options.push(el("option", { value: String(id), text: name }));
  options.push(el("option", { value: "none", text: _("Nobody (unassign)") }));
  select.replaceChildren(...options);
}

// -- the customer pane ---------------------------------------------------------------------

async function loadCustomer(id) {
  const pane = $("ws-customer");
  let data;
  try {
    data = await api(`conversations/${id}/customer/`);
  } catch {
    pane.hidden = true;
    return;
  }
  if (state.current !== id) return;
  renderCustomer(data);
}

function section(title, ...children) {
  return el("section", { class: "ws-section" }, el("h3", { text: title }), ...children);
}

function renderCustomer(data) {
  const pane = $("ws-customer");
  const c = data.contact;
  const tagIds = new Set(data.tags.map((t) => t.id));
  const tagBox = el(
    "div",
    { class: "ws-tags" },
    ...data.tags.map((t) =>
      el(
        "span",
        { class: "ws-tag", style: `--tag:${t.color || "#8c8c8c"}` },
        t.name,
        config.can_write ? el("button", { type: "button", class: "ws-tag-x", "aria-label": _("Remove tag"), text: "×", onclick: () => saveTags(c.id, [...tagIds].filter((x) => x !== t.id)) }) : null,
      ),
    ),
  );
  if (config.can_write) {
    const available = data.all_tags.filter((t) => !tagIds.has(t.id));
    if (available.length) {
      const select = el("select", { class: "ws-tag-add", "aria-label": _("Add a tag") }, el("option", { value: "", text: _("Add a tag…") }), ...available.map((t) => el("option", { value: String(t.id), text: t.name })));
      select.addEventListener("change", () => select.value && saveTags(c.id, [...tagIds, Number(select.value)]));
      tagBox.append(select);
    }
  }
  const analysis = data.latest_analysis;
  const sop = (data.sections && data.sections.sop) || [];
  pane.replaceChildren(
    el(
      "div",
      { class: "ws-customer-head" },
      avatar(data.display_name, c.avatar_url),
      el("div", {}, el("strong", { text: data.display_name || _("Unnamed customer") }), c.remark && c.nickname && c.remark !== c.nickname ? el("div", { class: "ws-muted", text: fmt("Nickname: %(name)s", { name: c.nickname }) }) : null),
    ),
    el(
      "dl",
      { class: "ws-facts" },
      el("dt", { text: _("Remark") }),
      el("dd", { text: c.remark || "—" }),
      el("dt", { text: _("WeChat ID") }),
      el("dd", { text: data.alias || c.wxid }),
      el("dt", { text: _("Served by") }),
      el("dd", { text: data.account.name || "—" }),
      el("dt", { text: _("AI cost of this conversation") }),
      el("dd", { text: `¥${Number(data.ai_cost || 0).toFixed(2)}` }),
      analysis ? el("dt", { text: _("Latest intent") }) : null,
      analysis ? el("dd", { text: label(INTENT, analysis.intent) || "—" }) : null,
      analysis ? el("dt", { text: _("Latest sentiment") }) : null,
      analysis ? el("dd", { text: label(SENTIMENT, analysis.sentiment) || "—" }) : null,
    ),
    section(_("Tags"), tagBox),
    section(
      _("Notes"),
      config.can_write
        ? el("textarea", { class: "ws-contact-notes", rows: "3", placeholder: _("Notes about this customer…"), onchange: (e) => saveContactNotes(c.id, e.target.value) }, data.notes || "")
        : el("p", { text: data.notes || "—" }),
    ),
    section(
      _("Other conversations"),
      data.previous_conversations.length
        ? el("ul", { class: "ws-plain" }, ...data.previous_conversations.map((p) => el("li", {}, el("a", { href: `${config.urls.page}c/${p.id}/`, onclick: (e) => { e.preventDefault(); openConversation(p.id); } }, `${p.account_name} · ${(config.labels.status || {})[p.status] || p.status} · ${timeLabel(p.last_message_at)}`))))
        : el("p", { class: "ws-muted", text: _("None") }),
    ),
    section(
      _("SOP campaigns"),
      sop.length
        ? el("ul", { class: "ws-plain" }, ...sop.map((s) => el("li", {}, `${s.plan_name} · ${fmt("step %(done)s of %(total)s", { done: s.steps_done, total: s.steps_total })} · ${s.state_label}`)))
        : el("p", { class: "ws-muted", text: _("None") }),
    ),
    el(
      "p",
      { class: "ws-admin-links" },
      el("a", { href: data.admin_urls.contact, target: "_blank", rel: "noopener", text: _("Customer in the console") }),
      " · ",
      el("a", { href: data.admin_urls.conversation, target: "_blank", rel: "noopener", text: _("Conversation in the console") }),
    ),
  );
  pane.hidden = false;
}

async function saveTags(contactId, tagIds) {
  try {
    await api(`contacts/${contactId}/`, { method: "PATCH", body: { tags: tagIds } });
    loadCustomer(state.current);
  } catch (err) {
    showError(err);
  }
}

async function saveContactNotes(contactId, notes) {
  try {
    const contact = await api(`contacts/${contactId}/`);
    await api(`contacts/${contactId}/`, { method: "PATCH", body: { attributes: { ...(contact.attributes || {}), notes } } });
    toast(_("Saved."));
  } catch (err) {
    showError(err);
  }
}

// -- attention -----------------------------------------------------------------------------

let audio = null;
function beep() {
  try {
    audio = audio || new (window.AudioContext || window.webkitAudioContext)();
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.frequency.value = 880;
    gain.gain.setValueAtTime(0.15, audio.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + 0.4);
    osc.connect(gain).connect(audio.destination);
    osc.start();
    osc.stop(audio.currentTime + 0.4);
  } catch {
    /* no audio: the toast and the title still show */
  }
}

function attention(c) {
  const wasWaiting = state.waitingIds.has(c.id);
  const waiting = WAITING(c);
  if (waiting) state.waitingIds.add(c.id);
  else state.waitingIds.delete(c.id);
  if (!waiting || wasWaiting) return;
  const forMe = c.assignee === config.user.id || (c.assignee == null && config.can_write);
  if (!forMe) return;
  const name = displayName(state.rows.get(c.id) || c);
  const reason = (HANDOFF_REASONS[c.handoff_reason] || (() => ""))();
  const text = fmt("%(name)s needs a person", { name }) + (reason ? `: ${reason}` : "");
  toast(text, { kind: "warning", onclick: () => openConversation(c.id) });
  beep();
  if ("Notification" in window && Notification.permission === "granted" && document.visibilityState !== "visible") {
    const notification = new Notification(_("A conversation needs a person"), { body: text, tag: `handoff-${c.id}` });
    notification.onclick = () => {
      window.focus();
      openConversation(c.id);
    };
  }
}

function setupNotifications() {
  const button = $("ws-notify-permission");
  if (!("Notification" in window) || Notification.permission !== "default") return;
  button.hidden = false;
  button.addEventListener("click", async () => {
    await Notification.requestPermission();
    button.hidden = Notification.permission !== "default";
  });
}

// -- live events ---------------------------------------------------------------------------

function removeRow(id) {
  state.rows.delete(id);
  state.order = state.order.filter((x) => x !== id);
  renderList();
}

async function applyConversation(partial, { moveToTop = false } = {}) {
  const id = partial.id;
  let c = state.rows.get(id) ? { ...state.rows.get(id), ...partial } : null;
  if (!c && state.conversation && state.conversation.id === id) c = { ...state.conversation, ...partial };
  if (!c) {
    c = await fetchRow(id);
    if (!c) return;
  } else if ("assignee_id" in partial) {
    c.assignee = partial.assignee_id;
    if (c.assignee_id !== undefined && state.members.has(c.assignee)) c.assignee_name = state.members.get(c.assignee);
    if (c.assignee === config.user.id) c.assignee_name = config.user.name;
  }
  attention(c);
  upsertRow(c, { moveToTop });
  renderList();
  if (state.current === id) {
    state.conversation = { ...state.conversation, ...c };
    renderHeader();
  }
  refreshCounts();
}

const live = connect({ url: config.urls.ws, tokenUrl: config.urls.ws_token, org: config.org.id, statusElement: $("ws-conn") });

live.on("ready", (info) => {
  joinCurrent();
  if (info.reconnected) {
    loadList();
    refreshCounts();
    if (state.current) {
      api(`conversations/${state.current}/`).then((c) => { state.conversation = c; renderHeader(); }).catch(() => {});
      loadDrafts(state.current);
    }
  }
});

live.on("new_message", (data) => {
  const m = data.message;
  const conversation = { ...data.conversation, last_message_text: m.text || `[${(config.labels.kind || {})[m.kind] || m.kind}]` };
  if (m.conversation_id === state.current) {
    if (upsertMessage(m)) renderThread();
    if (m.sender_kind === "ai") state.aiStatus = null;
    if (m.direction === "inbound" && document.visibilityState === "visible") {
      conversation.unread_count = 0;
      markRead();
    }
  }
  applyConversation(conversation, { moveToTop: true });
});

live.on("conversation_updated", (data) => applyConversation(data.conversation));

live.on("conversation_read", (data) => {
  const c = state.rows.get(data.conversation_id);
  if (c) {
    c.unread_count = 0;
    renderList();
  }
  refreshCounts();
});

live.on("conversation_removed", (data) => {
  removeRow(data.conversation_id);
  if (state.current === data.conversation_id) {
    toast(_("This conversation was assigned to someone else."));
    closeThread();
  }
  refreshCounts();
});

async function sendMedia(media, kind) {
  if (!state.current || state.composeKind === "note") return;
  const id = state.current;
  $("ws-composer-error").textContent = "";
  try {
    const clientId = `ws:${config.user.id}:${Date.now()}:${Math.random().toString(36).slice(2, 8)}`;
    const body = { kind, media: media.id, client_msg_id: clientId };
    const message = await api(`conversations/${id}/messages/`, { method: "POST", body });
    if (upsertMessage({ ...message, conversation_id: id })) renderThread({ toBottom: true });
  } catch (err) {
    $("ws-composer-error").textContent = err.message;
  }
}

live.on("message_media_update", (data) => {
  if (data.conversation_id !== state.current) return;
  const known = state.messages.get(data.message_id);
  if (!known) return;
  state.messages.set(data.message_id, { ...known, media: data.media });
  renderThread();
});

live.on("message_status_update", (data) => {
  if (data.conversation_id !== state.current) return;
  const known = state.messages.get(data.message_id);
  if (!known) return;
  state.messages.set(data.message_id, { ...known, status: data.status, error: data.error, sent_at: data.sent_at });
  renderThread();
});

live.on("sync", (data) => {
  let changed = false;
  for (const m of data.messages || []) changed = upsertMessage(m) || changed;
  if (changed) renderThread();
});

live.on("note_created", (data) => {
  const n = data.note;
  if (n.conversation_id !== state.current) return;
  state.notes.set(n.id, { ...n, author: n.author_id });
  renderThread();
});

live.on("typing", (data) => {
  if (data.conversation_id !== state.current || data.user_id === config.user.id) return;
  const known = state.viewers.has(data.user_id);
  if (data.viewing === false) state.viewers.delete(data.user_id);
  else state.viewers.set(data.user_id, { name: data.name || memberName(data.user_id), typing: Boolean(data.is_typing), until: Date.now() + (data.is_typing ? 6000 : 45000) });
  if (!known && data.viewing !== false) live.send("typing", { conversation_id: state.current, is_typing: false, viewing: true });
  renderPresence();
});

live.on("ai_processing_status", (data) => {
  if (data.conversation_id !== state.current) return;
  if (data.status === "thinking" || data.status === "streaming" || data.status === "failover") {
    state.aiStatus = { text: data.status === "streaming" ? data.text || "" : "", until: Date.now() + 60000 };
  } else state.aiStatus = null;
  renderPresence();
});

for (const type of ["draft_created", "draft_updated"]) {
  live.on(type, (data) => {
    const conversationId = data.conversation_id || (data.draft && data.draft.conversation_id);
    if (conversationId === state.current) loadDrafts(state.current);
    const c = state.rows.get(conversationId);
    if (c && data.draft) {
      c.has_drafts = data.draft.status === "pending" || undefined;
      renderList();
    }
  });
}

live.on("auth_failed", () => toast(_("You are signed out. Reload the page to sign in again."), { kind: "error" }));

// Keep "viewing" fresh for the others while a conversation is open.
setInterval(() => {
  if (state.current && document.visibilityState === "visible") live.send("typing", { conversation_id: state.current, is_typing: false, viewing: true });
}, 20000);

// -- start ---------------------------------------------------------------------------------

function loadMembers() {
  for (const m of config.members || []) state.members.set(m.id, m.name);
  fillAssignees();
}

function loadFilters() {
  const accountSelect = $("ws-filter-account");
  for (const a of config.accounts || []) accountSelect.append(el("option", { value: String(a.id), text: a.name }));
  const labelSelect = $("ws-filter-label");
  for (const name of config.labels_all || []) labelSelect.append(el("option", { value: name, text: name }));
}

function setupList() {
  for (const button of document.querySelectorAll("#ws-views [data-view]")) {
    button.addEventListener("click", () => {
      state.view = button.dataset.view;
      loadList();
    });
  }
  let searchTimer = null;
  $("ws-search").addEventListener("input", (e) => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => {
      state.filters.q = e.target.value.trim();
      loadList();
    }, 300);
  });
  for (const [id, key] of [["ws-filter-account", "account"], ["ws-filter-label", "label"], ["ws-filter-status", "status"]]) {
    $(id).addEventListener("change", (e) => {
      state.filters[key] = e.target.value;
      loadList();
    });
  }
  $("ws-rows").addEventListener("scroll", (e) => {
    const box = e.target;
    if (box.scrollHeight - box.scrollTop - box.clientHeight < 200) loadMoreRows();
  });
  $("ws-messages").addEventListener("scroll", (e) => {
    if (e.target.scrollTop < 60) loadOlder();
  });
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && state.current) markRead();
  });
}

$("ws-me").textContent = config.user.name;
setupList();
setupComposer();
setupActions();
setupNotifications();
loadMembers();
loadFilters();
loadList();
refreshCounts();
if (config.conversation_id) openConversation(config.conversation_id, { pushHistory: false });

// For tests and debugging: the live socket and the state.
window.workspace = { live, state };
