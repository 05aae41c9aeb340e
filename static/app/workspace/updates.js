/*
 * Live updates: applying a changed conversation to the list and the open thread, and the handlers
 * of every server event the page follows on its socket.
 */
import { _, api, config, live, memberName, state, toast } from "./core.js";
import { fetchRow, loadList, refreshCounts, removeRow, renderList, upsertRow } from "./list.js";
import {
  closeThread,
  joinCurrent,
  markRead,
  renderHeader,
  renderPresence,
  renderThread,
  upsertMessage,
} from "./thread.js";
import { loadDrafts } from "./drafts.js";
import { attention } from "./attention.js";

// -- live events ---------------------------------------------------------------------------

export async function applyConversation(partial, { moveToTop = false } = {}) {
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

// Called once at start: every server event the page follows, and the "viewing" refresh.
export function setupLiveUpdates() {
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
}
