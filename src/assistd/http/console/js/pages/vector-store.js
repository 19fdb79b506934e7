// One vector store: its status, file counts and size; its files with their status and
// last error; adding files (from the project or uploaded here) and removing them; a
// search box. While anything is in progress the page asks again every second and
// updates in place; leaving the page stops that.

import { del, get, post } from "../api.js";
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
import { checkList, fileOptions } from "../manage/choices.js";
import { searchPanel } from "../manage/store-search.js";
import { uploadAll } from "../manage/uploads.js";

const COUNTS = ["in_progress", "completed", "failed", "cancelled", "total"];
const POLL_MS = 1000;

export async function render(view, params) {
  useStyle("manage");
  useStyle("vector-store");
  const path = `/vector_stores/${encodeURIComponent(params.id)}`;
  const names = new Map(); // file id → filename
  const rows = new Map(); // file id → {row, status, error, size, attributes}
  let timer = null;
  let left = false;

  const heading = h("h1", {});
  const summary = h("dl", { class: "summary" });
  const counts = h("dl", { class: "counts", "aria-label": "File counts" });
  const tbody = h("tbody", {});
  const empty = h("p", { class: "hint" }, "No files in this store yet.");
  const table = h(
    "table",
    { class: "stack", "aria-label": "Files in this store" },
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        ["File", "Status", "Last error", "Attributes", "Size"].map((t) => h("th", {}, t)),
        h("th", {}, h("span", { class: "visually-hidden" }, "Actions")),
      ),
    ),
    tbody,
  );
  const picker = h("div", {});
  let choice = null;
  const chooser = h("input", { type: "file", multiple: true });
  const uploads = h("ul", { class: "uploads", "aria-label": "Uploads" });

  async function learnNames(ids) {
    if (ids.every((id) => names.has(id))) return;
    for (const file of (await get("/files")).data) names.set(file.id, file.filename);
  }

  function showStore(store) {
    heading.textContent = store.name || store.id;
    const expires = store.expires_after
      ? `${store.expires_after.days} days after last use`
      : "never";
    fill(
      summary,
      [
        ["Status", h("span", { class: `status ${store.status}` }, store.status)],
        ["Usage", formatBytes(store.usage_bytes)],
        ["Created", formatTime(store.created_at)],
        ["Expires", expires],
      ].map(([term, value]) => h("div", {}, h("dt", {}, term), h("dd", {}, value))),
    );
    fill(
      counts,
      COUNTS.map((name) =>
        h(
          "div",
          {},
          h("dt", {}, name.replace("_", " ")),
          h("dd", { dataset: { count: name } }, store.file_counts[name]),
        ),
      ),
    );
  }

  function fileRow(file) {
    const name = names.get(file.id) || file.id;
    const cells = {
      status: h("td", { "data-label": "Status" }),
      error: h("td", { "data-label": "Last error" }),
      attributes: h("td", { "data-label": "Attributes", class: "wrap" }),
      size: h("td", { "data-label": "Size" }),
    };
    const remove = h(
      "button",
      {
        type: "button",
        class: "danger",
        "aria-label": `Remove ${name}`,
        onclick: () => detach(file.id, name),
      },
      "Remove",
    );
    cells.row = h(
      "tr",
      { dataset: { id: file.id } },
      h("td", { "data-label": "File", class: "wrap" }, name),
      cells.status,
      cells.error,
      cells.attributes,
      cells.size,
      h("td", { class: "actions-cell" }, remove),
    );
    return cells;
  }

  function showFiles(files) {
    const seen = new Set();
    for (const file of files) {
      seen.add(file.id);
      let cells = rows.get(file.id);
      if (!cells) {
        cells = fileRow(file);
        rows.set(file.id, cells);
        tbody.append(cells.row);
      }
      // In place: a row keeps its node (and any focus inside it) across polls.
      fill(cells.status, h("span", { class: `status ${file.status}` }, file.status));
      cells.error.textContent = file.last_error
        ? `${file.last_error.code}: ${file.last_error.message}`
        : "";
      const attrs = Object.entries(file.attributes || {});
      cells.attributes.textContent = attrs.map(([k, v]) => `${k}: ${JSON.stringify(v)}`).join(", ");
      cells.size.textContent = formatBytes(file.usage_bytes);
    }
    for (const [id, cells] of rows) {
      if (!seen.has(id)) {
        cells.row.remove();
        rows.delete(id);
      }
    }
    table.hidden = rows.size === 0;
    empty.hidden = rows.size > 0;
  }

  async function showPicker() {
    const options = (await fileOptions()).filter((option) => !rows.has(option.value));
    choice = checkList("Project files", options, [], "Every file of the project is in this store.");
    fill(picker, choice.node);
  }

  async function refresh() {
    clearTimeout(timer);
    const [store, files] = await Promise.all([get(path), get(`${path}/files`, { limit: 100 })]);
    if (left) return;
    await learnNames(files.data.map((file) => file.id));
    showStore(store);
    showFiles(files.data);
    const busy =
      store.file_counts.in_progress > 0 || files.data.some((f) => f.status === "in_progress");
    if (busy) timer = setTimeout(() => refresh().catch(stop), POLL_MS);
  }

  function stop(error) {
    clearTimeout(timer);
    if (!left) showError(error);
  }

  async function attach(ids) {
    for (const id of ids) await post(`${path}/files`, { file_id: id });
    await refresh();
    await showPicker();
  }

  async function detach(id, name) {
    if (
      !(await confirmDialog(`Remove “${name}” from this store? The file itself stays.`, "Remove"))
    )
      return;
    try {
      await del(`${path}/files/${encodeURIComponent(id)}`);
      notice(`Removed ${name}.`, "ok");
      await refresh();
      await showPicker();
    } catch (error) {
      showError(error);
    }
  }

  const addButton = h("button", { type: "button", class: "primary" }, "Add selected files");
  addButton.addEventListener("click", async () => {
    const ids = choice ? choice.values() : [];
    if (!ids.length) return notice("Choose the files to add first.", "info");
    try {
      await attach(ids);
    } catch (error) {
      showError(error);
    }
  });
  chooser.addEventListener("change", async () => {
    const files = [...chooser.files];
    chooser.value = "";
    try {
      const uploaded = await uploadAll(files, "assistants", uploads);
      await attach(uploaded.map((file) => file.id));
    } catch (error) {
      showError(error);
    }
  });

  await refresh();
  await showPicker();
  fill(
    view,
    h("p", {}, h("a", { href: "#/vector-stores" }, "← Vector stores")),
    heading,
    h(
      "section",
      { class: "card", "aria-label": "Overview" },
      summary,
      h("h2", {}, "Files"),
      counts,
    ),
    h("section", { class: "card", "aria-label": "Files" }, table, empty),
    h(
      "section",
      { class: "card", "aria-label": "Add files" },
      h("h2", {}, "Add files"),
      picker,
      h("div", { class: "actions" }, addButton),
      field("Upload and add files", chooser),
      uploads,
    ),
    searchPanel(path),
  );
  return () => {
    left = true;
    clearTimeout(timer);
  };
}
