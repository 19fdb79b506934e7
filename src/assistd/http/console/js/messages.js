// Thread messages in the playground: a view per message that merges streamed deltas and
// renders its parts (Markdown text with citations, images from code interpreter), and the
// dialog that shows a cited file's text.

import { blobUrl, fileText, get } from "./api.js";
import { errorText, h } from "./dom.js";
import { placeholder, renderMarkdown, stripMarks } from "./markdown.js";

/** Blob URLs of files shown on the page (the content needs the key), revoked on leaving. */
export function createMedia() {
  const urls = new Map();
  const load = (fileId) => {
    if (!urls.has(fileId)) urls.set(fileId, blobUrl(fileId));
    return urls.get(fileId);
  };
  return {
    load,
    /** An <img> of the file (fetched once per page, however many places show it). */
    image(fileId) {
      const img = h("img", { alt: `Image from the assistant (${fileId})`, class: "output-image" });
      load(fileId)
        .then((src) => {
          img.src = src;
        })
        .catch((error) => {
          img.alt = `The image ${fileId} could not be loaded: ${errorText(error)}`;
        });
      return img;
    },
    async revokeAll() {
      for (const pending of urls.values()) {
        pending.then((src) => URL.revokeObjectURL(src)).catch(() => {});
      }
      urls.clear();
    },
  };
}

const ROLE = { user: "You", assistant: "Assistant" };

/** A message as it streams in: `delta()` merges, `set()` replaces, rendering waits a frame. */
export class MessageView {
  constructor(message, media) {
    this.media = media;
    this.images = new Map(); // kept across re-renders, so an image is not rebuilt per delta
    this.message = { ...message, content: structuredClone(message.content || []) };
    this.body = h("div", { class: "body" });
    this.node = h(
      "article",
      { class: `message ${message.role}`, dataset: { id: message.id || "" } },
      h("div", { class: "role" }, ROLE[message.role] || message.role),
      this.body,
      attachmentsNote(message.attachments),
    );
    this.pending = false;
    this.render();
  }

  delta(delta) {
    const content = this.message.content;
    for (const part of delta.content || []) {
      const index = part.index ?? content.length;
      const current = content[index];
      if (part.type === "text" && current?.type === "text") {
        current.text.value += part.text?.value || "";
        current.text.annotations.push(...(part.text?.annotations || []));
      } else if (part.type === "text") {
        content[index] = {
          type: "text",
          text: { value: part.text?.value || "", annotations: [...(part.text?.annotations || [])] },
        };
      } else {
        const { index: _, ...rest } = part;
        content[index] = rest;
      }
    }
    this.schedule();
  }

  set(message) {
    this.message = { ...message, content: structuredClone(message.content || []) };
    this.node.dataset.id = message.id;
    this.schedule();
  }

  setStatus(status) {
    this.node.classList.toggle("streaming", status === "in_progress");
    if (status === "incomplete") this.node.classList.add("incomplete");
  }

  /** Re-render at most once per animation frame however many deltas arrive. */
  schedule() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.render();
    });
  }

  render() {
    const parts = [];
    let citations = 0;
    for (const part of this.message.content) {
      if (part.type === "text") {
        const [node, count] = textPart(part.text, this.message.role, citations, this.media);
        citations = count;
        parts.push(node);
      } else if (part.type === "image_file") {
        const fileId = part.image_file.file_id;
        if (!this.images.has(fileId)) this.images.set(fileId, this.media.image(fileId));
        parts.push(h("figure", {}, this.images.get(fileId)));
      } else if (part.type === "image_url") {
        parts.push(h("p", {}, h("a", { href: part.image_url.url, target: "_blank", rel: "noopener noreferrer" }, "Image")));
      } else if (part.type === "refusal") {
        parts.push(h("p", { class: "refusal" }, `Refused: ${part.refusal}`));
      }
    }
    this.body.replaceChildren(...parts);
  }
}

function attachmentsNote(attachments) {
  if (!attachments?.length) return null;
  const names = attachments.map(
    (a) => `${a.filename || a.file_id} (${(a.tools || []).map((t) => t.type).join(", ") || "no tools"})`,
  );
  return h("p", { class: "attached muted" }, `Attached: ${names.join("; ")}`);
}

