// Vector stores: the project's stores a page at a time, a form to create one (with files
// of the project and an optional expiry), delete with confirmation. A new store opens
// on its own page, where ingestion can be watched.

import { del, post } from "../api.js";
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
import { pager } from "../manage/pager.js";
import { clearInvalid, invalid } from "../manage/validate.js";

export async function render(view, params) {
  useStyle("manage");
  const limit = Math.min(Math.max(Number(params.limit) || 20, 1), 100);
  const list = pager("/vector_stores", table, { limit, label: "Vector stores" });

  async function remove(store) {
    const label = store.name || store.id;
    if (!(await confirmDialog(`Delete the vector store “${label}”?`))) return;
    try {
      await del(`/vector_stores/${encodeURIComponent(store.id)}`);
      notice(`Deleted ${label}.`, "ok");
      await list.reload();
    } catch (error) {
      showError(error);
    }
  }

  function row(store) {
    const label = store.name || store.id;
    const counts = store.file_counts;
    return h(
      "tr",
      { dataset: { id: store.id } },
      h(
        "td",
        { "data-label": "Name", class: "wrap" },
        h("a", { href: `#/vector-stores/${encodeURIComponent(store.id)}` }, label),
      ),
      h(
        "td",
        { "data-label": "Status" },
        h("span", { class: `status ${store.status}` }, store.status),
      ),
      h("td", { "data-label": "Files" }, `${counts.completed} of ${counts.total} ready`),
      h("td", { "data-label": "Size" }, formatBytes(store.usage_bytes)),
      h("td", { "data-label": "Created" }, formatTime(store.created_at)),
      h(
        "td",
        { class: "actions-cell" },
        h(
          "button",
          {
            type: "button",
            class: "danger",
            "aria-label": `Delete ${label}`,
            onclick: () => remove(store),
          },
          "Delete",
        ),
      ),
    );
  }

  function table(stores) {
    if (!stores.length) return h("p", { class: "hint" }, "No vector stores yet.");
    return h(
      "table",
      { class: "stack", "aria-label": "Vector stores" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ["Name", "Status", "Files", "Size", "Created"].map((t) => h("th", {}, t)),
          h("th", {}, h("span", { class: "visually-hidden" }, "Actions")),
        ),
      ),
      h("tbody", {}, stores.map(row)),
    );
  }

  const name = h("input", { type: "text", maxlength: 256 });
  const files = checkList("Files", await fileOptions(), [], "No files in this project yet.");
  const days = h("input", { type: "number", min: 1, max: 365, step: 1 });
  const create = h("button", { type: "submit", class: "primary" }, "Create vector store");
  const form = h(
    "form",
    { class: "card", novalidate: true, "aria-label": "New vector store" },
    h("h2", {}, "New vector store"),
    field("Name", name),
    files.node,
    field("Expires after (days)", days, "Optional: days after its last use, 1 to 365."),
    h("div", { class: "actions" }, create),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearInvalid(form);
    const request = { name: name.value.trim() || undefined, file_ids: files.values() };
    if (days.value) {
      const value = Number(days.value);
      if (!Number.isInteger(value) || value < 1 || value > 365) {
        invalid(days, "A whole number of days from 1 to 365.");
        days.focus();
        return;
      }
      request.expires_after = { anchor: "last_active_at", days: value };
    }
    create.disabled = true;
    try {
      const store = await post("/vector_stores", request);
      location.hash = `#/vector-stores/${encodeURIComponent(store.id)}`;
    } catch (error) {
      showError(error);
    } finally {
      create.disabled = false;
    }
  });

  fill(
    view,
    h("h1", {}, "Vector stores"),
    h("section", { class: "card", "aria-label": "Vector stores" }, list.node),
    form,
  );
  await list.load();
}
