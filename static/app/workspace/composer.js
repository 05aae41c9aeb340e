/*
 * The reply box: reply or private note, Enter to send, typing signals, the / canned-reply popup
 * and attachments (static/app/media.js).
 */
import { attachmentInput } from "../media.js";
import { $, _, api, config, el, live, showError, state } from "./core.js";
import { renderThread, upsertMessage } from "./thread.js";
import { draftAction } from "./drafts.js";

// -- the composer --------------------------------------------------------------------------

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

export function setupComposer() {
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
