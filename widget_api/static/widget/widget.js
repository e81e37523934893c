// The CRM widget beside the open message. One code path for Thunderbird (the page is the
// message_display_action popup) and a plain tab at /widget/ (the message reference comes
// from the URL); only the small `host` adapter differs. Values from mail are only ever
// set with textContent / value, never as HTML.
"use strict";

const FIELDS = ["first_name", "last_name", "email", "company", "title", "phone", "mobile", "website", "street", "city", "state", "zip_code", "country", "description"];
// A name in Chinese characters, kana or hangul is written family name first (山田 太郎); one
// in Latin letters given name first (Taro Yamada): the name's language decides, not the reader's.
const CJK = /[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff\uac00-\ud7af]/;
const $ = (id) => document.getElementById(id);
const state = { lang: "ja", settings: { backend: "", token: "" }, managedBackend: "", ref: null, raw: null, specialUse: [], draft: null, invites: [], records: [], custom: [], config: null, generation: 0 };

// ---------------------------------------------------------------- host adapters

function tabHost() {
  return {
    async settings() {
      return { backend: localStorage.getItem("backend") || location.origin, token: localStorage.getItem("token") || "" };
    },
    async managedBackend() { return ""; },
    async saveSettings(s) { localStorage.setItem("backend", s.backend); localStorage.setItem("token", s.token); },
    async message() {
      const q = new URLSearchParams(location.search);
      if (!q.get("uid") && !q.get("message_id")) return null;
      const ref = { folder: q.get("folder") || "INBOX" };
      for (const k of ["uid", "uidvalidity", "message_id", "mailbox_id", "special_use"]) if (q.get(k)) ref[k] = q.get(k);
      return { ref, raw: null, specialUse: q.get("special_use") ? [q.get("special_use")] : [] };
    },
    language() { return navigator.language || "ja"; },
    onMessageChange() {},
    async pair() { return { ok: false, error: "pair_unavailable" }; },
    openLink(url) { window.open(url, "_blank", "noopener"); },
  };
}

