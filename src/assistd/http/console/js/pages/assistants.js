// Assistants: the project's assistants, newest first, a page at a time; edit, open in the
// playground or delete each one. `?limit=` sets the page size (tests page over a few).

import { del } from "../api.js";
import { confirmDialog, fill, formatTime, h, notice, showError, useStyle } from "../dom.js";
import { pager } from "../manage/pager.js";

function toolNames(assistant) {
  const names = assistant.tools.map((tool) =>
    tool.type === "function" ? tool.function.name : tool.type,
  );
  return names.length ? names.join(", ") : "none";
}

export async function render(view, params) {
  useStyle("manage");
  const limit = Math.min(Math.max(Number(params.limit) || 20, 1), 100);
  const list = pager("/assistants", table, { limit, label: "Assistants" });

  async function remove(assistant) {
    const name = assistant.name || assistant.id;
    if (!(await confirmDialog(`Delete the assistant “${name}”?`))) return;
    try {
      await del(`/assistants/${encodeURIComponent(assistant.id)}`);
      notice(`Deleted ${name}.`, "ok");
      await list.reload();
    } catch (error) {
      showError(error);
    }
  }

  function row(assistant) {
    const id = encodeURIComponent(assistant.id);
    const name = assistant.name || assistant.id;
    return h(
      "tr",
      { dataset: { id: assistant.id } },
      h(
        "td",
        { "data-label": "Name", class: "wrap" },
        h("a", { href: `#/assistants/${id}` }, name),
      ),
      h("td", { "data-label": "Model" }, assistant.model),
      h("td", { "data-label": "Tools" }, toolNames(assistant)),
      h("td", { "data-label": "Created" }, formatTime(assistant.created_at)),
      h(
        "td",
        { class: "actions-cell" },
        h("a", { href: `#/assistants/${id}`, "aria-label": `Edit ${name}` }, "Edit"),
        h(
          "a",
          { href: `#/playground?assistant=${id}`, "aria-label": `Open ${name} in the playground` },
          "Playground",
        ),
        h(
          "button",
          {
            type: "button",
            class: "danger",
            "aria-label": `Delete ${name}`,
            onclick: () => remove(assistant),
          },
          "Delete",
        ),
      ),
    );
  }

  function table(assistants) {
    if (!assistants.length) return h("p", { class: "hint" }, "No assistants yet.");
    return h(
      "table",
      { class: "stack", "aria-label": "Assistants" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ["Name", "Model", "Tools", "Created"].map((t) => h("th", {}, t)),
          h("th", {}, h("span", { class: "visually-hidden" }, "Actions")),
        ),
      ),
      h("tbody", {}, assistants.map(row)),
    );
  }

  fill(
    view,
    h(
      "div",
      { class: "row spread" },
      h("h1", {}, "Assistants"),
      h("a", { href: "#/assistants/new", class: "button primary" }, "New assistant"),
    ),
    list.node,
  );
  await list.load();
  if (params.saved) notice(`Saved ${params.saved}.`, "ok");
}
