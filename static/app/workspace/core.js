/*
 * The workspace's shared ground, imported by every other module of static/app/workspace/:
 * the page config (json_script "workspace-config"), the JavaScript catalogue helpers (`_`, `fmt`),
 * the labels of the server's enums, the one `state` object all modules read and write, the REST
 * helper `api` (session auth, CSRF, X-Organization), DOM and formatting helpers, toasts, the
 * page's one live socket (`live`, from static/app/live.js) and the `hooks` main.js sets.
 */
import { connect } from "../live.js";

export const config = JSON.parse(document.getElementById("workspace-config").textContent);
export const _ = (s) => (window.gettext ? window.gettext(s) : s);
export const fmt = (s, values) => (window.interpolate ? window.interpolate(_(s), values, true) : s);
export const $ = (id) => document.getElementById(id);

export const WAITING = (c) => c.mode === "human" && c.status === "pending";
export const HANDOFF_REASONS = {
  keyword: () => _("The customer asked for a person"),
  sentiment: () => _("Negative sentiment"),
  ai_failed: () => _("The AI failed"),
  budget: () => _("The budget is used up"),
  phone_reply: () => _("Answered from the phone"),
  no_ai_app: () => _("No AI app is set up"),
  agent: () => _("Taken over by an agent"),
};
export const SENDER = {
  ai: () => _("AI"),
  phone: () => _("Phone"),
  sop: () => _("SOP"),
  system: () => _("System"),
};
export const INTENT = {
  purchase: () => _("Wants to buy"),
  price_inquiry: () => _("Asks about price"),
  product_question: () => _("Product question"),
  after_sales: () => _("After-sales"),
  complaint: () => _("Complaint"),
  greeting: () => _("Greeting"),
  chitchat: () => _("Chit-chat"),
  other: () => _("Other"),
};
export const SENTIMENT = {
  positive: () => _("Positive"),
  neutral: () => _("Neutral"),
  negative: () => _("Negative"),
};
export const label = (map, value) => (value ? (map[value] || map.other || (() => value))() : "");
export const MESSAGE_STATUS = {
  queued: () => _("Queued"),
  sending: () => _("Sending…"),
  sent: () => _("Sent"),
  failed: () => _("Failed"),
};

export const state = {
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

// Calls against the direction of the imports: a list row, a customer-pane link and a toast open a
// thread; a label edited in the thread header is applied like any conversation update. main.js
// sets these at start, so the modules import each other one way only (no import cycle).
export const hooks = {
  openConversation: () => {},
  applyConversation: () => {},
};

// -- HTTP ----------------------------------------------------------------------------------

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

export async function api(path, { method = "GET", body } = {}) {
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

export function el(tag, attrs = {}, ...children) {
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

export function timeLabel(iso) {
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

export function waitedLabel(iso) {
  if (!iso) return "";
  const minutes = Math.max(0, Math.floor((Date.now() - Date.parse(iso)) / 60000));
  if (minutes < 1) return _("waiting less than a minute");
  if (minutes < 60) return fmt("waiting %(n)s min", { n: minutes });
  return fmt("waiting %(h)s h %(m)s min", { h: Math.floor(minutes / 60), m: minutes % 60 });
}

export function displayName(c) {
  return c.display_name || (c.contact && (c.contact.remark || c.contact.nickname)) || _("Unnamed customer");
}

export function avatar(name, url) {
  if (url) return el("img", { class: "ws-avatar", src: url, alt: "", loading: "lazy", referrerpolicy: "no-referrer" });
  return el("span", { class: "ws-avatar ws-avatar-letter", "aria-hidden": "true", text: (name || "?").trim().slice(0, 1) });
}

export function modeBadges(c) {
  const badges = [];
  if (c.mode === "ai") badges.push(["ai", _("AI")]);
  else if (c.handoff_reason === "phone_reply" && c.ai_paused_until) badges.push(["paused", _("AI paused")]);
  else badges.push(["human", _("Human")]);
  if (c.has_drafts) badges.push(["draft", _("Draft")]);
  return badges;
}

export function memberName(id) {
  if (id == null) return "";
  if (id === config.user.id) return config.user.name;
  return state.members.get(id) || _("a colleague");
}

export function toast(text, { kind = "info", onclick } = {}) {
  const node = el("div", { class: `ws-toast ws-toast-${kind}`, role: "status", onclick }, text);
  $("ws-toasts").append(node);
  setTimeout(() => node.remove(), 6000);
}

export function showError(err) {
  toast(err.message || _("Something went wrong. Try again."), { kind: "error" });
}

// -- the live socket -----------------------------------------------------------------------

// The page's one socket (static/app/live.js): the modules send through it, updates.js listens.

export const live = connect({ url: config.urls.ws, tokenUrl: config.urls.ws_token, org: config.org.id, statusElement: $("ws-conn") });
