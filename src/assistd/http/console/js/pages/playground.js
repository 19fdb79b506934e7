// Playground: talk to an assistant on a new or existing thread. Messages go out with
// attachments, runs stream back (text token by token, code interpreter calls inline), the
// run panel follows each step, function calls are answered by hand, and a run can be
// cancelled. Everything goes through the public /v1 API.

import { ApiError, attach, get, page, post, stream, upload } from "../api.js";
import { errorText, field, fill, h, useStyle } from "../dom.js";
import { MessageView, createMedia } from "../messages.js";
import { CodeCallView, RunPanel, errorLine, isTerminal } from "../run-view.js";

const TOOLS = [
  ["file_search", "File search"],
  ["code_interpreter", "Code interpreter"],
];

async function allAssistants() {
  const out = [];
  let after;
  for (;;) {
    const listed = await page("/assistants", { limit: 100, after });
    out.push(...listed.data);
    if (!listed.has_more || !listed.last_id) return out;
    after = listed.last_id;
  }
}

async function allMessages(threadId) {
  const out = [];
  let after;
  for (;;) {
    const listed = await page(`/threads/${threadId}/messages`, { limit: 100, after, order: "asc" });
    out.push(...listed.data);
    if (!listed.has_more || !listed.last_id) return out;
    after = listed.last_id;
  }
}

