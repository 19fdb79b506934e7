// Create or edit an assistant: every field the API takes. The form checks what it can
// (function names and schemas, JSON, metadata limits) next to each field before sending;
// the server's own errors are shown as it words them. Saving goes back to the list.

import { del, get, post } from "../api.js";
import { confirmDialog, field, fill, h, showError, useStyle } from "../dom.js";
import { checkList, fileOptions } from "../manage/choices.js";
import { functionTools } from "../manage/function-tools.js";
import { metadataEditor } from "../manage/metadata.js";
import { clearInvalid, invalid, parseJson } from "../manage/validate.js";

const FORMATS = [
  ["auto", "Auto"],
  ["text", "Text"],
  ["json_object", "JSON object"],
  ["json_schema", "JSON schema"],
];

function options(pairs, current) {
  return pairs.map(([value, label]) => h("option", { value, selected: value === current }, label));
}

/** A number input; its value, null when empty, undefined after marking it wrong. */
function number(input, max) {
  if (input.value.trim() === "") return null;
  const value = Number(input.value);
  if (Number.isFinite(value) && value >= 0 && value <= max) return value;
  invalid(input, `A number from 0 to ${max}.`);
  return undefined;
}

function formatOf(assistant) {
  const format = assistant?.response_format;
  if (!format || format === "auto") return { type: "auto" };
  return typeof format === "string" ? { type: format } : format;
}

