// The console's home page: re-renders its cards when something relevant happens, through the
// shared WebSocket client (live.js). Events arrive in bursts: one refresh per second at most.
import { connect } from "./live.js";

const root = document.getElementById("console-dashboard");
const REFRESH_EVENTS = new Set([
  "new_message",
  "message_status_update",
  "conversation_updated",
  "conversation.updated",
  "notification",
  "stats_update",
  "account_status",
  "account_status_update",
  "alert",
  "alert_raised",
  "alert_resolved",
  "budget_update",
]);

if (root) {
  const cards = document.getElementById("console-dashboard-cards");
  const url = root.dataset.cardsUrl;
  let timer = null;
  let running = false;

  async function refresh() {
    timer = null;
    if (running) {
      schedule();
      return;
    }
    running = true;
    try {
      const response = await fetch(url, { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } });
      if (response.ok) cards.innerHTML = await response.text();
    } catch (error) {
      // Offline: the next event (or the reconnect catch-up) refreshes again.
    } finally {
      running = false;
    }
  }
  function schedule() {
    if (!timer) timer = setTimeout(refresh, 1000);
  }
  function listen(live) {
    live.on("*", (envelope) => {
      if (envelope && REFRESH_EVENTS.has(envelope.type)) schedule();
    });
    live.on("ready", schedule); // after a reconnect: catch up
  }

  const org = root.dataset.org;
  listen(connect({ url: "/ws/chat/", org, statusElement: document.getElementById("console-live-status") }));
  if (root.dataset.monitor === "1") listen(connect({ url: "/ws/admin/monitor/", org }));
  // A page left open for hours still moves its "longest wait" on.
  setInterval(schedule, 60000);
}
