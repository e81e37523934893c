// The CRM widget beside the open message. One code path for Thunderbird (the page is the
// message_display_action popup) and a plain tab at /widget/ (the message reference comes
// from the URL); only the small `host` adapter differs. Values from mail are only ever
// set with textContent / value, never as HTML.
"use strict";

const FIELDS = ["first_name", "last_name", "email", "company", "title", "phone", "mobile", "website", "street", "city", "state", "zip_code", "country", "description"];
const JUNK = /junk|spam|迷惑/i;
const $ = (id) => document.getElementById(id);
const state = { lang: "ja", settings: { backend: "", token: "" }, ref: null, raw: null, draft: null, invites: [], custom: [] };

// ---------------------------------------------------------------- host adapters

function tabHost() {
  return {
    async settings() {
      return { backend: localStorage.getItem("backend") || location.origin, token: localStorage.getItem("token") || "" };
    },
    async saveSettings(s) { localStorage.setItem("backend", s.backend); localStorage.setItem("token", s.token); },
    async message() {
      const q = new URLSearchParams(location.search);
      if (!q.get("uid") && !q.get("message_id")) return null;
      const ref = { folder: q.get("folder") || "INBOX" };
      for (const k of ["uid", "uidvalidity", "message_id", "mailbox_id"]) if (q.get(k)) ref[k] = q.get(k);
      return { ref, raw: null };
    },
    language() { return navigator.language || "ja"; },
  };
}