/** A text part: user text as written, the assistant's as Markdown with its annotations. */
function textPart(text, role, numbered, media) {
  const value = text.value || "";
  if (role !== "assistant") return [h("p", { class: "plain" }, value), numbered];
  // Replace each annotated range (in order, never overlapping) with a placeholder.
  const annotations = [...(text.annotations || [])]
    .filter((a) => Number.isInteger(a.start_index) && a.end_index <= value.length)
    .sort((a, b) => a.start_index - b.start_index);
  let source = "";
  let at = 0;
  const used = [];
  for (const annotation of annotations) {
    if (annotation.start_index < at) continue;
    source += stripMarks(value.slice(at, annotation.start_index)) + placeholder(used.length);
    used.push(annotation);
    at = annotation.end_index;
  }
  source += stripMarks(value.slice(at));
  const numbers = used.map((a) => (a.type === "file_citation" ? ++numbered : 0));
  const marks = {
    node: (n) => annotationNode(used[n], numbers[n], media),
    text: (n) => (numbers[n] ? `[${numbers[n]}]` : used[n].text),
  };
  const node = h("div", { class: "markdown" });
  node.append(renderMarkdown(source, marks));
  return [node, numbered];
}

function annotationNode(annotation, number, media) {
  if (annotation.type === "file_citation") {
    const fileId = annotation.file_citation?.file_id;
    return h(
      "button",
      {
        type: "button",
        class: "cite",
        "aria-label": `Citation ${number}`,
        title: `Open the cited file (${fileId})`,
        onclick: (event) => openFile(fileId, annotation.file_citation?.quote, event.currentTarget),
      },
      `[${number}]`,
    );
  }
  if (annotation.type === "file_path") {
    const fileId = annotation.file_path?.file_id;
    const name = (annotation.text || fileId).split("/").pop();
    return h(
      "a",
      {
        href: "#",
        class: "file-link",
        title: `Download ${fileId}`,
        onclick: async (event) => {
          event.preventDefault();
          try {
            const anchor = h("a", { href: await media.load(fileId), download: name });
            anchor.click();
          } catch (error) {
            openError(`The file ${fileId} could not be downloaded: ${errorText(error)}`);
          }
        },
      },
      `Download ${name}`,
    );
  }
  return document.createTextNode(annotation.text || "");
}

function openError(message) {
  const dialog = fileDialog("Download failed");
  dialog.body.append(h("p", { class: "error-text" }, message));
  dialog.show();
}

function fileDialog(title, opener) {
  const id = `file-view-${Math.random().toString(36).slice(2)}`;
  const heading = h("h2", { id }, title);
  const body = h("div", { class: "file-body" });
  const dialog = h(
    "dialog",
    { class: "file-view", "aria-labelledby": id },
    h(
      "div",
      { class: "row spread" },
      heading,
      h("form", { method: "dialog" }, h("button", { type: "submit" }, "Close")),
    ),
    body,
  );
  dialog.addEventListener("close", () => {
    dialog.remove();
    if (opener?.isConnected) opener.focus();
  });
  return {
    heading,
    body,
    show() {
      document.body.append(dialog);
      dialog.showModal(); // focuses Close, the first control; Escape closes
    },
  };
}

/** The cited file's name and text in a modal dialog; focus returns to the citation after. */
export async function openFile(fileId, quote, opener) {
  const dialog = fileDialog("Loading the cited file…", opener);
  const text = h("pre", { class: "file-text", tabindex: "0", "aria-label": "File text" }, "Loading…");
  if (quote) dialog.body.append(h("blockquote", {}, quote));
  dialog.body.append(text);
  dialog.show();
  try {
    const [file, content] = await Promise.all([
      get(`/files/${encodeURIComponent(fileId)}`),
      fileText(fileId),
    ]);
    dialog.heading.textContent = file.filename || fileId;
    text.textContent = content;
  } catch (error) {
    dialog.heading.textContent = fileId;
    text.textContent = `The file could not be read: ${errorText(error)}`;
  }
}
