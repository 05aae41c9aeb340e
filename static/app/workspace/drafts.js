/*
 * AI drafts (copilot mode): the pending drafts of the open conversation above the composer, with
 * send as is / edit / discard.
 */
import { $, _, api, config, el, showError, state } from "./core.js";

// -- drafts (AI copilot mode) --------------------------------------------------------------

export async function loadDrafts(id) {
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

export async function draftAction(draft, action, text) {
  try {
    await api(`drafts/${draft.id}/${action}/`, { method: "POST", body: text !== undefined ? { text } : {} });
    loadDrafts(state.current);
  } catch (err) {
    showError(err);
  }
}
