// The dashboard's script: the playground's streams, an evaluation's live progress, the quotas' refresh, and
// reading an uploaded suite into its form. Model text only ever reaches the page as text (textContent), never
// as markup; markup only comes from the server, which escapes it.
"use strict";

function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

// ---- Playground ---------------------------------------------------------------------------------------
function figure(dl, name) {
  const dt = el("dt", {}, name);
  const dd = el("dd", {}, "…");
  dl.append(dt, dd);
  return dd;
}

async function ask(form, option, column) {
  const answer = column.querySelector(".answer");
  const dl = column.querySelector(".figures");
  const latency = figure(dl, "latency");
  const first = figure(dl, "first token");
  const tokens = figure(dl, "tokens in / out");
  const speed = figure(dl, "tokens/s");
  const cost = figure(dl, "cost");
  const messages = [];
  const system = form.elements.system.value.trim();
  if (system) messages.push({ role: "system", content: system });
  messages.push({ role: "user", content: form.elements.user.value });
  const body = { model: option.value, messages };
  const t = parseFloat(form.elements.temperature.value);
  if (!Number.isNaN(t)) body.temperature = t;
  const m = parseInt(form.elements.max_tokens.value, 10);
  if (!Number.isNaN(m)) body.max_tokens = m;
  const started = performance.now();
  let firstAt = null;
  let usage = null;
  column.setAttribute("aria-busy", "true");
  try {
    const resp = await fetch("/ui/playground/chat", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    const left = resp.headers.get("x-ratelimit-remaining-requests");
    if (left !== null) {
      const limit = resp.headers.get("x-ratelimit-limit-requests");
      document.getElementById("left").textContent = `Requests left in your tightest window: ${left} of ${limit}.`;
    }
    if (!resp.ok || !(resp.headers.get("content-type") || "").startsWith("text/event-stream")) {
      let message = `the gateway answered ${resp.status}`;
      try {
        const j = await resp.json();
        if (j && j.error && j.error.message) message = j.error.message;
      } catch (_) { /* not JSON: the status says it */ }
      answer.textContent = message;
      answer.classList.add("error");
      answer.setAttribute("role", "alert");
      for (const dd of [latency, first, tokens, speed, cost]) dd.textContent = "-";
      return;
    }
    const reader = resp.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
        if (!data || data === "[DONE]") continue;
        let chunk;
        try { chunk = JSON.parse(data); } catch (_) { continue; }
        if (chunk.error) {
          answer.append(el("span", { class: "error", role: "alert" }, `\n${chunk.error.message}`));
          continue;
        }
        if (chunk.usage) usage = chunk.usage;
        for (const c of chunk.choices || []) {
          const text = c.delta && c.delta.content;
          if (text) {
            if (firstAt === null) {
              firstAt = performance.now();
              first.textContent = `${Math.round(firstAt - started)} ms`;
            }
            answer.append(document.createTextNode(text));
          }
        }
      }
    }
    const total = performance.now() - started;
    latency.textContent = `${Math.round(total)} ms`;
    if (firstAt === null) first.textContent = "-";
    if (usage) {
      tokens.textContent = `${usage.prompt_tokens} / ${usage.completion_tokens}`;
      // Output tokens over the time the answer streamed (after its first token).
      const streaming = firstAt === null ? total : total - (firstAt - started);
      speed.textContent = usage.completion_tokens > 1 && streaming > 0
        ? ((usage.completion_tokens - 1) / (streaming / 1000)).toFixed(1) : "-";
      const pin = parseFloat(option.dataset.in), pout = parseFloat(option.dataset.out);
      cost.textContent = Number.isNaN(pin) || Number.isNaN(pout) ? "no price known"
        : `$${((usage.prompt_tokens * pin + usage.completion_tokens * pout) / 1e6).toFixed(6)}`;
    } else {
      for (const dd of [tokens, speed, cost]) dd.textContent = "not reported";
    }
    column.dataset.done = "true";
  } catch (e) {
    answer.textContent = `the request failed: ${e.message}`;
    answer.classList.add("error");
  } finally {
    column.removeAttribute("aria-busy");
  }
}

function playground(form) {
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const answers = document.getElementById("answers");
    answers.replaceChildren();
    const chosen = [...form.querySelectorAll("select[name=model]")]
      .map((s) => s.selectedOptions[0]).filter((o) => o && o.value);
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    const runs = chosen.map((option) => {
      const column = el("section", { class: "column", "aria-label": `answer of ${option.value}` });
      column.append(el("h2", {}, option.value), el("pre", { class: "answer" }), el("dl", { class: "figures" }));
      answers.append(column);
      return ask(form, option, column);
    });
    await Promise.all(runs);
    button.disabled = false;
  });
}

// ---- Evaluate: live progress ----------------------------------------------------------------------------
function job(section) {
  const events = new EventSource(section.dataset.events);
  const bar = document.getElementById("job-bar");
  const tbody = section.querySelector("#job-cells tbody");
  events.addEventListener("progress", (ev) => {
    const p = JSON.parse(ev.data);
    document.getElementById("job-status").textContent = p.status;
    bar.max = Math.max(p.total, 1);
    bar.value = p.done;
    tbody.replaceChildren(...p.cells.map((c) => {
      const tr = el("tr");
      const bar = el("progress", { max: String(Math.max(c.total, 1)), "aria-label": `${c.model} × ${c.task}: test cases done` });
      bar.value = c.done;
      const cell = el("td");
      cell.append(bar);
      tr.append(el("td", {}, c.model), el("td", {}, c.task), cell, el("td", { class: "num" }, `${c.done} of ${c.total}`),
        el("td", { class: "num" }, String(c.passed)),
        el("td", { class: "num" }, c.latency_ms === null ? "-" : `${Math.round(c.latency_ms)} ms`));
      return tr;
    }));
    // The server renders this line (escaped); it links the recorded run.
    document.getElementById("job-result").innerHTML = p.result;
    const running = p.state === "running";
    document.getElementById("cancel").disabled = !running;
    document.getElementById("resume").disabled = running || p.state === "finished";
    section.dataset.state = p.state;
    if (!running) events.close();
  });
  events.onerror = () => {
    if (section.dataset.state && section.dataset.state !== "running") events.close();
  };
}

// ---- Quotas: refresh ---------------------------------------------------------------------------------
function refresh(section) {
  const every = Math.max(parseInt(section.dataset.refresh, 10) || 5, 2) * 1000;
  setInterval(async () => {
    if (document.hidden) return;
    try {
      const resp = await fetch(location.href, { headers: { accept: "text/html" } });
      if (!resp.ok) return;
      const doc = new DOMParser().parseFromString(await resp.text(), "text/html");
      const fresh = doc.getElementById(section.id);
      if (fresh) section.replaceChildren(...fresh.childNodes);
    } catch (_) { /* the next tick tries again */ }
  }, every);
}

// ---- A suite file into its text area ------------------------------------------------------------------
function upload(input) {
  input.addEventListener("change", async () => {
    const file = input.files && input.files[0];
    if (file) document.getElementById(input.dataset.into).value = await file.text();
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("playground");
  if (form) playground(form);
  const section = document.getElementById("job");
  if (section) job(section);
  for (const s of document.querySelectorAll("[data-refresh]")) refresh(s);
  for (const i of document.querySelectorAll("input[type=file][data-into]")) upload(i);
});
