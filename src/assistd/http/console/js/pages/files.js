// Files: upload several at once (picker or drag and drop), each with a progress bar; the
// project's files newest first, a page at a time, with download and delete.

import { blobUrl, del } from "../api.js";
import {
  confirmDialog,
  field,
  fill,
  formatBytes,
  formatTime,
  h,
  notice,
  showError,
  useStyle,
} from "../dom.js";
import { pager } from "../manage/pager.js";
import { dropzone, uploadAll } from "../manage/uploads.js";

const PURPOSES = ["assistants", "vision", "batch", "user_data"];
const LISTED = [...PURPOSES, "assistants_output", "batch_output", "fine-tune", "evals"];

async function download(file) {
  try {
    const href = await blobUrl(file.id);
    const link = h("a", { href, download: file.filename, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    // The download has read the blob by the time a minute has passed.
    setTimeout(() => URL.revokeObjectURL(href), 60_000);
  } catch (error) {
    showError(error);
  }
}

export async function render(view, params) {
  useStyle("manage");
  useStyle("files");
  const limit = Math.min(Math.max(Number(params.limit) || 20, 1), 100);
  const purpose = h(
    "select",
    {},
    PURPOSES.map((p) => h("option", { value: p }, p)),
  );
  const chooser = h("input", { type: "file", multiple: true });
  const uploads = h("ul", { class: "uploads", "aria-label": "Uploads" });
  const filter = h(
    "select",
    {},
    h("option", { value: "" }, "All purposes"),
    LISTED.map((p) => h("option", { value: p }, p)),
  );
  const list = pager("/files", table, {
    limit,
    before: false, // /v1/files pages with `after` only
    label: "Files",
    query: () => ({ purpose: filter.value }),
  });

  async function send(files) {
    const done = await uploadAll(files, purpose.value, uploads);
    if (done.length) await list.restart().catch(showError);
  }

  async function remove(file) {
    if (!(await confirmDialog(`Delete the file “${file.filename}”?`))) return;
    try {
      await del(`/files/${encodeURIComponent(file.id)}`);
      notice(`Deleted ${file.filename}.`, "ok");
      await list.reload();
    } catch (error) {
      showError(error);
    }
  }

  function row(file) {
    const name = file.filename;
    return h(
      "tr",
      { dataset: { id: file.id } },
      h("td", { "data-label": "Filename", class: "wrap" }, name),
      h("td", { "data-label": "Size" }, formatBytes(file.bytes)),
      h("td", { "data-label": "Purpose" }, file.purpose),
      h("td", { "data-label": "Created" }, formatTime(file.created_at)),
      h(
        "td",
        { class: "actions-cell" },
        h(
          "button",
          { type: "button", "aria-label": `Download ${name}`, onclick: () => download(file) },
          "Download",
        ),
        h(
          "button",
          {
            type: "button",
            class: "danger",
            "aria-label": `Delete ${name}`,
            onclick: () => remove(file),
          },
          "Delete",
        ),
      ),
    );
  }

  function table(files) {
    if (!files.length) return h("p", { class: "hint" }, "No files.");
    return h(
      "table",
      { class: "stack", "aria-label": "Files" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ["Filename", "Size", "Purpose", "Created"].map((t) => h("th", {}, t)),
          h("th", {}, h("span", { class: "visually-hidden" }, "Actions")),
        ),
      ),
      h("tbody", {}, files.map(row)),
    );
  }

  chooser.addEventListener("change", () => {
    const files = [...chooser.files];
    chooser.value = ""; // the same file can be chosen again
    if (files.length) send(files);
  });
  filter.addEventListener("change", () => list.restart().catch(showError));

  fill(
    view,
    h("h1", {}, "Files"),
    h(
      "section",
      { class: "card", "aria-label": "Upload" },
      h("h2", {}, "Upload"),
      h(
        "div",
        { class: "row upload-controls" },
        field("Upload purpose", purpose),
        field("Choose files", chooser),
      ),
      dropzone(h("div", { class: "dropzone" }, "…or drop files here"), send),
      uploads,
    ),
    h(
      "section",
      { class: "card", "aria-label": "Project files" },
      h(
        "div",
        { class: "row spread" },
        h("h2", {}, "Project files"),
        field("Filter by purpose", filter),
      ),
      list.node,
    ),
  );
  await list.load();
}
