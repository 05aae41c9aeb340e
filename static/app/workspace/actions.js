/*
 * The conversation's actions (take over, hand back to AI, assign, snooze, resolve, reopen) and
 * the assignee choices.
 */
import { _, api, config, el, showError, state, toast } from "./core.js";
import { removeRow } from "./list.js";
import { closeThread } from "./thread.js";
import { applyConversation } from "./updates.js";

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

export function setupActions() {
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

export function loadMembers() {
  for (const m of config.members || []) state.members.set(m.id, m.name);
  fillAssignees();
}
