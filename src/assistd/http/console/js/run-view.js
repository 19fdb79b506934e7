// The playground's run panel: the run's status, error and usage, and each run step with its
// tool calls (arguments or input, outputs, timing), kept current from stream events and
// replaced by the stored steps once the run stops. Also the inline view of a code
// interpreter call in the conversation.

import { h } from "./dom.js";
import { highlight } from "./highlight.js";

const TERMINAL = new Set(["completed", "failed", "cancelled", "expired", "incomplete"]);

export function isTerminal(status) {
  return TERMINAL.has(status);
}

/** Merge a `thread.run.step.delta` into the step it belongs to (as the SDK accumulates). */
export function mergeStepDelta(step, delta) {
  const details = delta.step_details;
  if (!details || details.type !== "tool_calls") return step;
  step.step_details ??= { type: "tool_calls", tool_calls: [] };
  const calls = (step.step_details.tool_calls ??= []);
  for (const change of details.tool_calls || []) {
    const index = change.index ?? calls.length;
    const call = (calls[index] ??= { id: change.id, type: change.type });
    if (change.id) call.id = change.id;
    if (change.type === "function") {
      const fn = (call.function ??= { name: "", arguments: "", output: null });
      if (change.function?.name) fn.name = change.function.name;
      fn.arguments += change.function?.arguments || "";
      if (change.function?.output != null) fn.output = change.function.output;
    } else if (change.type === "code_interpreter") {
      const ci = (call.code_interpreter ??= { input: "", outputs: [] });
      ci.input += change.code_interpreter?.input || "";
      for (const output of change.code_interpreter?.outputs || []) {
        const at = output.index ?? ci.outputs.length;
        const known = ci.outputs[at];
        if (known?.type === "logs" && output.type === "logs") known.logs += output.logs || "";
        else ci.outputs[at] = { ...output };
      }
    } else if (change.type === "file_search") {
      call.file_search = { ...(call.file_search || {}), ...(change.file_search || {}) };
    }
  }
  return step;
}

function pretty(json) {
  try {
    return JSON.stringify(JSON.parse(json), null, 2);
  } catch {
    return json || "";
  }
}

function code(text, lang, label) {
  return h("pre", { tabindex: "0", "aria-label": label }, h("code", {}, highlight(text, lang)));
}

function duration(from, to) {
  if (!from || !to) return "";
  const seconds = Math.max(0, to - from);
  return seconds < 60 ? `${seconds} s` : `${Math.floor(seconds / 60)} min ${seconds % 60} s`;
}

function clock(seconds) {
  return seconds ? new Date(seconds * 1000).toLocaleTimeString() : "";
}

function codeOutputs(outputs, images) {
  return (outputs || []).map((output) => {
    if (output.type === "logs") return h("pre", { class: "logs", tabindex: "0", "aria-label": "Logs" }, output.logs);
    if (output.type === "image") {
      const fileId = output.image?.file_id;
      return images ? h("figure", {}, images(fileId)) : h("p", {}, `Image: ${fileId}`);
    }
    return h("p", {}, `Output: ${output.type}`);
  });
}

/** One tool call as the steps panel shows it. */
function toolCall(call) {
  if (call.type === "function") {
    const fn = call.function || {};
    return h(
      "div",
      { class: "call" },
      h("h4", {}, `Function ${fn.name || ""}`, h("span", { class: "muted" }, ` ${call.id || ""}`)),
      h("p", { class: "label" }, "Arguments"),
      code(pretty(fn.arguments), "json", `Arguments of ${fn.name}`),
      h("p", { class: "label" }, "Output"),
      fn.output == null
        ? h("p", { class: "muted" }, "Waiting for the output.")
        : h("pre", { class: "output", tabindex: "0", "aria-label": `Output of ${fn.name}` }, fn.output),
    );
  }
  if (call.type === "code_interpreter") {
    const ci = call.code_interpreter || {};
    return h(
      "div",
      { class: "call" },
      h("h4", {}, "Code interpreter"),
      h("p", { class: "label" }, "Input"),
      code(ci.input || "", "python", "Code"),
      ci.outputs?.length ? h("p", { class: "label" }, "Outputs") : null,
      codeOutputs(ci.outputs),
    );
  }
  if (call.type === "file_search") {
    const results = call.file_search?.results || [];
    return h(
      "div",
      { class: "call" },
      h("h4", {}, "File search"),
      results.length
        ? h(
            "ol",
            { class: "results" },
            results.map((r) =>
              h("li", {}, `${r.file_name || r.file_id} — score ${Number(r.score).toFixed(3)}`),
            ),
          )
        : h("p", { class: "muted" }, call.file_search?.ranking_options ? "No results." : "Searching…"),
    );
  }
  return h("div", { class: "call" }, h("h4", {}, call.type));
}

