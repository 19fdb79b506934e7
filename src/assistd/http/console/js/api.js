// The console's only way to the server: the public /v1 API, as the SDK calls it.
//
// The API key lives in the tab's session storage. Every response names the key's project
// in its `openai-project` header, which the layout shows. Errors are OpenAI's envelope,
// thrown as ApiError so pages can show `message` (and `param`) as they are.

const BASE = new URL("../v1", document.baseURI).pathname.replace(/\/$/, "");
const KEY = "assistd.apiKey";

export class ApiError extends Error {
  constructor(status, error) {
    super(error?.message || `HTTP ${status}`);
    this.status = status;
    this.type = error?.type ?? null;
    this.code = error?.code ?? null;
    this.param = error?.param ?? null;
  }
}

export const session = {
  get key() {
    return sessionStorage.getItem(KEY) || "";
  },
  set key(value) {
    if (value) sessionStorage.setItem(KEY, value);
    else sessionStorage.removeItem(KEY);
  },
  project: null,
  onProject: () => {},
};

function headers(extra = {}) {
  const out = { "OpenAI-Beta": "assistants=v2", ...extra };
  if (session.key) out.Authorization = `Bearer ${session.key}`;
  return out;
}

function noteProject(response) {
  const project = response.headers.get("openai-project");
  if (project && project !== session.project) {
    session.project = project;
    session.onProject(project);
  }
}

export function url(path, query) {
  const target = new URL(BASE + path, location.origin);
  for (const [name, value] of Object.entries(query || {})) {
    if (value === undefined || value === null || value === "") continue;
    for (const item of Array.isArray(value) ? value : [value]) {
      target.searchParams.append(name, String(item));
    }
  }
  return target.pathname + target.search;
}

async function failure(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  return new ApiError(response.status, body?.error);
}

/** One call; the parsed JSON (or the Response itself with `raw`). */
export async function request(method, path, { query, json, form, raw, signal } = {}) {
  const init = { method, headers: headers(), signal };
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  } else if (form !== undefined) {
    init.body = form;
  }
  const response = await fetch(url(path, query), init);
  noteProject(response);
  if (!response.ok) throw await failure(response);
  return raw ? response : response.json();
}

/** Whether the server answers without any key (open mode: no keys configured, loopback). */
export async function openMode() {
  const response = await fetch(url("/models"), { headers: { "OpenAI-Beta": "assistants=v2" } });
  return response.ok;
}

export const get = (path, query, options = {}) => request("GET", path, { ...options, query });
export const post = (path, json, options = {}) => request("POST", path, { ...options, json });
export const del = (path, options = {}) => request("DELETE", path, options);

/** One page of a list: `{data, first_id, last_id, has_more}`. */
export function page(path, { limit = 20, after, before, order = "desc", ...query } = {}) {
  return get(path, { limit, after, before, order, ...query });
}

/** The file's bytes as a blob URL (the content needs the key, so no plain <img src>). */
export async function blobUrl(fileId) {
  const response = await request("GET", `/files/${encodeURIComponent(fileId)}/content`, {
    raw: true,
  });
  return URL.createObjectURL(await response.blob());
}

/** The file's bytes as text. */
export async function fileText(fileId) {
  const response = await request("GET", `/files/${encodeURIComponent(fileId)}/content`, {
    raw: true,
  });
  return response.text();
}

/** Upload one file with progress (fetch cannot report upload progress; XHR can). */
export function upload(file, purpose, onProgress = () => {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url("/files"));
    for (const [name, value] of Object.entries(headers())) xhr.setRequestHeader(name, value);
    xhr.upload.onprogress = (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    };
    xhr.onload = () => {
      const project = xhr.getResponseHeader("openai-project");
      if (project) noteProject({ headers: { get: () => project } });
      let body = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        body = null;
      }
      if (xhr.status >= 200 && xhr.status < 300) {
        onProgress(1);
        resolve(body);
      } else {
        reject(new ApiError(xhr.status, body?.error));
      }
    };
    xhr.onerror = () => reject(new ApiError(0, { message: "The upload failed (network error)." }));
    const form = new FormData();
    form.append("purpose", purpose);
    form.append("file", file, file.name);
    xhr.send(form);
  });
}

/**
 * POST with `stream: true` and read the server-sent events: `onEvent(name, data)` for each
 * (data parsed as JSON when it is JSON). Resolves when the stream ends.
 */
export async function stream(path, json, onEvent, { signal } = {}) {
  const response = await fetch(url(path), {
    method: "POST",
    headers: headers({ "Content-Type": "application/json", Accept: "text/event-stream" }),
    body: JSON.stringify({ ...json, stream: true }),
    signal,
  });
  noteProject(response);
  if (!response.ok) throw await failure(response);
  await readEvents(response, onEvent);
}

/** GET an event stream (attach to a run: `.../runs/{id}?stream=true`). */
export async function attach(path, onEvent, { signal, lastEventId } = {}) {
  const extra = { Accept: "text/event-stream" };
  if (lastEventId) extra["Last-Event-ID"] = lastEventId;
  const response = await fetch(url(path, { stream: "true" }), { headers: headers(extra), signal });
  noteProject(response);
  if (!response.ok) throw await failure(response);
  await readEvents(response, onEvent);
}

async function readEvents(response, onEvent) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) !== -1) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      dispatch(frame, onEvent);
    }
  }
  if (buffer.trim()) dispatch(buffer, onEvent);
}

function dispatch(frame, onEvent) {
  let name = "message";
  const data = [];
  for (const line of frame.split("\n")) {
    if (line.startsWith("event:")) name = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
  }
  if (!data.length) return; // a keep-alive comment
  const text = data.join("\n");
  let parsed = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = text;
  }
  onEvent(name, parsed);
}
