// Metadata as key/value rows: at most 16 pairs, keys up to 64 characters, values up
// to 512 (the API's limits, checked here so the form says which row is wrong).

import { h } from "../dom.js";
import { invalid } from "./validate.js";

const MAX_PAIRS = 16;
const MAX_KEY = 64;
const MAX_VALUE = 512;

export function metadataEditor(initial = {}) {
  const rows = h("div", { class: "pairs" });
  const add = h("button", { type: "button", onclick: () => addRow("", "", true) }, "Add metadata");
  const node = h(
    "fieldset",
    { class: "metadata" },
    h("legend", {}, "Metadata"),
    rows,
    h("div", { class: "actions" }, add),
  );

  function renumber() {
    [...rows.children].forEach((row, i) => {
      const [key, value, remove] = row.querySelectorAll("input, button");
      key.setAttribute("aria-label", `Metadata key ${i + 1}`);
      value.setAttribute("aria-label", `Metadata value ${i + 1}`);
      remove.setAttribute("aria-label", `Remove metadata ${i + 1}`);
    });
    add.disabled = rows.children.length >= MAX_PAIRS;
  }

  function addRow(key, value, focus = false) {
    const keyInput = h("input", { type: "text", value: key, placeholder: "key" });
    const valueInput = h("input", { type: "text", value, placeholder: "value" });
    const row = h(
      "div",
      { class: "pair" },
      keyInput,
      valueInput,
      h(
        "button",
        { type: "button", onclick: () => (row.remove(), renumber(), add.focus()) },
        "Remove",
      ),
    );
    rows.append(row);
    renumber();
    if (focus) keyInput.focus();
  }

  for (const [key, value] of Object.entries(initial || {})) addRow(key, value);
  renumber();

  /** The metadata object, or null after marking the wrong rows. */
  function read() {
    const out = {};
    let ok = true;
    for (const row of rows.children) {
      const [key, value] = row.querySelectorAll("input");
      const name = key.value.trim();
      if (!name && !value.value) continue; // an empty row is left out
      if (!name) invalid(key, "A key is needed.");
      else if (name.length > MAX_KEY) invalid(key, `Keys are at most ${MAX_KEY} characters.`);
      else if (name in out) invalid(key, "This key is given twice.");
      else if (value.value.length > MAX_VALUE) {
        invalid(value, `Values are at most ${MAX_VALUE} characters.`);
      } else {
        out[name] = value.value;
        continue;
      }
      ok = false;
    }
    return ok ? out : null;
  }

  return { node, read };
}
