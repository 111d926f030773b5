"use strict";
// The page of the course's job API: submit texts, follow the job's event stream, cancel it.
// No framework and no build step. What the API sends is put on the page with textContent, never
// innerHTML, so nothing a job returns can run as code here. The token stays in this tab
// (sessionStorage) and goes only to this API, in the Authorization header; the event stream,
// which cannot send headers, uses the short-lived link each job answer carries.

const TOKEN_KEY = "course-job-api-token";
const FINAL = new Set(["succeeded", "failed", "canceled"]);
const MOST_REOPENS = 3; // times the page reopens a closed stream of one job
const $ = (id) => document.getElementById(id);

let job = null; // the job on show, merged from its answers and events
let texts = []; // the texts it was given, shown beside its results
let stream = null; // its EventSource
let reopens = 0;

const token = () => sessionStorage.getItem(TOKEN_KEY) || "";

async function call(method, path, body) {
  const headers = { Authorization: `Bearer ${token()}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  return { response, data };
}

function problemText(response, data) {
  let text = data && data.detail ? data.detail : `${response.status} ${response.statusText}`;
  const wait = response.headers.get("Retry-After");
  if (wait && !response.ok) text += ` (try again in ${wait} s)`;
  return text;
}

function say(id, text) {
  $(id).textContent = text;
}

async function checkHealth() {
  try {
    const response = await fetch("/health");
    if (!response.ok) throw new Error(String(response.status));
    const health = await response.json();
    const kinds = $("kind");
    if (!kinds.options.length) {
      for (const kind of health.kinds) kinds.add(new Option(kind, kind, kind === "summary", kind === "summary"));
    }
    const limits = health.limits;
    say("limits", `At most ${limits.texts} texts of ${limits.text_chars} characters, ` +
      `${limits.total_chars} in all; ${limits.active_per_caller} unfinished jobs per caller.`);
    say("worker", health.worker === false
      ? "No worker answers: a job waits in the queue until one runs (make worker)."
      : health.worker ? "A worker answers." : "Looking for a worker…");
  } catch (error) {
    say("worker", "The API does not answer. Is it running? (make api)");
  }
}

async function showCaller() {
  if (!token()) {
    say("caller", "No token yet: the page keeps it in this tab only (sessionStorage).");
    return;
  }
  const { response, data } = await call("GET", "/jobs?limit=1");
  if (response.ok) {
    say("caller", `You are ${data.owner}.`);
  } else {
    sessionStorage.removeItem(TOKEN_KEY);
    say("caller", `That token was not accepted: ${problemText(response, data)}`);
  }
}

async function useToken(event) {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
  $("token").value = "";
  await showCaller();
}

function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
  showCaller();
}

async function submit(event) {
  event.preventDefault();
  say("error", "");
  if (!token()) {
    say("error", "Paste your token first.");
    return;
  }
  const lines = $("texts").value.split("\n").map((line) => line.trim()).filter(Boolean);
  $("submit").disabled = true;
  try {
    const { response, data } = await call("POST", "/jobs", { kind: $("kind").value, texts: lines });
    if (response.status !== 202) {
      say("error", problemText(response, data));
      return;
    }
    closeStream();
    job = null;
    texts = lines;
    reopens = 0;
    $("results").replaceChildren();
    show(data);
    follow(data.links.events);
  } catch (error) {
    say("error", `The API did not answer: ${error.message}`);
  } finally {
    $("submit").disabled = false;
  }
}

function follow(url) {
  stream = new EventSource(url);
  say("stream", "· live");
  stream.addEventListener("progress", (event) => show(JSON.parse(event.data)));
  for (const end of ["done", "failed", "canceled"]) {
    stream.addEventListener(end, (event) => {
      show(JSON.parse(event.data));
      closeStream();
      say("stream", "· the stream ended");
    });
  }
  stream.onerror = () => {
    if (!stream) return;
    if (stream.readyState === EventSource.CLOSED) {
      closeStream();
      say("stream", "· the stream closed; asking for the job once");
      askOnce();
    } else {
      say("stream", "· connection lost, reconnecting…");
    }
  };
  stream.onopen = () => say("stream", "· live");
}

function closeStream() {
  if (stream) stream.close();
  stream = null;
}

async function askOnce() {
  const { response, data } = await call("GET", job.links.self);
  if (!response.ok) {
    say("error", problemText(response, data));
    return;
  }
  show(data);
  if (FINAL.has(data.status)) {
    say("stream", "");
  } else if (reopens < MOST_REOPENS) {
    reopens += 1;
    follow(data.links.events);
  } else {
    say("error", "The progress stream keeps closing. Reload the page to try again.");
  }
}

async function cancel() {
  say("error", "");
  const { response, data } = await call("DELETE", job.links.self);
  if (response.status === 202) show(data);
  else say("error", problemText(response, data));
}

function show(update) {
  const waitingNote = job && job.message;
  job = { ...job, ...update };
  if (job.status === "queued" && !update.message) job.message = waitingNote;
  $("job").hidden = false;
  say("job-id", job.id.slice(0, 8));
  say("status", job.status);
  $("status").className = `status ${job.status}`;
  const { current, total } = job.progress;
  $("bar").max = Math.max(total, 1);
  $("bar").value = current;
  say("count", `${current} / ${total}`);
  say("message", job.status === "queued" ? job.message || "" : job.error ? `Error: ${job.error}` : "");
  $("cancel").disabled = FINAL.has(job.status);
  if (job.result) showResults(job.result);
}

function showResults(outputs) {
  const items = outputs.map((output, index) => {
    const item = document.createElement("li");
    const text = document.createElement("span");
    text.className = "text";
    text.textContent = texts[index] || "";
    item.append(text, typeof output === "string" ? output : JSON.stringify(output));
    return item;
  });
  $("results").replaceChildren(...items);
}

document.addEventListener("DOMContentLoaded", () => {
  $("token-form").addEventListener("submit", useToken);
  $("forget").addEventListener("click", forgetToken);
  $("job-form").addEventListener("submit", submit);
  $("cancel").addEventListener("click", cancel);
  checkHealth();
  showCaller();
  setInterval(checkHealth, 5000);
});
