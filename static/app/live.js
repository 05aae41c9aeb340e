/*
 * live.js: the one WebSocket client of every live page (workspace, console dashboard, lists).
 * An ES module, no build step, no dependencies.
 *
 *   (a module) imports connect from app/live.js, e.g. workspace/core.js;
 *
 *   const live = connect({
 *     url: "/ws/chat/",                    // path (same origin) or full ws(s):// URL
 *     tokenUrl: "/workspace/ws-token/",    // default; session-authenticated, returns
 *                                          //   {"token": "<JWT, 60 s>", "org": <id>}
 *     // token: async () => jwt,           // instead of tokenUrl: an SPA with its own JWT
 *     org: 3,                              // optional organisation id or slug
 *     statusElement: el,                   // optional: shows "重新连接中…" etc. while not online
 *     since: "2025-01-01T00:00:00Z",       // optional: catch up from here on the first connect
 *   });
 *   live.on("new_message", (data, envelope) => ...);   // any server event type
 *   live.on("*", (envelope) => ...);                    // every event
 *   live.on("ready", (info) => ...);      // after every connection_established: (re)join here
 *   live.on("status", (state) => ...);    // "connecting" | "online" | "reconnecting" | "offline"
 *   live.on("sync", (data) => ...);       // catch-up pages (data.messages), after a reconnect
 *   live.send("join", { conversation_id: 12 });  // false when not connected (nothing queued)
 *   live.close();                         // stop for good
 *
 * Authentication: the page never puts a credential in the URL. Before every (re)connect it
 * fetches a short-lived JWT from `tokenUrl` with its session cookie (or calls `token()`), then
 * sends {"type": "auth", "data": {"token", "org"}} as the first message. The server resolves the
 * organisation from the membership exactly as for JWT clients (org-scoped groups, 4403 when
 * not a member).
 *
 * Reconnect: on any close except 4000 (disconnected by an admin), 4403 and 4404 the client
 * reconnects with exponential backoff and jitter (0.5 s doubling to 15 s); status
 * "reconnecting". A socket that received nothing for the server's heartbeat timeout (a laptop
 * waking from sleep, a half-open connection) is closed and reopened; so is one that does not
 * answer a ping after the page becomes visible again or the network comes back.
 *
 * Catch-up: after a reconnect the client sends {"type": "sync", "data": {"since": T}}, where T
 * is the server time of the last event it received minus a safety margin, and follows
 * `has_more` pages. Messages are delivered as "sync" events; handlers upsert them by id, so a
 * message pushed and also caught up is shown once.
 *
 * De-duplication: an event delivered twice (same envelope id) is dispatched once.
 *
 * Server "ping" is answered with "pong". Strings go through Django's JavaScript catalogue
 * (window.gettext) when the page loads it.
 */

const gettext = (s) => (typeof window.gettext === "function" ? window.gettext(s) : s);

const NO_RECONNECT = new Set([4000, 4403, 4404]);
const SYNC_MARGIN_MS = 30000;
const SEEN_LIMIT = 1000;

