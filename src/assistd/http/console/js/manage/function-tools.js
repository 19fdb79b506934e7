// Function tools of an assistant: name, description, parameters (a JSON schema) and
// strict for each; added and removed in place, checked before the form is sent.

import { field, h } from "../dom.js";
import { invalid, objectSchema } from "./validate.js";

const NAME = /^[a-zA-Z0-9_-]{1,64}$/;
const EXAMPLE = '{\n  "type": "object",\n  "properties": {},\n  "required": []\n}';

export function functionTools(initial = []) {
  const list = h("div", { class: "functions" });
  const add = h("button", { type: "button", onclick: () => addTool({}, true) }, "Add function");
  const node = h(
    "fieldset",
    { class: "function-tools" },
    h("legend", {}, "Function tools"),
    list,
    h("div", { class: "actions" }, add),
  );

  function renumber() {
    [...list.children].forEach((tool, i) => {
      tool.querySelector("legend").textContent = `Function ${i + 1}`;
      tool.querySelector("button.remove").textContent = `Remove function ${i + 1}`;
    });
  }

  function addTool(fn, focus = false) {
    const name = h("input", { type: "text", value: fn.name || "", maxlength: 64, required: true });
    const description = h("input", { type: "text", value: fn.description || "" });
    const parameters = h("textarea", {
      class: "code",
      rows: 6,
      spellcheck: "false",
      placeholder: EXAMPLE,
    });
    parameters.value = fn.parameters ? JSON.stringify(fn.parameters, null, 2) : "";
    const strict = h("input", { type: "checkbox", checked: Boolean(fn.strict) });
    const tool = h(
      "fieldset",
      { class: "function card" },
      h("legend", {}, ""),
      field("Function name", name, "Letters, digits, _ and -, up to 64."),
      field("Function description", description),
      field("Parameters (JSON schema)", parameters, 'An object schema: {"type": "object", …}.'),
      h("label", { class: "check" }, strict, " Strict (follow the schema exactly)"),
      h(
        "button",
        {
          type: "button",
          class: "remove danger",
          onclick: () => {
            tool.remove();
            renumber();
            add.focus();
          },
        },
        "",
      ),
    );
    tool.read = () => {
      let ok = true;
      if (!NAME.test(name.value)) {
        invalid(name, "Use 1 to 64 letters, digits, _ or - (no spaces).");
        ok = false;
      }
      const body = { name: name.value };
      if (description.value) body.description = description.value;
      if (parameters.value.trim()) {
        const { value, error } = objectSchema(parameters.value);
        if (error) {
          invalid(parameters, error);
          ok = false;
        }
        body.parameters = value;
      }
      body.strict = strict.checked;
      return ok ? { type: "function", function: body } : null;
    };
    list.append(tool);
    renumber();
    if (focus) name.focus();
  }

  for (const tool of initial) addTool(tool.function);

  /** The function tools, or null after marking what is wrong. */
  function read() {
    const tools = [...list.children].map((tool) => tool.read());
    return tools.every(Boolean) ? tools : null;
  }

  return { node, read };
}