export async function render(view, params) {
  useStyle("manage");
  const editing = Boolean(params.id);
  const path = editing ? `/assistants/${encodeURIComponent(params.id)}` : "/assistants";
  const [assistant, models, files, stores] = await Promise.all([
    editing ? get(path) : null,
    get("/models"),
    fileOptions("assistants"),
    get("/vector_stores", { limit: 100 }),
  ]);
  const a = assistant || { tools: [], tool_resources: {}, metadata: {} };
  const tools = a.tools || [];
  const has = (type) => tools.find((tool) => tool.type === type);
  const resources = a.tool_resources || {};

  const name = h("input", { type: "text", value: a.name || "", maxlength: 256 });
  const description = h("input", { type: "text", value: a.description || "", maxlength: 512 });
  const modelIds = models.data.map((model) => model.id);
  if (a.model && !modelIds.includes(a.model)) modelIds.unshift(a.model);
  const model = h(
    "select",
    {},
    options(
      modelIds.map((id) => [id, id]),
      a.model,
    ),
  );
  const instructions = h("textarea", { rows: 6 });
  instructions.value = a.instructions || "";

  const codeInterpreter = h("input", {
    type: "checkbox",
    checked: Boolean(has("code_interpreter")),
  });
  const search = has("file_search");
  const fileSearch = h("input", { type: "checkbox", checked: Boolean(search) });
  const maxResults = h("input", {
    type: "number",
    min: 1,
    max: 50,
    step: 1,
    value: search?.file_search?.max_num_results ?? "",
  });
  const functions = functionTools(tools.filter((tool) => tool.type === "function"));

  const ciFiles = resources.code_interpreter?.file_ids || [];
  const known = new Set(files.map((file) => file.value));
  const ciOptions = [
    ...files,
    ...ciFiles.filter((id) => !known.has(id)).map((id) => ({ value: id, label: id })),
  ];
  const ciPicker = checkList(
    "Code interpreter files",
    ciOptions,
    ciFiles,
    "No files with purpose assistants.",
  );
  const storeId = resources.file_search?.vector_store_ids?.[0] || "";
  const storePairs = stores.data.map((store) => [store.id, store.name || store.id]);
  if (storeId && !storePairs.some(([id]) => id === storeId)) storePairs.push([storeId, storeId]);
  const store = h("select", {}, options([["", "None"], ...storePairs], storeId));

  const format = formatOf(a);
  const formatSelect = h("select", {}, options(FORMATS, format.type));
  const schemaName = h("input", { type: "text", value: format.json_schema?.name || "" });
  const schema = h("textarea", { class: "code", rows: 6, spellcheck: "false" });
  schema.value = format.json_schema?.schema
    ? JSON.stringify(format.json_schema.schema, null, 2)
    : "";
  const schemaFields = h(
    "div",
    { class: "schema" },
    field("Schema name", schemaName),
    field("Schema (JSON)", schema),
  );
  const showSchema = () => (schemaFields.hidden = formatSelect.value !== "json_schema");
  formatSelect.addEventListener("change", showSchema);
  showSchema();
  const temperature = h("input", {
    type: "number",
    min: 0,
    max: 2,
    step: 0.01,
    value: a.temperature ?? "",
  });
  const topP = h("input", { type: "number", min: 0, max: 1, step: 0.01, value: a.top_p ?? "" });
  const metadata = metadataEditor(a.metadata);

  function responseFormat() {
    const type = formatSelect.value;
    if (type === "auto") return "auto";
    if (type !== "json_schema") return { type };
    let ok = true;
    if (!/^[a-zA-Z0-9_-]{1,64}$/.test(schemaName.value)) {
      invalid(schemaName, "Use 1 to 64 letters, digits, _ or -.");
      ok = false;
    }
    const { value, error } = parseJson(schema.value || "{}");
    if (error) invalid(schema, error);
    return ok && !error
      ? { type, json_schema: { name: schemaName.value, schema: value } }
      : undefined;
  }

  /** The request body, or null after marking what is wrong. */
  function body() {
    clearInvalid(form);
    const fns = functions.read();
    const format = responseFormat();
    const temp = number(temperature, 2);
    const top = number(topP, 1);
    const meta = metadata.read();
    let max = null;
    if (fileSearch.checked && maxResults.value) {
      max = Number(maxResults.value);
      if (!Number.isInteger(max) || max < 1 || max > 50)
        invalid(maxResults, "A whole number from 1 to 50.");
    }
    if (!fns || format === undefined || temp === undefined || top === undefined || !meta)
      return null;
    if (form.querySelector("[aria-invalid]")) return null;
    const chosen = [];
    if (codeInterpreter.checked) chosen.push({ type: "code_interpreter" });
    if (fileSearch.checked) {
      const settings = { ...(search?.file_search || {}) };
      if (max) settings.max_num_results = max;
      else delete settings.max_num_results;
      chosen.push({ type: "file_search", file_search: settings });
    }
    const out = {
      name: name.value.trim() || null,
      description: description.value.trim() || null,
      model: model.value,
      instructions: instructions.value || null,
      tools: [...chosen, ...fns],
      tool_resources: {
        code_interpreter: { file_ids: ciPicker.values() },
        file_search: { vector_store_ids: store.value ? [store.value] : [] },
      },
      response_format: format,
      temperature: temp,
      top_p: top,
      metadata: meta,
    };
    // A new assistant leaves out what is empty (the server's defaults apply); an edit sends
    // null to clear a field.
    if (!editing) for (const key of Object.keys(out)) if (out[key] === null) delete out[key];
    return out;
  }

  const fieldsByParam = { name, description, model, instructions, temperature, top_p: topP };

  async function save(event) {
    event.preventDefault();
    const request = body();
    if (!request) {
      form.querySelector("[aria-invalid]")?.focus();
      return;
    }
    saveButton.disabled = true;
    try {
      const saved = await post(path, request);
      location.hash = `#/assistants?saved=${encodeURIComponent(saved.name || saved.id)}`;
    } catch (error) {
      const control = fieldsByParam[String(error.param || "").split(/[.[]/)[0]];
      if (control) invalid(control, error.message);
      showError(error);
    } finally {
      saveButton.disabled = false;
    }
  }

  async function remove() {
    const label = a.name || a.id;
    if (!(await confirmDialog(`Delete the assistant “${label}”?`))) return;
    try {
      await del(path);
      location.hash = "#/assistants";
    } catch (error) {
      showError(error);
    }
  }

  const saveButton = h("button", { type: "submit", class: "primary" }, "Save");
  const form = h(
    "form",
    {
      class: "assistant-form",
      novalidate: true,
      "aria-label": editing ? "Edit assistant" : "New assistant",
      onsubmit: save,
    },
    h(
      "section",
      { class: "card" },
      field("Name", name),
      field("Description", description),
      field("Model", model),
      field("Instructions", instructions),
    ),
    h(
      "section",
      { class: "card" },
      h("h2", {}, "Tools"),
      h("label", { class: "check" }, codeInterpreter, " Code interpreter"),
      h("label", { class: "check" }, fileSearch, " File search"),
      field("File search: max results", maxResults, "Optional, 1 to 50."),
      functions.node,
    ),
    h(
      "section",
      { class: "card" },
      h("h2", {}, "Tool resources"),
      ciPicker.node,
      field("File search vector store", store),
    ),
    h(
      "section",
      { class: "card" },
      h("h2", {}, "Output"),
      field("Response format", formatSelect),
      schemaFields,
      h(
        "div",
        { class: "row numbers" },
        field("Temperature", temperature, "0 to 2"),
        field("Top P", topP, "0 to 1"),
      ),
    ),
    h("section", { class: "card" }, metadata.node),
    h(
      "div",
      { class: "actions" },
      saveButton,
      h("a", { href: "#/assistants", class: "button" }, "Cancel"),
      editing
        ? h("button", { type: "button", class: "danger", onclick: remove }, "Delete assistant")
        : null,
    ),
  );
  fill(view, h("h1", {}, editing ? `Edit ${a.name || a.id}` : "New assistant"), form);
  name.focus();
}
