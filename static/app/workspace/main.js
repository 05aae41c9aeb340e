/*
 * The agent workspace (/workspace/): conversation list, thread with composer, customer pane.
 * Data from the REST API (session auth, X-Organization) and live events through live.js.
 * Every user-visible string goes through Django's JavaScript catalogue (gettext).
 *
 * Native ES modules, no build step; the template loads this entry module only:
 *
 *   core.js       config, catalogue helpers, enum labels, the shared state, api(), el(), toasts,
 *                 the page's live socket
 *   list.js       the conversation list: views, filters, search, paging, counts, tab title
 *   thread.js     the open conversation: header, labels, presence, bubbles, older pages, read marks
 *   composer.js   the reply box: reply / private note, typing, canned replies, attachments
 *   drafts.js     AI drafts (copilot mode)
 *   actions.js    take over, hand back, assign, snooze, resolve, reopen
 *   customer.js   the customer pane
 *   attention.js  toast, tone and desktop notification when a conversation needs a person
 *   updates.js    applying conversation changes, and the handlers of the socket's events
 *
 * The modules import each other one way only: core <- list, customer, drafts, attention <- thread
 * <- composer, updates <- actions (tests/conversations/test_workspace_modules.py checks it; a
 * cycle would keep ManifestStaticFilesStorage from ever hashing the import paths). The few calls
 * the other way go through core.js's `hooks`, set below. No module runs anything when imported
 * except core.js opening the socket, so the start below decides the order.
 */
import { $, config, hooks, live, state } from "./core.js";
import { loadFilters, loadList, refreshCounts, setupList } from "./list.js";
import { openConversation, setupThread } from "./thread.js";
import { setupComposer } from "./composer.js";
import { loadMembers, setupActions } from "./actions.js";
import { setupNotifications } from "./attention.js";
import { applyConversation, setupLiveUpdates } from "./updates.js";

hooks.openConversation = openConversation;
hooks.applyConversation = applyConversation;
setupLiveUpdates();
$("ws-me").textContent = config.user.name;
setupList();
setupThread();
setupComposer();
setupActions();
setupNotifications();
loadMembers();
loadFilters();
loadList();
refreshCounts();
if (config.conversation_id) openConversation(config.conversation_id, { pushHistory: false });

// For tests and debugging: the live socket and the state.
window.workspace = { live, state };