function wsUrl(url) {
  if (/^wss?:\/\//.test(url)) return url;
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${window.location.host}${url.startsWith("/") ? "" : "/"}${url}`;
}

export const STATUS_TEXT = {
  connecting: () => gettext("Connecting…"),
  online: () => "",
  reconnecting: () => gettext("Reconnecting…"),
  offline: () => gettext("Offline. Reload the page."),
};

export class LiveSocket {
  constructor(options = {}) {
    this.url = options.url || "/ws/chat/";
    this.tokenUrl = options.tokenUrl || "/workspace/ws-token/";
    this.tokenFn = options.token || null;
    this.org = options.org ?? null;
    this.statusElement = options.statusElement || null;
    this.handlers = new Map();
    this.seen = new Set();
    this.seenOrder = [];
    this.state = "";
    this.stopped = false;
    this.attempt = 0;
    this.ws = null;
    this.initialSince = options.since ? Date.parse(options.since) : null;
    this.lastServerTs = null;
    this.heartbeatTimeoutMs = 60000;
    this.watchdog = null;
    this.retryTimer = null;
    this.everConnected = false;
    this._onWake = () => this.probe();
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") this._onWake();
    });
    window.addEventListener("online", this._onWake);
    this._open();
  }

  on(type, fn) {
    if (!this.handlers.has(type)) this.handlers.set(type, []);
    this.handlers.get(type).push(fn);
    return () => this.off(type, fn);
  }

  off(type, fn) {
    const list = this.handlers.get(type) || [];
    const i = list.indexOf(fn);
    if (i >= 0) list.splice(i, 1);
  }

  send(type, data = {}) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN || this.state !== "online") return false;
    this.ws.send(JSON.stringify({ type, data }));
    return true;
  }

  close() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearTimeout(this.watchdog);
    if (this.ws) this.ws.close(1000);
    this._setStatus("offline");
  }

  /** Force a reconnect now (tests, or a page that knows the network changed). */
  reconnect() {
    if (this.ws) this.ws.close(4999);
  }

  /** Check a possibly dead socket: a ping must be answered within 5 s. */
  probe() {
    if (this.stopped || !this.ws || this.state !== "online") return;
    this.send("ping", {});
    this._arm(5000);
  }

  _emit(type, ...args) {
    for (const fn of this.handlers.get(type) || []) {
      try {
        fn(...args);
      } catch (err) {
        console.error(err); // a broken handler must not stop the others
      }
    }
  }

  _setStatus(state) {
    if (state === this.state) return;
    this.state = state;
    if (this.statusElement) {
      const text = STATUS_TEXT[state] ? STATUS_TEXT[state]() : "";
      this.statusElement.textContent = text;
      this.statusElement.hidden = !text;
      this.statusElement.dataset.state = state;
    }
    this._emit("status", state);
  }

  async _token() {
    if (this.tokenFn) return { token: await this.tokenFn(), org: this.org };
    const url = this.org != null ? `${this.tokenUrl}?org=${encodeURIComponent(this.org)}` : this.tokenUrl;
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (response.status === 401 || response.status === 403 || response.status === 404) {
      const error = new Error("not signed in");
      error.fatal = true;
      throw error;
    }
    if (!response.ok) throw new Error(`token ${response.status}`);
    const body = await response.json();
    return { token: body.token, org: body.org ?? this.org };
  }

  async _open() {
    if (this.stopped) return;
    this._setStatus(this.everConnected || this.attempt ? "reconnecting" : "connecting");
    let credentials;
    try {
      credentials = await this._token();
    } catch (err) {
      if (err.fatal) {
        this._emit("auth_failed", err);
        this.close();
        return;
      }
      this._retry();
      return;
    }
    if (this.stopped) return;
    const ws = new WebSocket(wsUrl(this.url));
    this.ws = ws;
    ws.onopen = () => {
      ws.send(JSON.stringify({ type: "auth", data: { token: credentials.token, org: credentials.org } }));
      this._arm(15000);
    };
    ws.onmessage = (event) => this._receive(ws, event);
    ws.onclose = (event) => this._closed(ws, event);
    ws.onerror = () => {}; // onclose follows and decides
  }

  _arm(ms) {
    clearTimeout(this.watchdog);
    const ws = this.ws;
    this.watchdog = setTimeout(() => {
      if (ws === this.ws && ws.readyState <= WebSocket.OPEN) ws.close(4998);
    }, ms);
  }

  _receive(ws, event) {
    if (ws !== this.ws) return;
    let envelope;
    try {
      envelope = JSON.parse(event.data);
    } catch {
      return;
    }
    this._arm(this.heartbeatTimeoutMs);
    if (envelope.id) {
      if (this.seen.has(envelope.id)) return;
      this.seen.add(envelope.id);
      this.seenOrder.push(envelope.id);
      if (this.seenOrder.length > SEEN_LIMIT) this.seen.delete(this.seenOrder.shift());
    }
    const type = envelope.type;
    const data = envelope.data || {};
    if (type === "connection_established") {
      this._established(data, envelope.ts);
      return;
    }
    if (type === "ping") {
      this.send("pong", {});
    }
    if (type === "sync") {
      this._syncPage(data);
    } else if (envelope.ts && type !== "ping" && type !== "pong") {
      const ts = Date.parse(envelope.ts);
      if (!Number.isNaN(ts) && (this.lastServerTs == null || ts > this.lastServerTs)) this.lastServerTs = ts;
    }
    this._emit(type, data, envelope);
    this._emit("*", envelope);
  }

  _established(info, ts) {
    const reconnected = this.everConnected;
    const from = reconnected ? this.lastServerTs : this.initialSince;
    const serverNow = Date.parse(ts);
    if (this.lastServerTs == null && !Number.isNaN(serverNow)) this.lastServerTs = serverNow;
    this.everConnected = true;
    this.attempt = 0;
    this.heartbeatTimeoutMs = (info.heartbeat_timeout || 60) * 1000;
    this._arm(this.heartbeatTimeoutMs);
    this._setStatus("online");
    this.info = info;
    this._emit("ready", { ...info, reconnected });
    if (from != null) {
      const margin = reconnected ? SYNC_MARGIN_MS : 0;
      this.send("sync", { since: new Date(from - margin).toISOString() });
    }
  }

  _syncPage(data) {
    const messages = data.messages || [];
    for (const message of messages) {
      const ts = Date.parse(message.updated_at);
      if (!Number.isNaN(ts) && (this.lastServerTs == null || ts > this.lastServerTs)) this.lastServerTs = ts;
    }
    if (data.has_more && data.cursor && data.cursor.since) {
      this.send("sync", { since: data.cursor.since });
    }
  }

  _closed(ws, event) {
    if (ws !== this.ws) return;
    clearTimeout(this.watchdog);
    this.ws = null;
    if (this.stopped) return;
    if (NO_RECONNECT.has(event.code)) {
      this._emit("refused", event.code);
      this.close();
      return;
    }
    this._retry(event.code === 4429 ? 4 : 1);
  }

  _retry(factor = 1) {
    if (this.stopped) return;
    this._setStatus(this.everConnected || this.attempt ? "reconnecting" : "connecting");
    const base = Math.min(15000, 500 * 2 ** this.attempt) * factor;
    const delay = Math.min(60000, base / 2 + Math.random() * (base / 2));
    this.attempt += 1;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this._open(), delay);
  }
}

export function connect(options) {
  return new LiveSocket(options);
}