function thunderbirdHost() {
  const m = globalThis.messenger;
  return {
    async settings() { const s = await m.storage.local.get(["backend", "token"]); return { backend: s.backend || "", token: s.token || "" }; },
    // An admin may preset the URL for everyone (policies.json "3rdparty", or a managed-storage
    // manifest): storage.managed rejects when nothing is set.
    async managedBackend() { try { return ((await m.storage.managed.get("backend_url")).backend_url || "").trim(); } catch (_e) { return ""; } },
    async saveSettings(s) { await m.storage.local.set(s); },
    async message() {
      const [tab] = await m.tabs.query({ active: true, currentWindow: true });
      if (!tab) return null;
      const shown = await m.messageDisplay.getDisplayedMessages(tab.id);
      const list = Array.isArray(shown) ? shown : (shown && shown.messages) || [];
      if (list.length !== 1) return null;
      const msg = list[0];
      const folder = msg.folder || {};
      const specialUse = folder.specialUse || [];
      // The Message-ID identifies the message on the server (it survives moves and restarts);
      // Thunderbird's folder path is only a hint: the backend resolves the server's own name.
      const ref = { message_id: `<${msg.headerMessageId}>`, folder: (folder.path || "").replace(/^\//, "") || "INBOX" };
      if (specialUse.length) ref.special_use = specialUse[0];
      // The raw message, for a backend with no IMAP access to this account: a File, sent
      // as is, so every byte (ISO-2022-JP, 8-bit Shift_JIS) arrives unchanged.
      const raw = () => m.messages.getRaw(msg.id, { data_format: "File" });
      // A message without a Message-ID gets an "md5:…" one from Thunderbird that no server
      // knows: only its bytes can be read.
      return { ref, specialUse, raw, rawOnly: msg.headerMessageId.startsWith("md5:") };
    },
    onMessageChange(listener) { m.messageDisplay.onMessagesDisplayed.addListener(() => listener()); },
    language() { return m.i18n.getUILanguage(); },
    pair(backend) { return m.runtime.sendMessage({ type: "pair", backend, clientName: "Thunderbird" }); },
    openLink(url) { m.windows.openDefaultBrowser(url); },
  };
}

const host = globalThis.messenger && globalThis.messenger.messageDisplay ? thunderbirdHost() : tabHost();

// ---------------------------------------------------------------- texts and feedback

function t(key, values) {
  const text = (I18N[state.lang] && I18N[state.lang][key]) || I18N.en[key] || key;
  return values ? text.replace(/\{(\w+)\}/g, (_m, k) => (k in values ? values[k] : `{${k}}`)) : text;
}

function applyTexts() {
  document.documentElement.lang = state.lang;
  $("lang").value = state.lang;
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
}

function displayName(first, last) {
  const parts = CJK.test(`${first || ""}${last || ""}`) ? [last, first] : [first, last];
  return parts.filter(Boolean).join(" ");
}

function say(text) { $("status").textContent = text || ""; }

// What went wrong, in words that point the right way: the network, the backend refusing this
// extension, the connection (token), or the backend itself.
function explain(err) {
  if (!err) return t("backend_error", { status: "?" });
  if (err.type === "unreachable") return t("unreachable", { url: state.settings.backend });
  if (err.type === "blocked") return t("blocked", { url: state.settings.backend });
  if (err.status === 401 || ["invalid_token", "missing_token"].includes(err.type)) return t("signed_out");
  if (err.status >= 500) return `${t("backend_error", { status: err.status })}${err.detail ? ` (${err.detail})` : ""}`;
  return err.detail || t("backend_error", { status: err.status });
}

// Feedback next to the button pressed (`where`: its output element); a lost connection also
// opens the settings so the user can connect again.
function feedback(where, kind, text) {
  where.textContent = text;
  where.dataset.kind = kind;
  where.scrollIntoView({ block: "nearest" });
}

function failAt(where, err) {
  feedback(where, "error", explain(err));
  if (err && (err.status === 401 || ["invalid_token", "missing_token"].includes(err.type))) showSettings();
}

function fail(err) {
  const box = $("error");
  box.textContent = explain(err);
  box.hidden = false;
  if (err && (err.status === 401 || ["invalid_token", "missing_token"].includes(err.type))) showSettings();
}

// ---------------------------------------------------------------- API

function backendUrl(path) { return new URL(path, state.settings.backend || location.origin); }

async function api(path, { method = "GET", query = null, json = undefined, body = undefined, type = undefined } = {}) {
  const url = backendUrl(path);
  if (query) for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, v);
  url.searchParams.set("lang", state.lang);
  const headers = { Authorization: `Bearer ${state.settings.token}`, "Accept-Language": state.lang };
  if (json !== undefined) { headers["Content-Type"] = "application/json"; body = JSON.stringify(json); }
  if (type) headers["Content-Type"] = type;
  let response;
  try {
    response = await fetch(url, { method, headers, body });
  } catch (_e) {
    throw { type: await whyUnreachable() };
  }
  const data = response.status === 204 ? {} : await response.json().catch(() => ({ type: "bad_response", detail: `HTTP ${response.status}` }));
  // An error carries its HTTP status as `status`; an answer keeps its own fields (a lead's
  // `status` is its stage).
  if (!response.ok) throw Object.assign({}, data, { status: response.status });
  return data;
}

// fetch() says only "NetworkError" both when the server is down and when it answered without
// allowing this origin (CORS). A no-cors request tells them apart: it succeeds (opaquely)
// whenever the server answers at all.
async function whyUnreachable() {
  try {
    await fetch(backendUrl("/api/v1/health"), { mode: "no-cors", cache: "no-store" });
    return "blocked";
  } catch (_e) {
    return "unreachable";
  }
}

// ---------------------------------------------------------------- lead draft

function fieldLabel(name) { return t(name === "title" ? "title_field" : name); }

function fieldOrder(lead) {
  const first = lead.first_name && lead.first_name.value, last = lead.last_name && lead.last_name.value;
  if (!CJK.test(`${first || ""}${last || ""}`)) return FIELDS;
  return ["last_name", "first_name", ...FIELDS.filter((f) => f !== "first_name" && f !== "last_name")];
}

// Renders one person's draft (`d.lead`): a later "sender / forwarded person" switch only
// needs to call this with the other person's fields.
function renderDraft(d) {
  const box = $("fields");
  const kept = Object.fromEntries(FIELDS.map((n) => [n, $(`f-${n}`) ? $(`f-${n}`).value : null]));
  box.replaceChildren();
  for (const name of fieldOrder(d.lead)) {
    const f = d.lead[name];
    const id = `f-${name}`;
    const label = document.createElement("label");
    label.htmlFor = id;
    label.textContent = fieldLabel(name);
    const input = document.createElement("input");
    input.id = id;
    input.name = name;
    input.type = name === "email" ? "email" : "text";
    input.value = d.rendered && kept[name] !== null ? kept[name] : (f && f.confident ? f.value : "");
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
  d.rendered = true;
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

function leadUrl(lead) {
  const template = (state.config && state.config.lead_url) || "/leads/{id}";
  return backendUrl(template.replace("{id}", encodeURIComponent(lead.id))).href;
}

function showCaptured(lead) {
  $("captured").hidden = !lead;
  if (!lead) return;
  const link = $("captured-link");
  link.textContent = `${t("open_lead")}: ${displayName(lead.first_name, lead.last_name) || lead.email || "#" + lead.id}`;
  link.href = leadUrl(lead);
}

function showExisting(records) {
  const leads = (records || []).filter((r) => r.kind === "lead");
  $("existing").hidden = !records || records.length === 0;
  $("existing-list").replaceChildren(...(records || []).map((r) => {
    const li = document.createElement("li");
    li.textContent = [displayName(r.first_name, r.last_name), r.company, r.email].filter(Boolean).join(" / ");
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

async function save(updateId, where) {
  $("error").hidden = true;
  const body = Object.assign(values(), { message: state.draft.message });
  const custom = customValues();
  if (Object.keys(custom).length) body.custom = custom;
  if (updateId) body.update_existing_id = Number(updateId);
  feedback(where, "busy", t("saving"));
  try {
    const result = await api("/api/v1/leads", { method: "POST", json: body });
    const text = t(result.outcome === "created" ? "saved" : result.outcome === "updated" ? "updated" : "already_captured");
    feedback(where, "ok", text);
    say(text);
    showCaptured(result.lead);
    $("existing").hidden = true;
  } catch (err) {
    if (err.status === 409 && err.existing) {
      showExisting([err.existing]);
      $("create-anyway").hidden = true;
      failAt($("existing-status"), err);
      feedback(where, "error", explain(err));
    } else if (err.status === 422 && err.errors) {
      for (const e of err.errors) {
        const input = $(`f-${e.field}`);
        if (!input) continue;
        input.setAttribute("aria-invalid", "true");
        const p = $(`f-${e.field}-error`);
        p.textContent = e.message;
        p.hidden = false;
      }
      failAt(where, err);
    } else {
      failAt(where, err);
    }
  }
}

// ---------------------------------------------------------------- CRM records of the sender

// The records the sender matches (leads, contacts, accounts by domain) and those the user
// found by searching, each a card with a tick box: the mail is logged to the ticked ones.
// With several matches none is ticked: the user chooses, nothing is chosen for them.
const PATHS = { lead: "leads", contact: "contacts", account: "accounts" };
const recordKey = (r) => `${r.type}-${r.id}`;

function senderAddress(d) {
  if (d.values && d.values.email) return d.values.email;
  const sender = (d.message && d.message.sender) || "";
  const angle = sender.match(/<([^>]+)>/);
  return angle ? angle[1] : sender.trim();
}

function fieldText(name) {
  return t(name === "title" ? "title_field" : name === "status" ? "status_field" : name);
}

function renderTimeline(list, entries) {
  list.replaceChildren();
  if (!entries.length) { list.append(Object.assign(document.createElement("li"), { textContent: t("no_entries") })); return; }
  for (const e of entries) {
    const li = document.createElement("li");
    li.className = `entry entry-${e.kind}`;
    li.textContent = `${String(e.at).slice(0, 16).replace("T", " ")} ${t(`entry_${e.kind}`)}${e.summary ? `: ${e.summary}` : ""}`;
    list.append(li);
  }
}

function renderRecord(r, ticked) {
  const card = document.createElement("div");
  card.className = "record";
  card.id = `rec-${recordKey(r)}`;
  const pick = document.createElement("label");
  pick.className = "pick";
  const box = Object.assign(document.createElement("input"), { type: "checkbox", checked: ticked });
  box.dataset.type = r.type;
  box.dataset.id = r.id;
  const name = document.createElement("span");
  name.textContent = `${t(`type_${r.type}`)}: ${r.title || "#" + r.id}${r.reason ? ` (${t(`reason_${r.reason}`)})` : ""}`;
  pick.append(box, name);
  card.append(pick);
  const dl = document.createElement("dl");
  for (const [k, v] of Object.entries(r.fields)) {
    if (!v || ["first_name", "last_name"].includes(k) || (k === "status" && hasStage(r))) continue;
    dl.append(Object.assign(document.createElement("dt"), { textContent: fieldText(k) }), Object.assign(document.createElement("dd"), { textContent: k === "status" && r.type === "lead" ? t(`lead_status_${v}`) : v }));
  }
  if (r.owner) dl.append(Object.assign(document.createElement("dt"), { textContent: t("owner") }), Object.assign(document.createElement("dd"), { textContent: r.owner.name || r.owner.email }));
  if (r.campaigns.length) {
    dl.append(Object.assign(document.createElement("dt"), { textContent: t("campaigns") }),
      Object.assign(document.createElement("dd"), { textContent: r.campaigns.map((c) => `${c.name} (${c.status})`).join(", ") }));
  }
  card.append(dl);
  card.append(Object.assign(document.createElement("p"), { className: "hint", textContent: t("recent") }));
  const list = document.createElement("ol");
  list.className = "timeline";
  renderTimeline(list, r.timeline || []);
  card.append(list);
  const status = Object.assign(document.createElement("p"), { className: "feedback" });
  status.setAttribute("role", "status");
  if (hasStage(r)) {
    const label = Object.assign(document.createElement("label"), { className: "stage", textContent: `${t("status_field")} ` });
    const select = Object.assign(document.createElement("select"), { className: "stage" });
    for (const s of STAGES) select.append(Object.assign(document.createElement("option"), { value: s, textContent: t(`lead_status_${s}`), selected: s === r.fields.status }));
    select.addEventListener("change", () => setStage(r, select.value, status));
    label.append(select);
    card.append(label);
  }
  if (r.type !== "account" || !r.fields.website) {
    const fill = Object.assign(document.createElement("button"), { type: "button", className: "fill-empty", textContent: t("update_empty") });
    fill.addEventListener("click", () => fillEmpty(r, status));
    card.append(fill);
  }
  card.append(status);
  return card;
}

// The stages a rep sets (a converted lead's is the conversion's: shown, not offered).
const STAGES = ["open", "contacted", "qualified", "unqualified"];

function hasStage(r) {
  return r.type === "lead" && STAGES.includes(r.fields.status);
}

async function setStage(record, stage, where) {
  feedback(where, "busy", t("saving_stage"));
  try {
    const lead = await api(`/api/v1/leads/${record.id}/status`, { method: "PUT", json: { status: stage } });
    record.fields.status = lead.status;
    record.timeline = (await api(`/api/v1/leads/${record.id}/timeline`, { query: { limit: 5 } })).entries;
    renderRecords();
    const fresh = document.querySelector(`#rec-${recordKey(record)} .feedback`);
    feedback(fresh || where, "ok", t("stage_saved", { stage: t(`lead_status_${lead.status}`) }));
  } catch (err) { failAt(where, err); }
}

function renderRecords() {
  const list = state.records;
  $("records").hidden = false;
  $("records-none").hidden = list.length > 0;
  $("records-choose").hidden = list.filter((r) => r.reason).length < 2;
  const ticked = new Set([...document.querySelectorAll("#record-cards input[type=checkbox]:checked")].map((b) => `${b.dataset.type}-${b.dataset.id}`));
  const single = list.length === 1;
  $("record-cards").replaceChildren(...list.map((r) => renderRecord(r, single || ticked.has(recordKey(r)) || Boolean(r.picked))));
  $("log-mail").hidden = list.length === 0;
  $("log-anyway").hidden = true;
}

async function loadMatches(generation) {
  const email = senderAddress(state.draft);
  state.records = [];
  try {
    if (email) state.records = (await api("/api/v1/matches", { query: { email } })).matches;
  } catch (_err) { state.records = []; } // an address the CRM cannot read matches nothing
  if (generation === state.generation) renderRecords();
}

async function searchRecords(e) {
  e.preventDefault();
  const where = $("search-status");
  const q = $("search-q").value.trim();
  if (!q) return;
  feedback(where, "busy", t("searching"));
  try {
    const r = await api("/api/v1/search", { query: { q, limit: 10 } });
    feedback(where, r.items.length ? "" : "warn", r.items.length ? "" : t("no_results"));
    $("search-results").replaceChildren(...r.items.map((item) => {
      const li = document.createElement("li");
      const b = Object.assign(document.createElement("button"), { type: "button", className: "search-result" });
      b.textContent = `${t(`type_${item.type}`)}: ${[item.title, item.fields.company, item.fields.email].filter(Boolean).join(" / ")}`;
      b.addEventListener("click", () => addFound(item));
      li.append(b);
      return li;
    }));
  } catch (err) { failAt(where, err); }
}

// A record chosen from the search joins the cards, ticked, with its recent history.
async function addFound(item) {
  $("search-results").replaceChildren();
  if (!state.records.some((r) => recordKey(r) === recordKey(item))) {
    const page = await api(`/api/v1/${PATHS[item.type]}/${item.id}/timeline`, { query: { limit: 5 } }).catch(() => ({ entries: [] }));
    state.records.push(Object.assign({}, item, { reason: null, picked: true, timeline: page.entries }));
  }
  renderRecords();
  const box = document.querySelector(`#rec-${recordKey(item)} input[type=checkbox]`);
  if (box) box.checked = true;
}

// `force`: the rep pressed "log anyway" after the server said an address of the mail is on
// their own or the organisation's never-log list.
async function logMail(force) {
  const where = $("records-status");
  $("log-anyway").hidden = true;
  const chosen = [...document.querySelectorAll("#record-cards input[type=checkbox]:checked")].map((b) => ({ type: b.dataset.type, id: Number(b.dataset.id) }));
  if (!chosen.length) { feedback(where, "warn", t("pick_one")); return; }
  feedback(where, "busy", t("logging"));
  try {
    const r = await api("/api/v1/messages/log", { method: "POST", json: { message: state.draft.message, records: chosen, force } });
    const created = r.logged.filter((x) => x.created).length;
    // The new entries, as the timeline now has them.
    for (const c of chosen) {
      const page = await api(`/api/v1/${PATHS[c.type]}/${c.id}/timeline`, { query: { limit: 5 } });
      const record = state.records.find((x) => recordKey(x) === recordKey(c));
      if (record) record.timeline = page.entries;
      const list = document.querySelector(`#rec-${recordKey(c)} ol.timeline`);
      if (list) renderTimeline(list, page.entries);
    }
    feedback(where, "ok", created ? t("logged", { count: created }) : t("logged_again"));
  } catch (err) {
    if (err && err.type === "never_log") {
      feedback(where, "warn", explain(err));
      $("log-anyway").hidden = false;
    } else failAt(where, err);
  }
}

async function fillEmpty(record, where) {
  const draftValues = {};
  for (const name of FIELDS) { const input = $(`f-${name}`); if (input && input.value.trim()) draftValues[name] = input.value.trim(); }
  feedback(where, "busy", t("filling"));
  try {
    const r = await api(`/api/v1/${PATHS[record.type]}/${record.id}/empty-fields`, { method: "POST", json: { values: draftValues } });
    Object.assign(record, r.record, { reason: record.reason, picked: record.picked });
    renderRecords();
    const fresh = document.querySelector(`#rec-${recordKey(record)} .feedback`);
    feedback(fresh || where, "ok", r.filled.length ? t("filled", { fields: r.filled.map(fieldText).join(", ") }) : t("nothing_to_fill"));
  } catch (err) { failAt(where, err); }
}

// ---------------------------------------------------------------- spam

async function notSpam() {
  const where = $("spam-status");
  feedback(where, "busy", t("moving"));
  try {
    const r = await api("/api/v1/spam/not-spam", { method: "POST", json: state.draft.message });
    feedback(where, "ok", `${t("moved")} (${r.folder})`);
    $("not-spam").disabled = true;
  } catch (err) { failAt(where, err); }
}

async function whySpam() {
  try {
    const r = await api("/api/v1/spam/diagnosis", { query: state.draft.message });
    $("why-list").replaceChildren(...r.explanation.map((line) => Object.assign(document.createElement("li"), { textContent: line })));
  } catch (err) { failAt($("spam-status"), err); }
}

// ---------------------------------------------------------------- invitations

const ANSWERS = [["accept", "ACCEPTED"], ["tentative", "TENTATIVE"], ["decline", "DECLINED"]];

function renderInvites(cards) {
  const box = $("invite-cards");
  box.replaceChildren();
  $("invites").hidden = cards.length === 0;
  for (const c of cards) {
    const card = document.createElement("div");
    card.className = "invite";
    const line = (text) => { const p = document.createElement("p"); p.textContent = text; card.append(p); return p; };
    line(c.summary).style.fontWeight = "600";
    line(t(`kind_${c.kind}`, { answer: t(`partstat_${c.own_partstat}`) }) + (c.verified ? "" : ` — ${t("verified_no")}`));
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
    if (c.in_calendar) line(`${t("in_calendar")} (${t(`partstat_${c.own_partstat}`)})`);
    const status = document.createElement("p");
    status.className = "feedback";
    status.setAttribute("role", "status");
    status.setAttribute("aria-live", "polite");
    if (c.method === "REQUEST" && ["new", "update_major", "update_minor", "current"].includes(c.kind)) {
      for (const [key, partstat] of ANSWERS) {
        const b = document.createElement("button");
        b.type = "button";
        b.textContent = t(key);
        b.dataset.partstat = partstat;
        // The answer already given is shown pressed; pressing another one changes it.
        if (c.kind === "current") b.setAttribute("aria-pressed", String(c.own_partstat === partstat));
        b.addEventListener("click", () => answer(c, partstat, status));
        card.append(b);
      }
    }
    card.append(status);
    box.append(card);
  }
}

async function answer(card, partstat, where) {
  feedback(where, "busy", t("answering"));
  try {
    const r = await api("/api/v1/calendar/answer", { method: "POST", json: Object.assign({}, state.draft.message, { partstat, event_uid: card.uid }) });
    // Only a reply that left through SMTP has told the organiser anything; a queued one
    // (the mail server did not take it yet) is retried by the backend's outbox.
    const status = r.reply ? r.reply.status : null;
    const text = r.reply_sent ? t("answered") : status === "queued" ? t("answered_reply_queued") : status === "failed" ? t("answered_reply_failed", { reason: r.reply.reason_label || r.reply.reason || "" }) : t("answered_not_sent");
    await loadInvites();
    const fresh = [...$("invite-cards").querySelectorAll(".invite")].find((_el, i) => state.invites[i] && state.invites[i].uid === card.uid);
    feedback(fresh ? fresh.querySelector(".feedback") : where, r.reply_sent ? "ok" : "warn", text);
  } catch (err) { failAt(where, err); }
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

// A new message clears everything of the previous one at once, so an old draft is never
// shown (or saved) for the new message while its draft loads.
function clearMessage() {
  state.draft = null;
  state.invites = [];
  state.records = [];
  for (const id of ["lead", "captured", "existing", "spam", "invites", "error", "records"]) $(id).hidden = true;
  for (const id of ["fields", "warnings", "invite-cards", "why-list", "existing-list", "record-cards", "search-results"]) $(id).replaceChildren();
  for (const id of ["save-status", "spam-status", "existing-status", "records-status", "search-status"]) feedback($(id), "", "");
  $("not-spam").disabled = false;
}

async function load() {
  const generation = ++state.generation;
  performance.mark("widget-open");
  clearMessage();
  document.body.setAttribute("aria-busy", "true");
  say(t("loading"));
  const message = await host.message();
  if (!message) { say(t("no_message")); document.body.removeAttribute("aria-busy"); return; }
  state.ref = message.ref;
  state.raw = message.raw;
  state.specialUse = message.specialUse || [];
  // Asked for beside the draft, not after it: the draft is never kept waiting.
  const fields = api("/api/v1/custom-fields").catch(() => []);
  const config = api("/api/v1/widget/config").catch(() => null);
  let draft;
  try {
    if (message.rawOnly) throw { type: "no_message_id" };
    draft = await api("/api/v1/messages/draft", { query: state.ref });
  } catch (err) {
    if ((err.type === "no_mailbox" || err.type === "no_message_id") && state.raw) {
      try {
        draft = await api("/api/v1/messages/draft/raw", { method: "POST", body: await state.raw(), type: "message/rfc822", query: { folder: state.ref.folder } });
      } catch (e) { if (generation === state.generation) { fail(e); say(""); document.body.removeAttribute("aria-busy"); } return; }
    } else { if (generation === state.generation) { fail(err); say(""); document.body.removeAttribute("aria-busy"); } return; }
  }
  if (generation !== state.generation) return; // another message was opened meanwhile
  // The message reference the API resolved (server folder, UID, UIDVALIDITY) is what later calls send.
  draft.message = Object.fromEntries(Object.entries({ ...state.ref, ...draft.message }).filter(([k, v]) => v !== null && !["subject", "sender"].includes(k)));
  state.draft = draft;
  state.config = await config;
  renderDraft(draft);
  performance.mark("draft-shown");
  window.draftShownMs = performance.measure("draft", "widget-open", "draft-shown").duration;
  document.body.removeAttribute("aria-busy");
  say(t("draft_ready"));
  fields.then((list) => { if (generation === state.generation) { state.custom = list; renderCustom(list); } });
  // By the folder's special use (RFC 6154 \Junk as Thunderbird knows it), never by its name.
  $("spam").hidden = !state.specialUse.includes("junk");
  loadInvites();
  loadMatches(generation);
  loadQuota();
}

// Today's automatic mail against the daily limit (mail sent by hand is not counted). A
// backend without the outbox, or an error, leaves the line hidden: it is information only.
async function loadQuota() {
  const q = await api("/api/v1/outbox/quota").catch(() => null);
  const line = $("mail-quota");
  if (!q || typeof q.used !== "number") { line.hidden = true; return; }
  const resets = new Date(q.resets_at).toLocaleString(document.documentElement.lang || undefined, { dateStyle: "short", timeStyle: "short" });
  line.textContent = t("mail_quota", { used: q.used, limit: q.limit, left: q.left, resets });
  line.hidden = false;
}

function showSettings() {
  $("settings").hidden = false;
  $("backend").value = state.managedBackend || state.settings.backend || "";
  $("backend").readOnly = Boolean(state.managedBackend);
  $("backend-managed").hidden = !state.managedBackend;
}

function normalisedBackend() {
  const value = $("backend").value.trim().replace(/\/+$/, "");
  try { return new URL(value).origin === "null" ? "" : value; } catch (_e) { return ""; }
}

async function connect() {
  const where = $("pair-status");
  const backend = normalisedBackend();
  if (!backend) { feedback(where, "error", t("bad_url")); return; }
  feedback(where, "busy", t("pairing"));
  const result = await host.pair(backend);
  if (result && result.ok) {
    state.settings = await host.settings();
    feedback(where, "ok", t("paired"));
    $("settings").hidden = true;
    load();
  } else {
    feedback(where, "error", t((result && result.error) || "pair_failed", { url: backend }) + (result && result.detail ? ` (${result.detail})` : ""));
  }
}

async function start() {
  state.settings = await host.settings();
  state.managedBackend = await host.managedBackend();
  if (state.managedBackend && state.managedBackend !== state.settings.backend) state.settings = { backend: state.managedBackend, token: "" };
  const preferred = localStorage.getItem("lang") || host.language();
  state.lang = preferred && preferred.toLowerCase().startsWith("en") ? "en" : "ja";
  applyTexts();
  $("token").value = state.settings.token;
  $("lang").addEventListener("change", () => {
    state.lang = $("lang").value;
    localStorage.setItem("lang", state.lang);
    applyTexts();
    if (state.draft) renderDraft(state.draft);
    renderCustom(state.custom);
    renderInvites(state.invites);
    if (state.draft) renderRecords();
  });
  $("open-settings").addEventListener("click", () => { if ($("settings").hidden) showSettings(); else $("settings").hidden = true; });
  $("pair").addEventListener("click", connect);
  $("settings").addEventListener("submit", async (e) => {
    e.preventDefault();
    state.settings = { backend: normalisedBackend(), token: $("token").value.trim() };
    await host.saveSettings(state.settings);
    $("settings").hidden = true;
    load();
  });
  $("lead").addEventListener("submit", (e) => { e.preventDefault(); save(null, $("save-status")); });
  $("update-existing").addEventListener("click", (e) => save(e.currentTarget.dataset.leadId, $("existing-status")));
  $("create-anyway").addEventListener("click", () => save(null, $("existing-status")));
  $("log-mail").addEventListener("click", () => logMail(false));
  $("log-anyway").addEventListener("click", () => logMail(true));
  $("record-search").addEventListener("submit", searchRecords);
  $("not-spam").addEventListener("click", notSpam);
  $("why-spam").addEventListener("click", whySpam);
  $("captured-link").addEventListener("click", (e) => { e.preventDefault(); host.openLink(e.currentTarget.href); });
  // Another message displayed while the popup stays open: its draft replaces this one.
  host.onMessageChange(() => { if (state.settings.token) load(); });
  if (!state.settings.token) { showSettings(); return; }
  load();
}

start();