function thunderbirdHost() {
  const m = globalThis.messenger;
  return {
    async settings() { const s = await m.storage.local.get(["backend", "token"]); return { backend: s.backend || "", token: s.token || "" }; },
    async saveSettings(s) { await m.storage.local.set(s); },
    async message() {
      const [tab] = await m.tabs.query({ active: true, currentWindow: true });
      const msg = tab && (await m.messageDisplay.getDisplayedMessage(tab.id));
      if (!msg) return null;
      const ref = { folder: (msg.folder && msg.folder.path || "INBOX").replace(/^\//, ""), message_id: `<${msg.headerMessageId}>` };
      // The raw message, for a backend with no IMAP access to this account.
      return { ref, raw: async () => new Blob([await m.messages.getRaw(msg.id)]) };
    },
    language() { return m.i18n.getUILanguage(); },
  };
}

const host = globalThis.messenger && globalThis.messenger.messageDisplay ? thunderbirdHost() : tabHost();

// ---------------------------------------------------------------- texts

function t(key) { return (I18N[state.lang] && I18N[state.lang][key]) || I18N.en[key] || key; }

function applyTexts() {
  document.documentElement.lang = state.lang;
  $("lang").value = state.lang;
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
}

function say(key, detail) {
  $("status").textContent = detail || t(key);
}

function fail(err) {
  const box = $("error");
  let text = err && err.detail ? err.detail : t("unreachable");
  if (err && err.type === "unreachable") text = t("unreachable");
  if (err && (err.type === "invalid_token" || err.type === "missing_token")) { text = t("bad_token"); $("settings").hidden = false; }
  box.textContent = text;
  box.hidden = false;
}

// ---------------------------------------------------------------- API

async function api(path, { method = "GET", query = null, json = undefined, body = undefined, type = undefined } = {}) {
  const url = new URL(path, state.settings.backend || location.origin);
  if (query) for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, v);
  url.searchParams.set("lang", state.lang);
  const headers = { Authorization: `Bearer ${state.settings.token}`, "Accept-Language": state.lang };
  if (json !== undefined) { headers["Content-Type"] = "application/json"; body = JSON.stringify(json); }
  if (type) headers["Content-Type"] = type;
  let response;
  try {
    response = await fetch(url, { method, headers, body });
  } catch (_e) {
    throw { type: "unreachable" };
  }
  const data = response.status === 204 ? {} : await response.json().catch(() => ({ type: "bad_response", detail: `HTTP ${response.status}` }));
  if (!response.ok) throw Object.assign({ status: response.status }, data);
  data.status = response.status;
  return data;
}

// ---------------------------------------------------------------- lead draft

function fieldLabel(name) { return t(name === "title" ? "title_field" : name); }

function renderDraft(d) {
  const box = $("fields");
  box.replaceChildren();
  for (const name of FIELDS) {
    const f = d.lead[name];
    const id = `f-${name}`;
    const label = document.createElement("label");
    label.htmlFor = id;
    label.textContent = fieldLabel(name);
    const input = document.createElement("input");
    input.id = id;
    input.name = name;
    input.type = name === "email" ? "email" : "text";
    input.value = f && f.confident ? f.value : "";
    const error = document.createElement("p");
    error.className = "field-error";
    error.id = `${id}-error`;
    error.hidden = true;
    input.setAttribute("aria-describedby", error.id);
    box.append(label, input);
    if (f && !f.confident) {
      // An uncertain value is offered with the line it came from, never prefilled.
      const hint = document.createElement("p");
      hint.className = "suggestion";
      hint.textContent = `${t("suggestion")}: ${f.value}${f.line ? ` (${t("from_line")}: ${f.line})` : ""}`;
      const use = document.createElement("button");
      use.type = "button";
      use.textContent = t("use");
      use.setAttribute("aria-label", `${t("use")}: ${fieldLabel(name)}`);
      use.addEventListener("click", () => { input.value = f.value; input.focus(); });
      hint.append(use);
      box.append(hint);
    }
    box.append(error);
  }
  const warnings = $("warnings");
  warnings.replaceChildren(...d.warnings.map((w) => Object.assign(document.createElement("li"), { textContent: w.message })));
  showCaptured(d.captured);
  showExisting(d.existing);
  $("lead").hidden = false;
}

// The organisation's custom lead fields (admin-defined): typed inputs, filled by the user.
function renderCustom(fields) {
  const box = $("custom-fields");
  const kept = Object.fromEntries(fields.map((f) => [f.key, $(`c-${f.key}`) ? $(`c-${f.key}`).value : ""]));
  box.replaceChildren();
  for (const f of fields) {
    const id = `c-${f.key}`;
    const label = document.createElement("label");
    label.htmlFor = id;
    label.textContent = f.required ? `${f.label || f.key} (${t("required")})` : (f.label || f.key);
    let input;
    if (f.type === "picklist") {
      input = document.createElement("select");
      input.append(Object.assign(document.createElement("option"), { value: "", textContent: t("choose") }));
      for (const option of f.options) input.append(Object.assign(document.createElement("option"), { value: option, textContent: option }));
    } else {
      input = document.createElement("input");
      input.type = f.type === "number" ? "number" : f.type === "date" ? "date" : "text";
      if (f.type === "number") input.step = "any";
    }
    input.id = id;
    input.required = f.required;
    input.value = kept[f.key] || "";
    box.append(label, input);
  }
  $("custom").hidden = fields.length === 0;
}

function customValues() {
  const out = {};
  for (const f of state.custom) {
    const value = $(`c-${f.key}`).value.trim();
    if (value) out[f.key] = f.type === "number" ? Number(value) : value;
  }
  return out;
}

function showCaptured(lead) {
  $("captured").hidden = !lead;
  if (!lead) return;
  const link = $("captured-link");
  link.textContent = `${t("open_lead")}: ${[lead.last_name, lead.first_name].filter(Boolean).join(" ") || lead.email || "#" + lead.id}`;
  link.href = new URL(`/api/v1/leads/${encodeURIComponent(lead.id)}`, state.settings.backend || location.origin).href;
}

function showExisting(records) {
  const leads = (records || []).filter((r) => r.kind === "lead");
  $("existing").hidden = !records || records.length === 0;
  $("existing-list").replaceChildren(...(records || []).map((r) => {
    const li = document.createElement("li");
    li.textContent = [r.last_name, r.first_name, r.company, r.email].filter(Boolean).join(" / ");
    return li;
  }));
  const button = $("update-existing");
  button.hidden = leads.length === 0;
  button.dataset.leadId = leads.length ? leads[0].id : "";
  // "Create anyway" only while no unique rule has refused this lead (a 409 hides it).
  $("create-anyway").hidden = !records || records.length === 0;
}

function values() {
  const out = {};
  for (const name of FIELDS) {
    const input = $(`f-${name}`);
    input.removeAttribute("aria-invalid");
    $(`f-${name}-error`).hidden = true;
    out[name] = input.value.trim() || null;
  }
  return out;
}

async function save(updateId) {
  $("error").hidden = true;
  const body = Object.assign(values(), { message: state.draft.message });
  const custom = customValues();
  if (Object.keys(custom).length) body.custom = custom;
  if (updateId) body.update_existing_id = Number(updateId);
  try {
    const result = await api("/api/v1/leads", { method: "POST", json: body });
    say(result.outcome === "created" ? "saved" : result.outcome === "updated" ? "updated" : "already_captured");
    showCaptured(result.lead);
    $("existing").hidden = true;
  } catch (err) {
    if (err.status === 409 && err.existing) {
      showExisting([err.existing]);
      $("create-anyway").hidden = true;
      fail(err);
    } else if (err.status === 422 && err.errors) {
      for (const e of err.errors) {
        const input = $(`f-${e.field}`);
        if (!input) continue;
        input.setAttribute("aria-invalid", "true");
        const p = $(`f-${e.field}-error`);
        p.textContent = e.message;
        p.hidden = false;
      }
      fail(err);
    } else {
      fail(err);
    }
  }
}

// ---------------------------------------------------------------- spam

async function notSpam() {
  try {
    const r = await api("/api/v1/spam/not-spam", { method: "POST", json: state.draft.message });
    say("moved", `${t("moved")} (${r.folder} #${r.uid})`);
    $("spam").hidden = true;
  } catch (err) { fail(err); }
}

async function whySpam() {
  try {
    const r = await api("/api/v1/spam/diagnosis", { query: state.draft.message });
    $("why-list").replaceChildren(...r.explanation.map((line) => Object.assign(document.createElement("li"), { textContent: line })));
  } catch (err) { fail(err); }
}

// ---------------------------------------------------------------- invitations

function renderInvites(cards) {
  const box = $("invite-cards");
  box.replaceChildren();
  $("invites").hidden = cards.length === 0;
  for (const c of cards) {
    const card = document.createElement("div");
    card.className = "invite";
    const line = (text) => { const p = document.createElement("p"); p.textContent = text; card.append(p); return p; };
    line(c.summary).style.fontWeight = "600";
    line(t(`kind_${c.kind}`) + (c.verified ? "" : ` — ${t("verified_no")}`));
    line(`${c.start || ""}${c.end ? " – " + c.end : ""}`);
    if (c.location) line(c.location);
    if (c.organizer) line(c.organizer_name ? `${c.organizer_name} <${c.organizer}>` : c.organizer);
    if (c.online_url && c.online_url.startsWith("https://")) {
      const a = document.createElement("a");
      a.href = c.online_url;
      a.textContent = c.online_url;
      a.target = "_blank";
      a.rel = "noopener";
      card.append(a);
    }
    if (c.in_calendar) line(`${t("in_calendar")} (${c.own_partstat})`);
    if (c.method === "REQUEST" && ["new", "update_major", "update_minor", "outdated"].includes(c.kind)) {
      for (const [key, partstat] of [["accept", "ACCEPTED"], ["tentative", "TENTATIVE"], ["decline", "DECLINED"]]) {
        const b = document.createElement("button");
        b.type = "button";
        b.textContent = t(key);
        b.addEventListener("click", () => answer(c, partstat));
        card.append(b);
      }
    }
    box.append(card);
  }
}

async function answer(card, partstat) {
  try {
    await api("/api/v1/calendar/answer", { method: "POST", json: Object.assign({}, state.draft.message, { partstat, event_uid: card.uid }) });
    say("answered");
    await loadInvites();
  } catch (err) { fail(err); }
}

async function loadInvites() {
  try {
    const r = await api("/api/v1/calendar/invitation", { query: state.draft.message });
    state.invites = r.invitations;
    renderInvites(state.invites);
  } catch (_err) {
    $("invites").hidden = true; // no invitation part, or no calendar access: nothing to show
  }
}

// ---------------------------------------------------------------- start

async function load() {
  performance.mark("widget-open");
  $("error").hidden = true;
  const message = await host.message();
  if (!message) { say("no_message"); return; }
  state.ref = message.ref;
  state.raw = message.raw;
  say("loading");
  // Asked for beside the draft, not after it: the draft is never kept waiting.
  const fields = api("/api/v1/custom-fields").catch(() => []);
  let draft;
  try {
    draft = await api("/api/v1/messages/draft", { query: state.ref });
  } catch (err) {
    if (err.type === "no_mailbox" && state.raw) {
      draft = await api("/api/v1/messages/draft/raw", { method: "POST", body: await state.raw(), type: "message/rfc822", query: { folder: state.ref.folder } }).catch((e) => { fail(e); return null; });
      if (!draft) return;
    } else { fail(err); say(""); return; }
  }
  // The message reference the API resolved (UID, UIDVALIDITY) is what later calls send.
  draft.message = Object.fromEntries(Object.entries({ ...state.ref, ...draft.message }).filter(([k, v]) => v !== null && !["subject", "sender"].includes(k)));
  state.draft = draft;
  renderDraft(draft);
  fields.then((list) => { state.custom = list; renderCustom(list); });
  performance.mark("draft-shown");
  window.draftShownMs = performance.measure("draft", "widget-open", "draft-shown").duration;
  say("draft_ready");
  $("spam").hidden = !JUNK.test(state.ref.folder || "");
  loadInvites();
}

async function start() {
  state.settings = await host.settings();
  const preferred = localStorage.getItem("lang") || host.language();
  state.lang = preferred && preferred.toLowerCase().startsWith("en") ? "en" : "ja";
  applyTexts();
  $("backend").value = state.settings.backend;
  $("token").value = state.settings.token;
  $("lang").addEventListener("change", () => {
    state.lang = $("lang").value;
    localStorage.setItem("lang", state.lang);
    applyTexts();
    if (state.draft) renderDraft(state.draft);
    renderCustom(state.custom);
    renderInvites(state.invites);
  });
  $("open-settings").addEventListener("click", () => { $("settings").hidden = !$("settings").hidden; });
  $("settings").addEventListener("submit", async (e) => {
    e.preventDefault();
    state.settings = { backend: $("backend").value.trim().replace(/\/$/, ""), token: $("token").value.trim() };
    await host.saveSettings(state.settings);
    $("settings").hidden = true;
    load();
  });
  $("lead").addEventListener("submit", (e) => { e.preventDefault(); save(null); });
  $("update-existing").addEventListener("click", (e) => save(e.currentTarget.dataset.leadId));
  $("create-anyway").addEventListener("click", () => save(null));
  $("not-spam").addEventListener("click", notSpam);
  $("why-spam").addEventListener("click", whySpam);
  if (!state.settings.token) { $("settings").hidden = false; return; }
  load();
}

start();
