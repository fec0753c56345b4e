// smsbridge support console: plain DOM, no framework, no build step.
// The token lives in this closure only (no cookie, no storage); every value is written with
// textContent, never parsed as HTML.
"use strict";

(() => {
  let token = null;
  let support = false;
  let query = null; // the URLSearchParams of the current search (without a cursor)
  const pages = []; // cursors of the pages shown so far: pages[i] opened page i
  let nextCursor = null;

  const $ = (id) => document.getElementById(id);

  function cell(row, text, className) {
    const td = document.createElement("td");
    td.textContent = text === undefined || text === null ? "" : String(text);
    if (className) td.className = className;
    row.appendChild(td);
    return td;
  }

  function statusBadge(status) {
    const span = document.createElement("span");
    span.className = "status status-" + String(status).replace(/[^a-z-]/g, "");
    span.textContent = status;
    return span;
  }

  async function api(path) {
    const answer = await fetch(path, {
      headers: { Authorization: "Bearer " + token, Accept: "application/json" },
      cache: "no-store",
      credentials: "omit",
    });
    let body = null;
    try {
      body = await answer.json();
    } catch (e) {
      body = null;
    }
    return { status: answer.status, body: body };
  }

  function problem(answer) {
    const body = answer.body || {};
    const where = body.parameter ? body.parameter + ": " : "";
    return where + (body.message || "HTTP " + answer.status);
  }

  // --- sign in / out ----------------------------------------------------------------------

  async function signIn(event) {
    event.preventDefault();
    const field = $("token");
    token = field.value.trim();
    field.value = "";
    $("sign-in-error").textContent = "";
    const answer = await api("/v1/me");
    if (answer.status !== 200) {
      token = null;
      $("sign-in-error").textContent =
        answer.status === 401 ? "That token is not known." : problem(answer);
      return;
    }
    support = answer.body.kind === "support";
    $("sign-in-panel").hidden = true;
    $("main").hidden = false;
    $("sign-out").hidden = false;
    $("who").hidden = false;
    $("who").textContent = support
      ? answer.body.client + " (support: every client, masked)"
      : answer.body.client + " (own messages)";
    $("carriers-panel").hidden = !support;
    if (support) {
      const carriers = await api("/v1/carriers");
      if (carriers.status === 200) showCarriers(carriers.body.carriers || {});
    }
    defaultWindow();
  }

  function signOut() {
    token = null;
    support = false;
    query = null;
    pages.length = 0;
    nextCursor = null;
    $("results").tBodies[0].replaceChildren();
    $("page-info").textContent = "";
    $("timeline").replaceChildren();
    $("timeline-panel").hidden = true;
    $("main").hidden = true;
    $("sign-out").hidden = true;
    $("who").hidden = true;
    $("sign-in-panel").hidden = false;
  }

  function showCarriers(carriers) {
    const body = $("carriers").tBodies[0];
    body.replaceChildren();
    for (const name of Object.keys(carriers).sort()) {
      const c = carriers[name];
      const row = body.insertRow();
      cell(row, name);
      cell(row, c.circuit, "circuit-" + String(c.circuit).replace(/[^a-z-]/g, ""));
      cell(row, c.since || "-");
      cell(row, c.failures);
      cell(row, c.delivery_rate_24h === null ? "-" : (c.delivery_rate_24h * 100).toFixed(1) + "%");
      cell(row, c.outcomes_24h);
    }
  }

  // --- search -------------------------------------------------------------------------------

  function utcInput(date) {
    return date.toISOString().slice(0, 19);
  }

  function defaultWindow() {
    const now = new Date();
    if (!$("until").value) $("until").value = utcInput(new Date(now.getTime() + 60000));
    if (!$("since").value) $("since").value = utcInput(new Date(now.getTime() - 86400000));
  }

  function search(event) {
    event.preventDefault();
    query = new URLSearchParams();
    const to = $("to").value.trim();
    if (to) query.set("to", to);
    if ($("since").value) query.set("since", $("since").value + "Z");
    if ($("until").value) query.set("until", $("until").value + "Z");
    if ($("status").value) query.set("status", $("status").value);
    query.set("limit", $("limit").value);
    pages.length = 0;
    $("page-info").textContent = "";
    showPage(null);
  }

  async function showPage(cursor) {
    const params = new URLSearchParams(query);
    if (cursor) params.set("cursor", cursor);
    $("search-error").textContent = "";
    const answer = await api("/v1/messages?" + params.toString());
    if (answer.status !== 200) {
      $("search-error").textContent = problem(answer);
      return;
    }
    pages.push(cursor);
    nextCursor = answer.body.next_cursor;
    const body = $("results").tBodies[0];
    body.replaceChildren();
    for (const m of answer.body.messages) {
      const row = body.insertRow();
      row.dataset.client = m.client;
      row.dataset.messageId = m.message_id;
      cell(row, m.inserted_at);
      cell(row, m.client);
      cell(row, m.message_id, "mid");
      cell(row, m.phone_number);
      cell(row, m.carrier);
      cell(row, m.type);
      cell(row, "").appendChild(statusBadge(m.status));
      cell(row, m.description);
      cell(row, m.body, "body");
      const open = document.createElement("button");
      open.type = "button";
      open.className = "history";
      open.textContent = "history";
      open.addEventListener("click", () => showHistory(m.client, m.message_id));
      cell(row, "").appendChild(open);
    }
    $("no-results").hidden = answer.body.messages.length > 0;
    $("page-info").textContent = "page " + pages.length;
    $("prev").disabled = pages.length < 2;
    $("next").disabled = !nextCursor;
  }

  function nextPage() {
    if (nextCursor) showPage(nextCursor);
  }

  function previousPage() {
    if (pages.length < 2) return;
    pages.pop();
    const cursor = pages.pop();
    showPage(cursor);
  }

  // --- a message's history ------------------------------------------------------------------

  async function showHistory(client, messageId) {
    const path = support
      ? "/v1/messages/" + encodeURIComponent(client) + "/" + encodeURIComponent(messageId)
      : "/v1/messages/" + encodeURIComponent(messageId);
    const answer = await api(path);
    $("timeline-panel").hidden = false;
    $("timeline-title").textContent = client + " / " + messageId;
    const list = $("timeline");
    list.replaceChildren();
    if (answer.status !== 200) {
      const item = document.createElement("li");
      item.textContent = problem(answer);
      list.appendChild(item);
      return;
    }
    for (const entry of answer.body.history || []) {
      const item = document.createElement("li");
      const time = document.createElement("time");
      time.textContent = entry.at;
      item.appendChild(time);
      item.appendChild(statusBadge(entry.status));
      const detail = document.createElement("span");
      detail.className = "detail";
      detail.textContent = [entry.source, entry.gateway_status, entry.description]
        .filter(Boolean)
        .join(" · ");
      item.appendChild(detail);
      list.appendChild(item);
    }
    $("timeline-panel").scrollIntoView({ block: "nearest" });
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("sign-in").addEventListener("submit", signIn);
    $("sign-out").addEventListener("click", signOut);
    $("search").addEventListener("submit", search);
    $("next").addEventListener("click", nextPage);
    $("prev").addEventListener("click", previousPage);
  });
})();
