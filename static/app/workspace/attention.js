/*
 * Attention for a conversation newly waiting for a person: a toast, a short tone and, once the
 * agent allowed it, a desktop notification.
 */
import { $, HANDOFF_REASONS, WAITING, _, config, displayName, fmt, hooks, state, toast } from "./core.js";

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

export function attention(c) {
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
  toast(text, { kind: "warning", onclick: () => hooks.openConversation(c.id) });
  beep();
  if ("Notification" in window && Notification.permission === "granted" && document.visibilityState !== "visible") {
    const notification = new Notification(_("A conversation needs a person"), { body: text, tag: `handoff-${c.id}` });
    notification.onclick = () => {
      window.focus();
      hooks.openConversation(c.id);
    };
  }
}

export function setupNotifications() {
  const button = $("ws-notify-permission");
  if (!("Notification" in window) || Notification.permission !== "default") return;
  button.hidden = false;
  button.addEventListener("click", async () => {
    await Notification.requestPermission();
    button.hidden = Notification.permission !== "default";
  });
}
