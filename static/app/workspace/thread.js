/*
 * The open conversation (middle column): header, labels, handoff banner, presence line, message
 * and note bubbles, older pages, opening and closing a thread (with the composer, or the
 * read-only note for a viewer), read marks, joining its group.
 */
import { renderMedia } from "../media.js";
import {
  $,
  HANDOFF_REASONS,
  INTENT,
  MESSAGE_STATUS,
  SENDER,
  SENTIMENT,
  WAITING,
  _,
  api,
  config,
  displayName,
  el,
  fmt,
  hooks,
  label,
  live,
  memberName,
  modeBadges,
  showError,
  state,
  timeLabel,
  toast,
  waitedLabel,
} from "./core.js";
import { renderRow } from "./list.js";
import { loadDrafts } from "./drafts.js";
import { loadCustomer } from "./customer.js";

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

export function renderThread({ keepScroll = false, toBottom = false } = {}) {
  // While a thread loads, live messages are kept and shown with the fetched ones, never alone.
  if (state.threadLoading && state.threadLoading === state.current) return;
  const box = $("ws-messages");
  const nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  const fromBottom = box.scrollHeight - box.scrollTop;
  $("ws-bubbles").replaceChildren(...threadItems().map((item) => item.node()));
  if (keepScroll) box.scrollTop = box.scrollHeight - fromBottom;
  else if (toBottom || nearBottom) box.scrollTop = box.scrollHeight;
}

export function upsertMessage(m) {
  if (!state.current || m.conversation_id !== state.current && m.conversation !== state.current) return false;
  const known = state.messages.get(m.id);
  if (known && known.updated_at && m.updated_at && Date.parse(known.updated_at) > Date.parse(m.updated_at)) return false;
  state.messages.set(m.id, { ...(known || {}), ...m, conversation_id: state.current });
  return true;
}

export function renderHeader() {
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
      .then((updated) => hooks.applyConversation(updated))
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

export function renderPresence() {
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

function renderComposer() {
  const canWrite = config.can_write;
  $("ws-composer").hidden = !canWrite;
  $("ws-readonly").hidden = canWrite;
}

export async function openConversation(id, { pushHistory = true } = {}) {
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

export function closeThread() {
  state.current = null;
  state.conversation = null;
  $("ws-thread-placeholder").hidden = false;
  $("ws-thread-inner").hidden = true;
  $("ws-customer").hidden = true;
  history.replaceState(null, "", config.urls.page);
}

export function joinCurrent() {
  if (!state.current) return;
  live.send("join", { conversation_id: state.current });
  live.send("typing", { conversation_id: state.current, is_typing: false, viewing: true });
}

export function markRead() {
  const c = state.current && state.rows.get(state.current);
  if (!state.current) return;
  if (c) {
    c.unread_count = 0;
    const row = document.querySelector(`.ws-row[data-id="${state.current}"]`);
    if (row) row.replaceWith(renderRow(c));
  }
  // Before the socket is up, agents mark read over HTTP; the API refuses a read-only role (403),
  // so a viewer's page does not ask.
  if (!live.send("mark_read", { conversation_id: state.current }) && config.can_write) {
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

async function resend(m) {
  try {
    const message = await api(`conversations/${state.current}/messages/${m.id}/resend/`, { method: "POST" });
    if (upsertMessage({ ...message, conversation_id: state.current })) renderThread({ toBottom: true });
  } catch (err) {
    showError(err);
  }
}

// Called once at start: the presence line ages out, older messages load on scrolling up, and
// the thread is marked read when the tab becomes visible again.
export function setupThread() {
  setInterval(renderPresence, 2000);
  $("ws-messages").addEventListener("scroll", (e) => {
    if (e.target.scrollTop < 60) loadOlder();
  });
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && state.current) markRead();
  });
}
