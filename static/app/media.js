/*
 * Media in the agent workspace (issue 20): attachments in the composer, and the picture,
 * player or download link of a message in the thread. No dependencies; strings through
 * Django's JavaScript catalogue (window.gettext).
 *
 * API (ES module):
 *
 *   (a module) imports renderMedia, uploadMedia, attachmentInput, kindOfFile from app/media.js;
 *
 *   renderMedia(message) -> Node | null
 *       ``message.media`` as the API and the WebSocket events carry it
 *       ({status: "pending"|"ready"|"failed", error, id, kind, name, size, content_type, url}):
 *       an image thumbnail (opens the full image), a <video>/<audio> player, a download link,
 *       "Fetching media…" while pending, or "Media could not be fetched" (zh: 媒体获取失败) and the
 *       reason when the download failed.
 *       Returns null when the message has no media (render its text as usual). Messages sent
 *       from a public URL (``media_url``, no stored file) render the same way.
 *
 *   uploadMedia(file, {orgId, kind}) -> Promise<MediaFile>
 *       POST /api/v1/media/files/ (multipart, session + CSRF, X-Organization). Rejects with an
 *       Error whose message is the server's (413 too large, 400 type not allowed / empty).
 *       Then send it: POST conversations/<id>/messages/ {kind, media: file.id}.
 *
 *   attachmentInput({orgId, onUploaded, onError}) -> HTMLLabelElement
 *       A paperclip button with a hidden <input type=file>; uploads the chosen file and calls
 *       onUploaded(mediaFile, kind) (kind: image / video / file, as it should be sent).
 *
 *   Live updates: ``message_media_update`` {message_id, conversation_id, media} arrives when a
 *   received file is stored or its download failed; replace ``message.media`` and re-render.
 */

const _ = (s) => (window.gettext ? window.gettext(s) : s);

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

function node(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children) if (child) el.append(child);
  return el;
}

export function humanSize(bytes) {
  if (!bytes && bytes !== 0) return "";
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

export function kindOfFile(file) {
  const type = (file && file.type) || "";
  if (type.startsWith("image/")) return "image";
  if (type.startsWith("video/")) return "video";
  return "file";
}

export function renderMedia(message) {
  const media = message.media;
  if (!media) {
    if (message.media_url && message.kind === "image") {
      return node("img", { class: "ws-media ws-media-image", src: message.media_url, alt: _("Image"), loading: "lazy" });
    }
    return null;
  }
  if (media.status === "pending") {
    return node("div", { class: "ws-media ws-media-pending", role: "status", text: _("Fetching media…") });
  }
  if (media.status === "failed") {
    return node(
      "div",
      { class: "ws-media ws-media-failed", role: "alert", "data-media-failed": "1" },
      node("strong", { class: "ws-media-failed-title", text: _("Media could not be fetched") }),
      media.error ? node("span", { class: "ws-media-reason", text: ` ${media.error}` }) : null,
    );
  }
  if (!media.url) return null;
  const kind = media.kind || message.kind;
  const type = media.content_type || "";
  if (kind === "image") {
    return node(
      "a",
      { class: "ws-media ws-media-image-link", href: media.url, target: "_blank", rel: "noopener", title: media.name },
      node("img", { class: "ws-media-image", src: media.url, alt: media.name || _("Image"), loading: "lazy" }),
    );
  }
  if (kind === "video") {
    return node("video", { class: "ws-media ws-media-video", src: media.url, controls: true, preload: "metadata" });
  }
  if (kind === "voice" && type !== "audio/silk" && type !== "audio/amr") {
    return node("audio", { class: "ws-media ws-media-audio", src: media.url, controls: true, preload: "metadata" });
  }
  // Files, and WeChat voice notes (SILK/AMR, which browsers cannot play): a download link.
  const label = kind === "voice" ? _("Voice message") : media.name || _("File");
  return node(
    "a",
    { class: "ws-media ws-media-file", href: `${media.url}&download=1`, download: media.name || "" },
    node("span", { class: "ws-media-file-name", text: label }),
    node("span", { class: "ws-media-file-size", text: ` (${humanSize(media.size)})` }),
  );
}

export async function uploadMedia(file, { orgId, kind } = {}) {
  const form = new FormData();
  form.append("file", file, file.name);
  if (kind) form.append("kind", kind);
  const response = await fetch("/api/v1/media/files/", {
    method: "POST",
    credentials: "same-origin",
    headers: { Accept: "application/json", "X-Organization": String(orgId), "X-CSRFToken": csrfToken() },
    body: form,
  });
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = new Error((data && data.error && data.error.message) || _("The upload failed."));
    error.status = response.status;
    throw error;
  }
  return data;
}

function paperclip() {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("width", "18");
  svg.setAttribute("height", "18");
  svg.setAttribute("aria-hidden", "true");
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", "M16.5 6.5v10a4.5 4.5 0 0 1-9 0V5a3 3 0 0 1 6 0v10.5a1.5 1.5 0 0 1-3 0V6.5");
  path.setAttribute("fill", "none");
  path.setAttribute("stroke", "currentColor");
  path.setAttribute("stroke-width", "1.6");
  path.setAttribute("stroke-linecap", "round");
  svg.append(path);
  return svg;
}

export function attachmentInput({ orgId, onUploaded, onError } = {}) {
  const input = node("input", { type: "file", class: "ws-attach-input", hidden: true, "aria-label": _("Attach a file") });
  const label = node("label", { class: "ws-attach", title: _("Attach a file") }, paperclip(), node("span", { class: "ws-attach-text", text: _("File") }), input);
  input.addEventListener("change", async () => {
    const file = input.files && input.files[0];
    input.value = "";
    if (!file) return;
    const kind = kindOfFile(file);
    label.classList.add("ws-attach-busy");
    try {
      const media = await uploadMedia(file, { orgId, kind });
      if (onUploaded) onUploaded(media, kind === "image" || kind === "video" ? media.kind : "file");
    } catch (err) {
      if (onError) onError(err);
    } finally {
      label.classList.remove("ws-attach-busy");
    }
  });
  return label;
}