function stepNode(step) {
  const ended = step.completed_at || step.failed_at || step.cancelled_at || step.expired_at;
  const took = duration(step.created_at, ended);
  const details = step.step_details || {};
  const summary = h(
    "summary",
    {},
    step.type === "tool_calls" ? "Tool calls" : "Message",
    " ",
    h("span", { class: `status ${step.status}` }, step.status),
    took ? h("span", { class: "muted" }, ` ${took}`) : null,
  );
  const body = [
    h(
      "p",
      { class: "muted timing" },
      `Created ${clock(step.created_at)}`,
      ended ? ` · ended ${clock(ended)}` : "",
      took ? ` · took ${took}` : "",
    ),
  ];
  if (details.type === "tool_calls") body.push((details.tool_calls || []).map(toolCall));
  if (details.type === "message_creation") {
    body.push(h("p", {}, `Message ${details.message_creation?.message_id || ""}`));
  }
  if (step.last_error) body.push(h("p", { class: "error-text" }, errorLine(step.last_error)));
  if (step.usage) {
    const { prompt_tokens: p, completion_tokens: c, total_tokens: t } = step.usage;
    body.push(h("p", { class: "muted step-usage" }, `Tokens: ${p} prompt · ${c} completion · ${t} total`));
  }
  return h("details", { class: "step", open: true, dataset: { id: step.id } }, summary, body);
}

export function errorLine(error) {
  return error.code ? `${error.code}: ${error.message}` : error.message;
}

function usageList(usage) {
  return h(
    "dl",
    { class: "usage" },
    h("dt", {}, "Prompt tokens"),
    h("dd", {}, String(usage.prompt_tokens)),
    h("dt", {}, "Completion tokens"),
    h("dd", {}, String(usage.completion_tokens)),
    h("dt", {}, "Total tokens"),
    h("dd", {}, String(usage.total_tokens)),
  );
}

/** The run panel: `setRun` on each run event, `step`/`stepDelta` on step events. */
export class RunPanel {
  constructor() {
    this.run = null;
    this.steps = new Map();
    this.status = h("span", { class: "status" }, "no run yet");
    this.meta = h("p", { class: "muted run-meta" });
    this.problem = h("p", { class: "error-text", hidden: true });
    this.usage = h("div", { class: "run-usage" });
    this.list = h("div", { class: "steps" });
    this.cancel = h("button", { type: "button", class: "danger", hidden: true }, "Cancel run");
    this.node = h(
      "section",
      { class: "card run-panel", "aria-labelledby": "run-heading" },
      h("div", { class: "row spread" }, h("h2", { id: "run-heading" }, "Run"), this.cancel),
      h("p", { class: "run-status", role: "status" }, "Status: ", this.status),
      this.meta,
      this.problem,
      this.usage,
      h("h3", {}, "Steps"),
      this.list,
    );
    this.pending = false;
  }

  clear() {
    this.run = null;
    this.steps.clear();
    this.status.className = "status";
    this.status.textContent = "no run yet";
    this.meta.textContent = "";
    this.problem.hidden = true;
    this.usage.replaceChildren();
    this.list.replaceChildren();
    this.cancel.hidden = true;
  }

  setRun(run) {
    if (this.run && this.run.id !== run.id) this.steps.clear();
    this.run = run;
    this.status.className = `status ${run.status}`;
    this.status.textContent = run.status.replace("_", " ");
    this.meta.textContent = [
      run.id,
      run.model ? `model ${run.model}` : "",
      duration(run.started_at || run.created_at, run.completed_at || run.failed_at || run.cancelled_at),
    ]
      .filter(Boolean)
      .join(" · ");
    const problem = run.last_error
      ? errorLine(run.last_error)
      : run.incomplete_details
        ? `Incomplete: ${run.incomplete_details.reason}`
        : "";
    this.problem.textContent = problem;
    this.problem.hidden = !problem;
    this.usage.replaceChildren(
      ...(run.usage ? [h("h3", {}, "Usage"), usageList(run.usage)] : []),
    );
    this.cancel.hidden = isTerminal(run.status) || run.status === "cancelling";
    this.schedule();
  }

  step(step) {
    const known = this.steps.get(step.id);
    // A completed step carries everything; an earlier event may lack what deltas added.
    if (known && !isTerminal(step.status) && !step.step_details?.tool_calls?.length) {
      Object.assign(known, { ...step, step_details: known.step_details });
    } else {
      this.steps.set(step.id, structuredClone(step));
    }
    this.schedule();
    return this.steps.get(step.id);
  }

  stepDelta(delta) {
    const step = this.steps.get(delta.id);
    if (!step) return null;
    mergeStepDelta(step, delta.delta || {});
    this.schedule();
    return step;
  }

  setSteps(steps) {
    this.steps = new Map(steps.map((s) => [s.id, s]));
    this.schedule();
  }

  schedule() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.list.replaceChildren(
        ...(this.steps.size
          ? [...this.steps.values()].map(stepNode)
          : [h("p", { class: "muted" }, this.run ? "No steps yet." : "")]),
      );
    });
  }
}

/** A code interpreter call in the conversation: its code and what it printed or drew. */
export class CodeCallView {
  constructor(media) {
    this.media = media;
    this.images = new Map();
    this.body = h("div", { class: "body" });
    this.node = h(
      "article",
      { class: "message tool" },
      h("div", { class: "role" }, "Code interpreter"),
      this.body,
    );
  }

  update(call) {
    const ci = call.code_interpreter || {};
    const images = (fileId) => {
      if (!this.images.has(fileId)) this.images.set(fileId, this.media.image(fileId));
      return this.images.get(fileId);
    };
    this.body.replaceChildren(code(ci.input || "", "python", "Code"), ...codeOutputs(ci.outputs, images));
  }
}
