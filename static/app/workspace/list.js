/*
 * The conversation list (left column): views, filters, search, paging, the view counts and the
 * tab title; rows are kept in state.rows / state.order and re-rendered from there.
 */
import {
  $,
  WAITING,
  _,
  api,
  avatar,
  config,
  displayName,
  el,
  hooks,
  modeBadges,
  showError,
  state,
  timeLabel,
  waitedLabel,
} from "./core.js";

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
export async function loadList() {
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
export function refreshCounts() {
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

export function renderRow(c) {
  const name = displayName(c);
  const badges = modeBadges(c).map(([kind, text]) => el("span", { class: `ws-badge ws-badge-${kind}`, text }));
  const meta = state.view === "waiting" && WAITING(c) ? waitedLabel(c.handed_off_at) : c.account_name || "";
  return el(
    "li",
    {
      class: `ws-row${c.id === state.current ? " ws-row-active" : ""}${c.unread_count ? " ws-row-unread" : ""}`,
      dataset: { id: c.id },
      tabindex: "0",
      onclick: () => hooks.openConversation(c.id),
      onkeydown: (e) => e.key === "Enter" && hooks.openConversation(c.id),
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

export function renderList() {
  sortOrder();
  const list = $("ws-rows");
  list.replaceChildren(...state.order.map((id) => renderRow(state.rows.get(id))));
  $("ws-rows-empty").hidden = state.order.length > 0;
  for (const button of document.querySelectorAll("#ws-views [data-view]")) {
    button.classList.toggle("ws-active", button.dataset.view === state.view);
  }
}

export function upsertRow(c, { moveToTop = false } = {}) {
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

export async function fetchRow(id) {
  try {
    return await api(`conversations/${id}/`);
  } catch {
    return null;
  }
}

export function removeRow(id) {
  state.rows.delete(id);
  state.order = state.order.filter((x) => x !== id);
  renderList();
}

export function loadFilters() {
  const accountSelect = $("ws-filter-account");
  for (const a of config.accounts || []) accountSelect.append(el("option", { value: String(a.id), text: a.name }));
  const labelSelect = $("ws-filter-label");
  for (const name of config.labels_all || []) labelSelect.append(el("option", { value: name, text: name }));
}

export function setupList() {
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
}