export async function render(view, params) {
  useStyle("playground");
  const media = createMedia();
  const state = {
    threadId: params.thread || null,
    run: null,
    streaming: null, // the AbortController of the stream being read
    left: false,
    attachments: [], // {file, id, progress, node}
    messages: new Map(), // message id → MessageView
    calls: new Map(), // tool call id → CodeCallView
  };

  const assistants = await allAssistants();
  const picker = h(
    "select",
    { name: "assistant" },
    h("option", { value: "" }, assistants.length ? "Choose an assistant" : "No assistants yet"),
    assistants.map((a) => h("option", { value: a.id }, `${a.name || "(unnamed)"} — ${a.id} (${a.model})`)),
  );
  const threadLabel = h("span", { class: "thread-id" });
  const newThread = h("button", { type: "button" }, "New thread");
  const transcript = h("div", { class: "messages", "aria-label": "Conversation", role: "log" });
  const errorBox = h("div", { class: "run-error", role: "alert" });
  const actionBox = h("div", { class: "action-box" });
  const panel = new RunPanel();

  const textarea = h("textarea", {
    name: "message",
    rows: 3,
    placeholder: "Write a message. Enter sends, Shift+Enter starts a new line.",
  });
  const fileInput = h("input", { type: "file", multiple: true, name: "files" });
  const toolBoxes = TOOLS.map(([type, label]) =>
    h("label", { class: "check" }, h("input", { type: "checkbox", value: type, checked: type === "file_search" }), ` ${label}`),
  );
  const chips = h("ul", { class: "attachments", "aria-label": "Attached files" });
  const send = h("button", { type: "submit", class: "primary" }, "Send");
  const composer = h(
    "form",
    { class: "composer card", "aria-label": "Compose" },
    field("Message", textarea),
    h(
      "div",
      { class: "attach-row" },
      field("Attach files", fileInput),
      h("fieldset", { class: "tools" }, h("legend", {}, "Attachments are for"), toolBoxes),
    ),
    chips,
    h("div", { class: "actions" }, send),
  );

  fill(
    view,
    h("h1", {}, "Playground"),
    h(
      "div",
      { class: "card toolbar" },
      field("Assistant", picker),
      h("div", { class: "row" }, h("span", { class: "muted" }, "Thread: "), threadLabel, newThread),
    ),
    h(
      "div",
      { class: "grid two playground" },
      h("div", { class: "conversation" }, transcript, actionBox, errorBox, composer),
      panel.node,
    ),
  );

  // --- state shown in the page -------------------------------------------------------------

  function syncUrl() {
    const query = new URLSearchParams();
    if (picker.value) query.set("assistant", picker.value);
    if (state.threadId) query.set("thread", state.threadId);
    const search = query.toString();
    // replaceState: no hashchange, so the page is not rendered again.
    history.replaceState(null, "", `#/playground${search ? `?${search}` : ""}`);
  }

  function showThread() {
    threadLabel.textContent = state.threadId || "a new one starts with your first message";
  }

  function active() {
    return Boolean(state.streaming) || (state.run && !isTerminal(state.run.status));
  }

  function refreshControls() {
    const uploading = state.attachments.some((a) => !a.id);
    send.disabled = active() || uploading;
    send.textContent = uploading ? "Uploading…" : "Send";
  }

  function showError(message) {
    fill(errorBox, message ? h("p", { class: "notice error" }, message) : null);
  }

  function say(error) {
    if (error instanceof ApiError) {
      const what = error.code ? `${error.code}: ${errorText(error)}` : errorText(error);
      showError(`Error (HTTP ${error.status}) — ${what}`);
    } else {
      showError(`Error — ${errorText(error)}`);
    }
  }

  function addMessage(message) {
    const known = state.messages.get(message.id);
    if (known) {
      known.set(message);
      known.setStatus(message.status);
      return known;
    }
    const viewOf = new MessageView(message, media);
    viewOf.setStatus(message.status);
    if (message.id) state.messages.set(message.id, viewOf);
    transcript.append(viewOf.node);
    return viewOf;
  }

  function setRun(run) {
    state.run = run;
    panel.setRun(run);
    if (run.status === "failed" && run.last_error) {
      showError(`Run failed — ${errorLine(run.last_error)}`);
    } else if (run.status === "expired") {
      showError("The run expired.");
    }
    if (run.status === "requires_action") showActionForm(run);
    else actionBox.replaceChildren();
    refreshControls();
  }

  function codeCalls(step) {
    for (const call of step?.step_details?.tool_calls || []) {
      if (call.type !== "code_interpreter" || !call.id) continue;
      let callView = state.calls.get(call.id);
      if (!callView) {
        callView = new CodeCallView(media);
        state.calls.set(call.id, callView);
        transcript.append(callView.node);
      }
      callView.update(call);
    }
  }

  // --- streams -----------------------------------------------------------------------------

  function onEvent(name, data) {
    if (state.left) return;
    if (name === "thread.created") {
      state.threadId = data.id;
      showThread();
      syncUrl();
    } else if (name.startsWith("thread.run.step.")) {
      const step = name === "thread.run.step.delta" ? panel.stepDelta(data) : panel.step(data);
      codeCalls(step);
    } else if (name.startsWith("thread.run.")) {
      setRun(data);
    } else if (name === "thread.message.delta") {
      state.messages.get(data.id)?.delta(data.delta || {});
    } else if (name.startsWith("thread.message.")) {
      addMessage(data);
    } else if (name === "error") {
      const error = data?.error || data;
      showError(`Stream error — ${error?.code ? `${error.code}: ` : ""}${error?.message || String(data)}`);
    }
  }

  /** Read one run stream to its end, then settle the run's state from the server. */
  async function follow(start) {
    const controller = new AbortController();
    state.streaming = controller;
    // The log is read out once the answer is whole, not once per token.
    transcript.setAttribute("aria-busy", "true");
    refreshControls();
    try {
      await start(controller.signal);
    } catch (error) {
      if (controller.signal.aborted) return;
      say(error);
    } finally {
      if (state.streaming === controller) {
        state.streaming = null;
        transcript.setAttribute("aria-busy", "false");
      }
      if (!state.left) refreshControls();
    }
    if (!controller.signal.aborted) await settle();
  }

  /** After a stream: the run as stored, and its steps (all of them, with their outputs). */
  async function settle() {
    const run = state.run;
    if (!run || state.left) return;
    try {
      const latest = await get(`/threads/${run.thread_id}/runs/${run.id}`);
      if (state.left || state.run?.id !== run.id) return;
      setRun(latest);
      const steps = await page(`/threads/${run.thread_id}/runs/${run.id}/steps`, { limit: 100, order: "asc" });
      if (!state.left && state.run?.id === run.id) panel.setSteps(steps.data);
    } catch (error) {
      say(error);
    }
  }

  function startRun(threadId, assistantId) {
    return follow((signal) =>
      stream(`/threads/${threadId}/runs`, { assistant_id: assistantId }, onEvent, { signal }),
    );
  }

  // --- requires_action ---------------------------------------------------------------------

  function showActionForm(run) {
    const calls = run.required_action?.submit_tool_outputs?.tool_calls || [];
    const outputs = calls.map((call) =>
      h("textarea", { name: call.id, rows: 2, class: "code" }),
    );
    const form = h(
      "form",
      { class: "card tool-outputs", "aria-label": "Answer the function calls" },
      h("h2", {}, "The assistant calls functions"),
      h("p", { class: "muted" }, "Write each function's output; the run continues when you submit them."),
      calls.map((call, i) =>
        h(
          "fieldset",
          {},
          h("legend", {}, `${call.function.name} (${call.id})`),
          h("p", { class: "label" }, "Arguments"),
          h("pre", { tabindex: "0", "aria-label": `Arguments of ${call.function.name}` }, prettyJson(call.function.arguments)),
          field(`Output for ${call.function.name}`, outputs[i]),
        ),
      ),
      h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Submit outputs")),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const toolOutputs = calls.map((call, i) => ({ tool_call_id: call.id, output: outputs[i].value }));
      actionBox.replaceChildren();
      showError("");
      follow((signal) =>
        stream(
          `/threads/${run.thread_id}/runs/${run.id}/submit_tool_outputs`,
          { tool_outputs: toolOutputs },
          onEvent,
          { signal },
        ),
      );
    });
    actionBox.replaceChildren(form);
  }

  // --- cancel ------------------------------------------------------------------------------

  panel.cancel.addEventListener("click", async () => {
    const run = state.run;
    if (!run) return;
    panel.cancel.disabled = true;
    try {
      const cancelled = await post(`/threads/${run.thread_id}/runs/${run.id}/cancel`);
      // With a stream open, its events bring the cancellation; without one, ask until it ends.
      if (!state.streaming) {
        setRun(cancelled);
        for (let i = 0; i < 20 && !state.left && !isTerminal(state.run.status); i += 1) {
          await new Promise((resolve) => setTimeout(resolve, 500));
          setRun(await get(`/threads/${run.thread_id}/runs/${run.id}`));
        }
      }
    } catch (error) {
      say(error);
    } finally {
      panel.cancel.disabled = false;
    }
  });

  // --- composing ---------------------------------------------------------------------------

  function attachmentChip(entry) {
    const progress = h("progress", { max: 1, value: 0, "aria-label": `Uploading ${entry.file.name}` });
    const remove = h(
      "button",
      { type: "button", class: "link", "aria-label": `Remove ${entry.file.name}` },
      "Remove",
    );
    remove.addEventListener("click", () => {
      state.attachments = state.attachments.filter((a) => a !== entry);
      entry.node.remove();
      refreshControls();
    });
    entry.progress = progress;
    entry.node = h("li", {}, h("span", { class: "name" }, entry.file.name), progress, remove);
    return entry.node;
  }

  fileInput.addEventListener("change", () => {
    for (const file of fileInput.files) {
      const entry = { file, id: null };
      state.attachments.push(entry);
      chips.append(attachmentChip(entry));
      upload(file, "assistants", (fraction) => {
        entry.progress.value = fraction;
      })
        .then((uploaded) => {
          entry.id = uploaded.id;
          entry.progress.replaceWith(h("span", { class: "status completed" }, "uploaded"));
        })
        .catch((error) => {
          state.attachments = state.attachments.filter((a) => a !== entry);
          entry.node.remove();
          say(error);
        })
        .finally(refreshControls);
    }
    fileInput.value = "";
    refreshControls();
  });

  textarea.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      composer.requestSubmit();
    }
  });

  composer.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (send.disabled) return;
    const text = textarea.value.trim();
    const assistantId = picker.value;
    if (!assistantId) return showError("Choose an assistant first.");
    if (!text) return showError("Write a message first.");
    const tools = toolBoxes.map((l) => l.querySelector("input")).filter((b) => b.checked).map((b) => ({ type: b.value }));
    if (state.attachments.length && !tools.length) {
      return showError("Choose what the attached files are for (file search or code interpreter).");
    }
    const message = {
      role: "user",
      content: text,
      attachments: state.attachments.map((a) => ({ file_id: a.id, tools })),
    };
    showError("");
    send.disabled = true;
    try {
      if (!state.threadId) {
        const thread = await post("/threads", { messages: [message] });
        state.threadId = thread.id;
        showThread();
        syncUrl();
        const [first] = (await page(`/threads/${thread.id}/messages`, { limit: 1 })).data;
        if (first) addMessage(withNames(first));
      } else {
        addMessage(withNames(await post(`/threads/${state.threadId}/messages`, message)));
      }
    } catch (error) {
      refreshControls();
      return say(error);
    }
    textarea.value = "";
    state.attachments = [];
    chips.replaceChildren();
    await startRun(state.threadId, assistantId);
  });

  /** A sent message shows its files by name, which the message object doesn't carry. */
  function withNames(message) {
    const names = new Map(state.attachments.map((a) => [a.id, a.file.name]));
    return {
      ...message,
      attachments: (message.attachments || []).map((a) => ({ ...a, filename: names.get(a.file_id) })),
    };
  }

  // --- thread and assistant ----------------------------------------------------------------

  picker.addEventListener("change", syncUrl);
  newThread.addEventListener("click", () => {
    state.streaming?.abort();
    state.streaming = null;
    transcript.setAttribute("aria-busy", "false");
    state.threadId = null;
    state.run = null;
    state.messages.clear();
    state.calls.clear();
    transcript.replaceChildren();
    actionBox.replaceChildren();
    showError("");
    panel.clear();
    showThread();
    syncUrl();
    refreshControls();
    textarea.focus();
  });

  async function openThread(threadId) {
    await get(`/threads/${threadId}`); // a clear 404 for a wrong id
    for (const message of await allMessages(threadId)) addMessage(message);
    const [last] = (await page(`/threads/${threadId}/runs`, { limit: 1 })).data;
    if (!last) return;
    if (!picker.value && [...picker.options].some((o) => o.value === last.assistant_id)) {
      picker.value = last.assistant_id;
    }
    setRun(last);
    if (isTerminal(last.status) || last.status === "requires_action") {
      await settle();
    } else {
      // A run still going: follow it from where it is.
      follow((signal) => attach(`/threads/${threadId}/runs/${last.id}`, onEvent, { signal }));
    }
  }

  if (params.assistant) {
    if (![...picker.options].some((o) => o.value === params.assistant)) {
      picker.append(h("option", { value: params.assistant }, params.assistant));
    }
    picker.value = params.assistant;
  }
  showThread();
  refreshControls();
  if (state.threadId) {
    try {
      await openThread(state.threadId);
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) throw error; // to sign-in
      say(error);
    }
  }
  syncUrl();

  return () => {
    state.left = true;
    state.streaming?.abort();
    media.revokeAll();
  };
}

function prettyJson(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}
