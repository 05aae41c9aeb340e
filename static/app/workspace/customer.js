/*
 * The customer pane (right column): facts, tags, notes, other conversations, SOP campaigns and
 * links to the console.
 */
import {
  $,
  INTENT,
  SENTIMENT,
  _,
  api,
  avatar,
  config,
  el,
  fmt,
  hooks,
  label,
  showError,
  state,
  timeLabel,
  toast,
} from "./core.js";

// -- the customer pane ---------------------------------------------------------------------

export async function loadCustomer(id) {
  const pane = $("ws-customer");
  let data;
  try {
    data = await api(`conversations/${id}/customer/`);
  } catch {
    pane.hidden = true;
    return;
  }
  if (state.current !== id) return;
  renderCustomer(data);
}

function section(title, ...children) {
  return el("section", { class: "ws-section" }, el("h3", { text: title }), ...children);
}

function renderCustomer(data) {
  const pane = $("ws-customer");
  const c = data.contact;
  const tagIds = new Set(data.tags.map((t) => t.id));
  const tagBox = el(
    "div",
    { class: "ws-tags" },
    ...data.tags.map((t) =>
      el(
        "span",
        { class: "ws-tag", style: `--tag:${t.color || "#8c8c8c"}` },
        t.name,
        config.can_write ? el("button", { type: "button", class: "ws-tag-x", "aria-label": _("Remove tag"), text: "×", onclick: () => saveTags(c.id, [...tagIds].filter((x) => x !== t.id)) }) : null,
      ),
    ),
  );
  if (config.can_write) {
    const available = data.all_tags.filter((t) => !tagIds.has(t.id));
    if (available.length) {
      const select = el("select", { class: "ws-tag-add", "aria-label": _("Add a tag") }, el("option", { value: "", text: _("Add a tag…") }), ...available.map((t) => el("option", { value: String(t.id), text: t.name })));
      select.addEventListener("change", () => select.value && saveTags(c.id, [...tagIds, Number(select.value)]));
      tagBox.append(select);
    }
  }
  const analysis = data.latest_analysis;
  const sop = (data.sections && data.sections.sop) || [];
  pane.replaceChildren(
    el(
      "div",
      { class: "ws-customer-head" },
      avatar(data.display_name, c.avatar_url),
      el("div", {}, el("strong", { text: data.display_name || _("Unnamed customer") }), c.remark && c.nickname && c.remark !== c.nickname ? el("div", { class: "ws-muted", text: fmt("Nickname: %(name)s", { name: c.nickname }) }) : null),
    ),
    el(
      "dl",
      { class: "ws-facts" },
      el("dt", { text: _("Remark") }),
      el("dd", { text: c.remark || "—" }),
      el("dt", { text: _("WeChat ID") }),
      el("dd", { text: data.alias || c.wxid }),
      el("dt", { text: _("Served by") }),
      el("dd", { text: data.account.name || "—" }),
      el("dt", { text: _("AI cost of this conversation") }),
      el("dd", { text: `¥${Number(data.ai_cost || 0).toFixed(2)}` }),
      analysis ? el("dt", { text: _("Latest intent") }) : null,
      analysis ? el("dd", { text: label(INTENT, analysis.intent) || "—" }) : null,
      analysis ? el("dt", { text: _("Latest sentiment") }) : null,
      analysis ? el("dd", { text: label(SENTIMENT, analysis.sentiment) || "—" }) : null,
    ),
    section(_("Tags"), tagBox),
    section(
      _("Notes"),
      config.can_write
        ? el("textarea", { class: "ws-contact-notes", rows: "3", placeholder: _("Notes about this customer…"), onchange: (e) => saveContactNotes(c.id, e.target.value) }, data.notes || "")
        : el("p", { text: data.notes || "—" }),
    ),
    section(
      _("Other conversations"),
      data.previous_conversations.length
        ? el("ul", { class: "ws-plain" }, ...data.previous_conversations.map((p) => el("li", {}, el("a", { href: `${config.urls.page}c/${p.id}/`, onclick: (e) => { e.preventDefault(); hooks.openConversation(p.id); } }, `${p.account_name} · ${(config.labels.status || {})[p.status] || p.status} · ${timeLabel(p.last_message_at)}`))))
        : el("p", { class: "ws-muted", text: _("None") }),
    ),
    section(
      _("SOP campaigns"),
      sop.length
        ? el("ul", { class: "ws-plain" }, ...sop.map((s) => el("li", {}, `${s.plan_name} · ${fmt("step %(done)s of %(total)s", { done: s.steps_done, total: s.steps_total })} · ${s.state_label}`)))
        : el("p", { class: "ws-muted", text: _("None") }),
    ),
    el(
      "p",
      { class: "ws-admin-links" },
      el("a", { href: data.admin_urls.contact, target: "_blank", rel: "noopener", text: _("Customer in the console") }),
      " · ",
      el("a", { href: data.admin_urls.conversation, target: "_blank", rel: "noopener", text: _("Conversation in the console") }),
    ),
  );
  pane.hidden = false;
}

async function saveTags(contactId, tagIds) {
  try {
    await api(`contacts/${contactId}/`, { method: "PATCH", body: { tags: tagIds } });
    loadCustomer(state.current);
  } catch (err) {
    showError(err);
  }
}

async function saveContactNotes(contactId, notes) {
  try {
    const contact = await api(`contacts/${contactId}/`);
    await api(`contacts/${contactId}/`, { method: "PATCH", body: { attributes: { ...(contact.attributes || {}), notes } } });
    toast(_("Saved."));
  } catch (err) {
    showError(err);
  }
}
