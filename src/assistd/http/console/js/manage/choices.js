// Picking several of the project's objects (files, vector stores) with checkboxes.

import { get } from "../api.js";
import { formatBytes, h } from "../dom.js";

/** A fieldset of checkboxes; `options`: [{value, label}]. `values()`: the checked ones. */
export function checkList(legend, options, selected = [], empty = "None yet.") {
  const chosen = new Set(selected);
  const boxes = options.map((option) =>
    h("input", { type: "checkbox", value: option.value, checked: chosen.has(option.value) }),
  );
  const node = h(
    "fieldset",
    { class: "choices" },
    h("legend", {}, legend),
    options.length
      ? h(
          "ul",
          {},
          options.map((option, i) =>
            h("li", {}, h("label", { class: "check" }, boxes[i], " ", option.label)),
          ),
        )
      : h("p", { class: "hint" }, empty),
  );
  return {
    node,
    values: () => boxes.filter((box) => box.checked).map((box) => box.value),
    clear: () => boxes.forEach((box) => (box.checked = false)),
  };
}

/** The project's files as options (`purpose` narrows them), newest first. */
export async function fileOptions(purpose) {
  const files = await get("/files", { purpose, order: "desc" });
  return files.data.map((file) => ({
    value: file.id,
    label: `${file.filename} (${formatBytes(file.bytes)})`,
  }));
}
