// Field errors shown next to the field: aria-invalid on the control and a message it is
// described by, so a screen reader reads the reason along with the field.

import { h } from "../dom.js";

let counter = 0;

/** Mark `control` invalid with `message` (shown after its label). */
export function invalid(control, message) {
  const id = control.dataset.errorId || `field-error-${++counter}`;
  control.dataset.errorId = id;
  document.getElementById(id)?.remove();
  control.setAttribute("aria-invalid", "true");
  control.setAttribute("aria-describedby", id);
  (control.closest("label") || control).after(h("p", { id, class: "invalid" }, message));
}

/** Clear every mark inside `root`. */
export function clearInvalid(root) {
  for (const control of root.querySelectorAll("[aria-invalid]")) {
    control.removeAttribute("aria-invalid");
    control.removeAttribute("aria-describedby");
    document.getElementById(control.dataset.errorId)?.remove();
  }
}

/** Parse `text` as JSON; an error message (or null) and the value. */
export function parseJson(text) {
  try {
    return { value: JSON.parse(text), error: null };
  } catch (error) {
    return { value: undefined, error: `Not valid JSON: ${error.message}` };
  }
}

/** A JSON schema of an object: `{"type": "object", ...}` (what function parameters are). */
export function objectSchema(text) {
  const { value, error } = parseJson(text);
  if (error) return { value, error };
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    return { value, error: "The schema must be a JSON object." };
  }
  if (value.type !== "object") {
    return { value, error: 'The schema\'s "type" must be "object".' };
  }
  return { value, error: null };
}
