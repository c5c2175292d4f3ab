// The console's pages: sign-in, Custom Models, model details (with datasets, training, results)
// and transcription. Hash routes: #/models, #/models/<id>, #/transcribe.

import { ApiError, ERROR_FIXES, api, auth, download, hooks, words } from "./api.js";
import { openNewDataset } from "./datasets.js";
import { STATUSES, acceptsDatasets, badge, canCancel, canTrain, credits, etaText, formatBytes, formatDate, h, isLocked, listText,
  openDialog, progressBar, toast } from "./ui.js";
import { loadConfig } from "./vocab.js";

const main = document.getElementById("main");
const TRAIN_MESSAGE = (name) => `Are you sure you want to start the training process for ${name}? This process may take a long time to complete and it will use your credits, and you will not be able to modify the custom model until it is finished.`;
let config = null; // the rules from the APIs (vocab.js)
let page = null; // { onLive(event), teardown() }

function describe(err) {
  if (err instanceof ApiError) return err.describe();
  return err && err.message ? err.message : String(err);
}

// ------------------------------------------------------------------ live status (Server-Sent Events)

const live = {
  source: null,
  retry: null,
  setState(state, text) {
    const el = document.getElementById("live-indicator");
    el.dataset.state = state;
    document.getElementById("live-text").textContent = text;
  },
  connect() {
    this.close();
    const es = new EventSource("/api/events");
    this.source = es;
    es.addEventListener("ready", () => { this.setState("open", "Live"); dispatch({ type: "ready" }); });
    es.addEventListener("status", (e) => dispatch({ type: "status", data: JSON.parse(e.data) }));
    es.addEventListener("progress", (e) => dispatch({ type: "progress", data: JSON.parse(e.data) }));
    es.addEventListener("expired", () => renewSession().then(() => this.connect()));
    es.onerror = () => {
      this.setState("error", "Reconnecting…");
      if (es.readyState === EventSource.CLOSED) {
        // refused (e.g. the events cookie is gone): sign the stream in again, then reconnect
        clearTimeout(this.retry);
        this.retry = setTimeout(() => renewSession().then(() => this.connect()), 3000);
      }
    };
  },
  close() {
    clearTimeout(this.retry);
    if (this.source) this.source.close();
    this.source = null;
  },
};

function dispatch(event) {
  if (event.type === "status" && [2, 4, 5].includes(event.data.new_status)) balance.refresh(); // reserve, charge, refund
  if (page && page.onLive) page.onLive(event);
}

// ------------------------------------------------------------------ the tenant's credits (header)

const balance = {
  seq: 0,
  /** Show the signed-in tenant's balance; hidden when the credits cannot be read. */
  async refresh() {
    const mine = ++this.seq;
    const el = document.getElementById("credits");
    try {
      const account = await api("GET", "/api/credits?limit=1");
      if (mine !== this.seq) return;
      el.dataset.balance = String(account.balance);
      document.getElementById("credits-balance").textContent = credits(account.balance);
      el.hidden = false;
    } catch {
      if (mine === this.seq) el.hidden = true;
    }
  },
};

// ------------------------------------------------------------------ session

// The API key is exchanged for a token that lives a minute at most; it is exchanged again before then, so a
// session lasts while the key is valid and ends within a minute of the key's revocation or expiry.
let renewal = null;

async function startSession(key) {
  const who = await api("POST", "/api/session", { api_key: key.trim() });
  auth.save(who.access_token, who.tenant_id, key.trim());
  clearTimeout(renewal);
  renewal = setTimeout(renewSession, Math.max(2, who.expires_in * 0.7) * 1000);
  return who;
}

const SESSION_ENDED = "Your session ended: the API key was revoked or expired. Sign in again.";

async function renewSession() {
  if (!auth.key) return signOut();
  try {
    await startSession(auth.key);
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return signOut(SESSION_ENDED);
    clearTimeout(renewal); // the console or the identity API is away for a moment: try again soon
    renewal = setTimeout(renewSession, 5000);
  }
}

async function signOut(message) {
  clearTimeout(renewal);
  live.close();
  auth.clear();
  try { await fetch("/api/session", { method: "DELETE" }); } catch { /* offline: the cookie expires anyway */ }
  if (message) toast(message, "error");
  location.hash = "#/models";
  render();
}

hooks.unauthorized = () => renewSession();

function showChrome(signedIn) {
  document.getElementById("topnav").hidden = !signedIn;
  document.getElementById("session").hidden = !signedIn;
  document.getElementById("tenant-name").textContent = signedIn ? auth.tenant : "";
  if (signedIn) balance.refresh();
  else document.getElementById("credits").hidden = true;
}

function pageSignIn() {
  showChrome(false);
  const error = h("p", { class: "form-error", id: "signin-error", role: "alert" });
  const input = h("input", { id: "api-key", name: "api_key", type: "password", required: true, autocomplete: "off",
    spellcheck: "false", "aria-describedby": "key-help signin-error" });
  const form = h("form", { class: "panel", id: "signin-form", novalidate: true },
    h("div", { class: "field" },
      h("label", { for: "api-key" }, "API key"),
      input,
      h("p", { class: "hint", id: "key-help" }, "Paste an API key (vtk_…): create one with ", h("code", {}, "POST /v1/api-keys"),
        ", or ask your operator (", h("code", {}, "voxtrain api-keys create TENANT"), ").")),
    h("button", { class: "btn btn-primary", type: "submit" }, "Sign in"),
    error);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    error.textContent = "";
    if (!input.value.trim()) { error.textContent = "Paste an API key first."; input.focus(); return; }
    try {
      await startSession(input.value);
      live.connect();
      render();
    } catch (err) {
      error.textContent = describe(err);
      input.focus();
    }
  });
  main.replaceChildren(h("div", { class: "signin" },
    h("h1", {}, "Sign in"),
    h("p", { class: "muted" }, "Sign in with your tenant's API key to manage its custom models."),
    form));
  input.focus();
  return {};
}

// ------------------------------------------------------------------ Custom Models page

function openCreateModel() {
  const error = h("p", { class: "form-error", role: "alert" });
  const name = h("input", { type: "text", id: "cm-name", name: "name", required: true, maxlength: "200", autocomplete: "off" });
  const language = h("select", { id: "cm-language", name: "language" },
    config.languages.map((l) => h("option", { value: l.code }, l.name)));
  const description = h("textarea", { id: "cm-description", name: "description", maxlength: "2000", rows: "3" });
  const autoTrain = h("input", { type: "checkbox", id: "cm-auto-train", name: "auto_train", checked: true });
  const submit = h("button", { class: "btn btn-primary", type: "submit", form: "create-model-form" }, "Create");
  const cancel = h("button", { class: "btn", type: "button" }, "Cancel");
  const form = h("form", { id: "create-model-form", novalidate: true },
    h("div", { class: "dialog-body" },
      h("h2", { id: "cm-title" }, "New custom model"),
      h("div", { class: "field" }, h("label", { for: "cm-name" }, "Name"), name),
      h("div", { class: "field" }, h("label", { for: "cm-language" }, "Language"), language),
      h("div", { class: "field" }, h("label", { for: "cm-description" }, "Description (optional)"), description),
      h("label", { class: "check", for: "cm-auto-train" }, autoTrain,
        h("span", {}, "Start training automatically once datasets are uploaded")),
      error),
    h("div", { class: "dialog-foot" }, cancel, submit));
  const dialog = h("dialog", { "aria-labelledby": "cm-title", id: "create-model-dialog" }, form);
  const close = openDialog(dialog, { initialFocus: name });
  cancel.addEventListener("click", close);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!name.value.trim()) { error.textContent = "A model needs a name."; name.focus(); return; }
    submit.disabled = true;
    try {
      const body = { name: name.value.trim(), language: language.value, auto_train: autoTrain.checked };
      if (description.value.trim()) body.description = description.value.trim();
      const model = await api("POST", "/api/models", body);
      close();
      toast(`Model “${model.name}” created`);
      location.hash = `#/models/${model.id}`;
    } catch (err) {
      error.textContent = describe(err);
      submit.disabled = false;
    }
  });
}

function modelRow(m) {
  const link = h("a", { class: "model-name", href: `#/models/${m.id}` }, m.name);
  return h("tr", { dataset: { modelId: m.id } },
    h("td", { "data-label": "Name" }, link),
    h("td", { "data-label": "Language" }, m.language),
    h("td", { "data-label": "Status", class: "status-cell" }, badge(m.status.code)),
    h("td", { "data-label": "Datasets", class: "num" }, String(m.datasets.total)),
    h("td", { "data-label": "Updated" }, formatDate(m.updated_at)),
    h("td", { "data-label": "Actions" },
      h("a", { class: "btn btn-small edit", href: `#/models/${m.id}`, "aria-label": `Edit ${m.name}` }, "Edit")));
}

function pageModels() {
  const tbody = h("tbody", { id: "models-body" });
  const table = h("table", { class: "cards", id: "models-table" },
    h("caption", { class: "sr-only" }, "Your custom models"),
    h("thead", {}, h("tr", {}, ["Name", "Language", "Status", "Datasets", "Updated", "Actions"]
      .map((c) => h("th", { scope: "col", class: c === "Datasets" ? "num" : "" }, c)))),
    tbody);
  main.replaceChildren(
    h("div", { class: "page-head" },
      h("h1", { id: "page-title" }, "Custom Models"),
      h("button", { class: "btn btn-primary", type: "button", id: "new-model", onclick: openCreateModel }, "New model")),
    h("section", { class: "panel flush-mobile", "aria-labelledby": "page-title" }, h("div", { class: "table-wrap" }, table)));
  let ids = new Set();
  let seq = 0; // answers of older requests that arrive late are dropped: the newest request wins
  const load = async () => {
    const mine = ++seq;
    try {
      const result = await api("GET", "/api/models?limit=200");
      if (mine !== seq) return;
      ids = new Set(result.items.map((m) => m.id));
      if (!result.items.length) {
        tbody.replaceChildren(h("tr", {}, h("td", { colspan: "6", class: "empty" },
          "No custom models yet. Create one with “New model”.")));
      } else {
        tbody.replaceChildren(...result.items.map(modelRow));
      }
    } catch (err) {
      tbody.replaceChildren(h("tr", {}, h("td", { colspan: "6", class: "empty" }, describe(err))));
    }
  };
  load();
  return {
    onLive(event) {
      if (event.type === "ready") { load(); return; }
      if (event.type !== "status") return;
      const row = tbody.querySelector(`tr[data-model-id="${event.data.model_id}"]`);
      if (row) row.querySelector(".status-cell").replaceChildren(badge(event.data.new_status));
      if (!ids.has(event.data.model_id) || row) load();
    },
  };
}

// ------------------------------------------------------------------ transcription

async function transcribeForm(preselect = null) {
  const select = h("select", { id: "transcribe-model", name: "model" },
    h("option", { value: "base" }, `${config.languages.map((l) => l.name).join(", ")} — base`));
  try {
    const trained = await api("GET", "/api/models?status=4&limit=200");
    for (const m of trained.items) {
      select.append(h("option", { value: m.id }, `${m.name} — custom (${m.language})`));
    }
  } catch { /* the base model still works */ }
  if (preselect) select.value = preselect;
  const file = h("input", { type: "file", id: "transcribe-file", name: "file", accept: config.extensions.AUDIO.join(","),
    "aria-describedby": "transcribe-help" });
  const output = h("output", { class: "transcript", id: "transcript", for: "transcribe-file", "aria-live": "polite" });
  const error = h("p", { class: "form-error", role: "alert" });
  const submit = h("button", { class: "btn btn-primary", type: "submit", id: "transcribe-submit" }, "Transcribe");
  const form = h("form", { id: "transcribe-form", novalidate: true },
    h("div", { class: "form-grid" },
      h("div", { class: "field" }, h("label", { for: "transcribe-model" }, "Language / model"), select),
      h("div", { class: "field" }, h("label", { for: "transcribe-file" }, "Audio file"), file,
        h("p", { class: "hint", id: "transcribe-help" }, listText(config.extensions.AUDIO)))),
    submit, error, output);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    error.textContent = "";
    if (!file.files.length) { error.textContent = "Choose an audio file first."; file.focus(); return; }
    submit.disabled = true;
    output.textContent = "Transcribing…";
    const body = new FormData();
    body.append("file", file.files[0], file.files[0].name);
    try {
      const result = await api("POST", `/api/transcriptions/${encodeURIComponent(select.value)}`, body);
      output.textContent = result.text || "(no speech recognised)";
      output.dataset.done = "true";
    } catch (err) {
      output.textContent = "";
      error.textContent = describe(err);
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

function pageTranscribe() {
  const panel = h("section", { class: "panel", "aria-labelledby": "page-title" });
  main.replaceChildren(
    h("div", { class: "page-head" }, h("h1", { id: "page-title" }, "Transcribe")),
    h("p", { class: "muted" }, "Choose the base model or one of your trained custom models (status Success)."),
    panel);
  transcribeForm().then((form) => panel.append(form));
  return {};
}

// ------------------------------------------------------------------ model details page

function fmtNumber(v, digits = 2) {
  return typeof v === "number" && Number.isFinite(v) ? v.toFixed(digits) : "—";
}
function fmtPercent(v) {
  return typeof v === "number" && Number.isFinite(v) ? `${(v * 100).toFixed(1)}%` : "—";
}

function evaluationView(metrics) {
  const evaluation = (metrics && metrics.evaluation) || {};
  const wer = evaluation.wer || {};
  const ppl = evaluation.perplexity || {};
  const rows = [];
  const row = (label, base, custom, fmt) => rows.push(h("tr", {},
    h("th", { scope: "row" }, label), h("td", { class: "num" }, fmt(base)), h("td", { class: "num" }, fmt(custom))));
  const int = (v) => (typeof v === "number" ? String(v) : "—");
  if (wer.base || wer.custom) {
    const b = wer.base || {};
    const c = wer.custom || {};
    row("Word error rate (WER)", b.wer, c.wer, fmtPercent);
    row("Substitutions", b.substitutions, c.substitutions, int);
    row("Deletions", b.deletions, c.deletions, int);
    row("Insertions", b.insertions, c.insertions, int);
  }
  if (ppl.base || ppl.custom) {
    const b = ppl.base || {};
    const c = ppl.custom || {};
    row("Perplexity", b.perplexity, c.perplexity, (v) => fmtNumber(v, 1));
    row("Out-of-vocabulary rate (OOV)", b.oov_rate, c.oov_rate, fmtPercent);
  }
  const cards = h("div", { class: "metrics-grid" },
    h("div", { class: "metric" }, h("div", { class: "k" }, "WER base → custom"),
      h("div", { class: "v", id: "wer-summary" }, `${fmtPercent((wer.base || {}).wer)} → ${fmtPercent((wer.custom || {}).wer)}`)),
    h("div", { class: "metric" }, h("div", { class: "k" }, "WER improvement"),
      h("div", { class: `v ${wer.relative_improvement > 0 ? "good" : ""}` }, fmtPercent(wer.relative_improvement))),
    h("div", { class: "metric" }, h("div", { class: "k" }, "Perplexity improvement"),
      h("div", { class: `v ${ppl.relative_improvement > 0 ? "good" : ""}` }, fmtPercent(ppl.relative_improvement))));
  const table = h("table", { id: "evaluation-table" },
    h("caption", { class: "sr-only" }, "Base model versus custom model"),
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Metric"), h("th", { scope: "col", class: "num" }, "Base model"),
      h("th", { scope: "col", class: "num" }, "Custom model"))),
    h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: "3", class: "empty" }, "No evaluation results."))));
  const notes = [];
  const custom = wer.custom || {};
  if (typeof custom.utterances === "number") {
    notes.push(h("p", { class: "hint" }, `WER measured on ${custom.utterances} test utterance${custom.utterances === 1 ? "" : "s"}` +
      (typeof custom.reference_words === "number" ? ` (${custom.reference_words} words)` : "") +
      (metrics && metrics.heldout ? "; with no test data, a held-out slice of the training text was used." : ".")));
  }
  if (ppl.note) notes.push(h("p", { class: "hint" }, ppl.note));
  const examples = (wer.examples || []).slice(0, 5);
  const exampleTable = examples.length ? h("details", { class: "examples" },
    h("summary", {}, "Examples: what each model heard"),
    h("div", { class: "table-wrap" }, h("table", {},
      h("thead", {}, h("tr", {}, ["Reference", "Base model", "Custom model"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, examples.map((x) => h("tr", {},
        h("td", { "data-label": "Reference" }, x.reference), h("td", { "data-label": "Base" }, x.base),
        h("td", { "data-label": "Custom" }, x.custom))))))) : null;
  return [cards, h("div", { class: "table-wrap" }, table), stepsView(metrics), notes, exampleTable].flat().filter(Boolean);
}

// What each training step bought: base → text only (LM + lexicon) → text + audio (adapted acoustic model).
const STEP_NAMES = { base: "Base model", text_only: "Text only", text_audio: "Text + audio" };
function stepsView(metrics) {
  const wer = ((metrics && metrics.evaluation) || {}).wer || {};
  const names = Array.isArray(wer.models) ? wer.models.filter((n) => wer[n]) : [];
  if (names.length < 2) return null;
  const int = (v) => (typeof v === "number" ? String(v) : "—");
  const gain = (name) => {
    const step = (wer.steps || []).find((s) => s.to === name);
    return step ? fmtPercent(step.relative_improvement) : "—";
  };
  const line = (label, fmt, pick) => h("tr", {}, h("th", { scope: "row" }, label),
    names.map((n) => h("td", { class: "num" }, fmt(pick(n)))));
  const table = h("table", { id: "wer-steps-table" },
    h("caption", {}, "Word error rate after each step"),
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Metric"),
      names.map((n) => h("th", { scope: "col", class: "num" }, STEP_NAMES[n] || n)))),
    h("tbody", {},
      line("WER", fmtPercent, (n) => wer[n].wer),
      line("Substitutions", int, (n) => wer[n].substitutions),
      line("Deletions", int, (n) => wer[n].deletions),
      line("Insertions", int, (n) => wer[n].insertions),
      line("Gain over the previous step", (v) => v, (n) => (n === names[0] ? "—" : gain(n)))));
  const acoustic = (metrics && metrics.acoustic) || {};
  const note = acoustic.method && acoustic.method !== "none"
    ? `Acoustic model adapted with ${acoustic.method} on ${acoustic.utterances} utterances (${Math.round(acoustic.seconds)} s of audio).`
    : acoustic.reason ? `Acoustic model not adapted: ${acoustic.reason}.` : null;
  return [h("div", { class: "table-wrap" }, table), note ? h("p", { class: "hint", id: "acoustic-note" }, note) : null];
}

function failureItems(error) {
  const perDataset = Array.isArray(error.details) ? error.details.filter((d) => d && d.code) : [];
  const items = perDataset.length ? perDataset : [error];
  return items.map((e) => h("li", {},
    h("strong", {}, `${words(e.code)} (${e.code})`),
    e.file_name ? [" — dataset ", h("span", { class: "mono" }, e.file_name)] : "",
    h("div", {}, e.message || ""),
    ERROR_FIXES[e.code] ? h("p", { class: "fix" }, h("strong", {}, "What to fix: "), ERROR_FIXES[e.code]) : ""));
}

const VALIDATION = {
  uploaded: { label: "Uploaded", badge: "zinc" },
  validating: { label: "Validating", badge: "amber" },
  valid: { label: "Valid", badge: "emerald" },
  invalid: { label: "Invalid", badge: "red" },
};

function datasetDetails(ds) {
  const v = ds.validation;
  if (!v) return ds.status === "validating" ? "Being validated…" : "Waiting for validation…";
  if (v.result === "failed" && v.error) {
    return h("span", { class: "err" }, `${words(v.error.code)} (${v.error.code}): ${v.error.message}`);
  }
  const meta = v.metadata || {};
  const parts = [];
  const seconds = meta.duration_seconds ?? meta.duration;
  if (typeof seconds === "number") parts.push(`${seconds.toFixed(1)} s`);
  if (meta.sample_rate) parts.push(`${meta.sample_rate} Hz`);
  if (meta.channels) parts.push(meta.channels === 1 ? "mono" : `${meta.channels} channels`);
  if (meta.codec) parts.push(meta.codec);
  for (const key of ["cues", "lines", "sentences", "words", "pairs", "entries"]) {
    if (typeof meta[key] === "number") parts.push(`${meta[key]} ${key}`);
  }
  const out = [parts.length ? parts.join(" · ") : "Passed validation"];
  for (const w of v.warnings || []) out.push(h("div", { class: "muted" }, `Warning: ${w}`));
  return out;
}

function datasetRow(ds, onDelete) {
  const state = VALIDATION[ds.status] || { label: ds.status, badge: "zinc" };
  const remove = onDelete ? h("button", { class: "btn btn-small delete-dataset", type: "button",
    "aria-label": `Delete dataset ${ds.file_name}`, onclick: (e) => onDelete(ds, e.currentTarget) }, "Delete") : "—";
  return h("tr", { dataset: { datasetId: ds.id, status: ds.status } },
    h("td", { "data-label": "Type" }, ds.type),
    h("td", { "data-label": "File name", class: "mono" }, ds.file_name),
    h("td", { "data-label": "Size", class: "num" }, formatBytes(ds.size)),
    h("td", { "data-label": "Validation" },
      h("span", { class: "badge vstate", dataset: { badge: state.badge, state: ds.status } },
        h("span", { class: "dot", "aria-hidden": "true" }), state.label)),
    h("td", { "data-label": "Details", class: "details-cell" }, datasetDetails(ds)),
    h("td", { "data-label": "Actions" }, remove));
}

/** A confirmation dialog; resolves when `action` succeeded, shows its error otherwise. `extra`: shown below
 * the message; `dismissLabel`: the button that closes it and changes nothing. */
function confirmDialog({ id, title, message, confirmLabel, danger = false, action, extra = null, dismissLabel = "Cancel" }) {
  const error = h("p", { class: "form-error", role: "alert" });
  const confirm = h("button", { class: `btn ${danger ? "btn-danger" : "btn-primary"}`, type: "button", id: `${id}-confirm` },
    confirmLabel);
  const cancel = h("button", { class: "btn", type: "button", id: `${id}-dismiss` }, dismissLabel);
  const dialog = h("dialog", { class: "narrow", role: "alertdialog", id, "aria-labelledby": `${id}-title`,
    "aria-describedby": `${id}-message` },
    h("div", { class: "dialog-body" }, h("h2", { id: `${id}-title` }, title), h("p", { id: `${id}-message` }, message),
      extra, error),
    h("div", { class: "dialog-foot" }, cancel, confirm));
  const close = openDialog(dialog, { initialFocus: cancel });
  cancel.addEventListener("click", close);
  confirm.addEventListener("click", async () => {
    confirm.disabled = true;
    error.textContent = "";
    try {
      await action();
      close();
    } catch (err) {
      error.textContent = describe(err);
      confirm.disabled = false;
      confirm.focus();
    }
  });
}

/** What a training will cost, below the spec's confirmation text: the estimate, the basis, the balance,
 * and what to do when the balance is too low. */
function costView(cost) {
  const basis = cost.basis || {};
  const from = [];
  if (basis.audio_minutes) from.push(`${Number(basis.audio_minutes).toFixed(1)} min of audio`);
  if (basis.text_words) from.push(`${Number(basis.text_words).toLocaleString("en-US")} words of text`);
  const needed = cost.estimate - cost.balance;
  return [
    h("p", { id: "train-dialog-amount", dataset: { estimate: String(cost.estimate), balance: String(cost.balance) } },
      "This training will use ", h("strong", {}, credits(cost.estimate)), from.length ? ` (for ${from.join(" and ")})` : "",
      `. Your balance: ${credits(cost.balance)}.`),
    basis.measured === false ? h("p", { class: "hint" },
      "Estimated from the files' sizes: datasets still being validated may change it.") : null,
    needed > 0 ? h("p", { class: "notice", id: "train-dialog-shortfall" },
      `Your balance is too low for this training: ${credits(needed)} more are needed. Ask your operator to grant `,
      "them (", h("code", {}, `voxtrain credits grant ${auth.tenant} ${needed}`),
      "), or remove datasets to lower the cost.") : null,
  ].filter(Boolean);
}

function lockedReason(code) {
  if (isLocked(code)) {
    return `This model is ${STATUSES[code].label}: its fields cannot be changed until training is finished.`;
  }
  return "";
}

function datasetsBlockedReason(code) {
  if (isLocked(code)) {
    return `Datasets cannot be added while the model is ${STATUSES[code].label}; wait until training is finished.`;
  }
  if (!acceptsDatasets(code)) return "This model is trained (Success) and final: create a new model to train with other datasets.";
  return "";
}

function pageModel(id) {
  let model = null;
  let datasets = [];
  let poll = null;
  let gone = false;
  let dirty = false;
  let transcribeFor = null;
  let loadSeq = 0;
  let datasetsKnown = true;

  const title = h("h1", { id: "model-title" }, "…");
  const badgeSlot = h("span", { id: "model-status" });
  const meta = h("p", { class: "model-meta", id: "model-meta" });
  const updateBtn = h("button", { class: "btn", type: "submit", form: "model-form", id: "update-model",
    "aria-describedby": "locked-reason" }, "Update");
  const trainBtn = h("button", { class: "btn btn-primary", type: "button", id: "train-model", hidden: true }, "Train the Language");
  const cancelBtn = h("button", { class: "btn btn-danger", type: "button", id: "cancel-training", hidden: true }, "Cancel training");
  const exportBtn = h("button", { class: "btn", type: "button", id: "export-model", hidden: true }, "Download model");
  const progressText = h("span", { id: "progress-text" }, "");
  const progressEta = h("span", { id: "progress-eta", class: "eta" }, "");
  const progressPct = h("span", { id: "progress-percent" }, "");
  const bar = progressBar("Training progress");
  const progressPanel = h("section", { class: "panel progress-panel", id: "progress", hidden: true, "aria-live": "polite" },
    h("div", { class: "progress-row" }, progressText, h("span", { class: "progress-figures" }, progressEta, progressPct)), bar);
  const failure = h("section", { class: "panel failure", id: "failure", hidden: true, role: "alert" });
  const lockedNote = h("p", { class: "notice", id: "locked-reason", hidden: true });
  const name = h("input", { type: "text", id: "m-name", name: "name", maxlength: "200", required: true });
  const description = h("textarea", { id: "m-description", name: "description", maxlength: "2000", rows: "3" });
  const autoTrain = h("input", { type: "checkbox", id: "m-auto-train", name: "auto_train" });
  const fieldset = h("fieldset", { id: "model-fields", "aria-describedby": "locked-reason" },
    h("legend", { class: "sr-only" }, "Model details"),
    h("div", { class: "form-grid" },
      h("div", { class: "field" }, h("label", { for: "m-name" }, "Name"), name),
      h("div", { class: "field" }, h("label", {}, "Language"), h("div", { id: "m-language", class: "muted" }, "")),
      h("div", { class: "field wide" }, h("label", { for: "m-description" }, "Description"), description),
      h("label", { class: "check wide", for: "m-auto-train" }, autoTrain,
        h("span", {}, "Start training automatically once datasets are uploaded"))));
  const formError = h("p", { class: "form-error", role: "alert" });
  const form = h("form", { id: "model-form", novalidate: true }, lockedNote, fieldset, formError);
  form.addEventListener("input", () => { dirty = true; });
  const evaluation = h("section", { class: "panel", id: "evaluation", hidden: true, "aria-labelledby": "evaluation-title" });
  const transcribe = h("section", { class: "panel", id: "transcribe", hidden: true, "aria-labelledby": "transcribe-title" });
  const newDatasetBtn = h("button", { class: "btn btn-primary", type: "button", id: "new-dataset",
    "aria-describedby": "datasets-blocked" }, "New Dataset");
  const datasetsBlocked = h("p", { class: "hint", id: "datasets-blocked", hidden: true });
  const datasetsBody = h("tbody", { id: "datasets-body" });
  const datasetsSection = h("section", { class: "panel flush-mobile", id: "datasets", "aria-labelledby": "datasets-title" },
    h("div", { class: "section-head" }, h("h2", { id: "datasets-title" }, "Datasets"), newDatasetBtn),
    datasetsBlocked,
    h("div", { class: "table-wrap" }, h("table", { class: "cards", id: "datasets-table" },
      h("caption", { class: "sr-only" }, "Datasets of this model"),
      h("thead", {}, h("tr", {}, ["Type", "File name", "Size", "Validation", "Details", "Actions"]
        .map((c) => h("th", { scope: "col", class: c === "Size" ? "num" : "" }, c)))),
      datasetsBody)));

  main.replaceChildren(
    h("nav", { class: "breadcrumb", "aria-label": "Breadcrumb" }, h("a", { href: "#/models" }, "Custom Models"), " / ",
      h("span", { id: "crumb-name", "aria-current": "page" }, "")),
    h("div", { class: "model-head" },
      h("div", {}, h("div", { class: "model-title" }, title, badgeSlot), meta),
      h("div", { class: "actions" }, updateBtn, trainBtn, cancelBtn, exportBtn)),
    progressPanel, failure,
    h("section", { class: "panel", "aria-labelledby": "details-title" }, h("h2", { id: "details-title" }, "Details"), form),
    evaluation, transcribe, datasetsSection);

  function showProgress(progress) {
    const status = model.status.code;
    progressPanel.hidden = !(status === 2 || status === 3);
    if (status === 2) {
      progressText.textContent = "Ready to Run: datasets are being validated; training will begin automatically when ready.";
      progressPct.textContent = "";
      progressEta.textContent = "";
      bar.set(0);
      bar.hidden = true;
      return;
    }
    bar.hidden = false;
    const p = progress || { stage: "starting", percent: 0 };
    const pct = Math.max(0, Math.min(100, Number(p.percent) || 0));
    progressText.textContent = `Training — ${String(p.stage || "").replaceAll("_", " ")}${p.message ? `: ${p.message}` : ""}`;
    progressPct.textContent = `${Math.round(pct)}%`;
    progressEta.textContent = etaText(p.eta_seconds);
    progressEta.dataset.seconds = typeof p.eta_seconds === "number" ? String(p.eta_seconds) : "";
    bar.set(pct / 100);
  }

  function paint() {
    const code = model.status.code;
    document.title = `${model.name} — voxtrain console`;
    title.textContent = model.name;
    document.getElementById("crumb-name").textContent = model.name;
    badgeSlot.replaceChildren(badge(code, "badge-large"));
    meta.textContent = `${model.language} · ${model.datasets.total} dataset${model.datasets.total === 1 ? "" : "s"} · created ${formatDate(model.created_at)}`;
    trainBtn.hidden = !canTrain(code);
    cancelBtn.hidden = !canCancel(code);
    exportBtn.hidden = code !== 4;
    const locked = isLocked(code);
    fieldset.disabled = locked;
    updateBtn.disabled = locked;
    lockedNote.hidden = !locked;
    lockedNote.textContent = lockedReason(code);
    if (!dirty || locked) {
      name.value = model.name;
      description.value = model.description || "";
      autoTrain.checked = model.auto_train;
      dirty = false;
    }
    document.getElementById("m-language").textContent = model.language;
    showProgress(model.run && model.run.progress);
    failure.hidden = !(code === 5 && model.last_error);
    if (code === 5 && model.last_error) {
      const cancelled = model.last_error.code === "cancelled";
      failure.dataset.code = model.last_error.code;
      failure.replaceChildren(h("h2", {}, cancelled ? "Training cancelled" : "Training failed"),
        h("p", {}, cancelled ? "Click “Train the Language” to start it again."
          : "Fix what is listed here, then click “Train the Language” to try again."),
        h("ul", { id: "failure-list" }, failureItems(model.last_error)));
    }
    evaluation.hidden = code !== 4;
    transcribe.hidden = code !== 4;
    if (code === 4) {
      evaluation.replaceChildren(h("h2", { id: "evaluation-title" }, "Evaluation: base model vs custom model"),
        ...evaluationView(model.run && model.run.metrics));
      if (transcribeFor !== model.id) {
        transcribeFor = model.id;
        transcribeForm(model.id).then((f) => transcribe.replaceChildren(
          h("h2", { id: "transcribe-title" }, "Transcribe with this model"), f));
      }
    }
    const blocked = datasetsBlockedReason(code);
    newDatasetBtn.disabled = Boolean(blocked);
    datasetsBlocked.hidden = !blocked;
    datasetsBlocked.textContent = blocked;
  }

  function paintDatasets() {
    // datasets can be removed in 1 and 5 only (the datasets API says model_locked or invalid_status otherwise)
    const onDelete = acceptsDatasets(model.status.code) ? deleteDataset : null;
    datasetsBody.replaceChildren(...(datasets.length ? datasets.map((d) => datasetRow(d, onDelete))
      : [h("tr", {}, h("td", { colspan: "6", class: "empty" }, "No datasets yet. Add some with “New Dataset”."))]));
  }

  function deleteDataset(ds) {
    confirmDialog({
      id: "delete-dataset-dialog", title: "Delete dataset", confirmLabel: "Delete", danger: true,
      message: `Delete ${ds.file_name} from ${model.name}? Its file is removed from storage.`,
      action: async () => {
        await api("DELETE", `/api/datasets/${id}/${ds.id}`);
        toast(`Dataset ${ds.file_name} deleted`);
        datasets = datasets.filter((d) => d.id !== ds.id);
        paintDatasets();
        load();
      },
    });
  }

  async function load() {
    const mine = ++loadSeq;
    try {
      // The datasets API learns of a new model from an event a moment after the models API created it:
      // until then it answers not_found, and the list is simply asked for again.
      const [m, ds] = await Promise.all([api("GET", `/api/models/${id}`), api("GET", `/api/datasets/${id}`)
        .catch((err) => { if (err instanceof ApiError && err.status === 404) return null; throw err; })]);
      // a status event (or a newer load) since this request was sent makes its answer stale
      if (gone || mine !== loadSeq) return;
      model = m;
      datasetsKnown = ds !== null;
      if (ds) datasets = ds.datasets;
      paint();
      paintDatasets();
    } catch (err) {
      if (gone || mine !== loadSeq) return;
      if (err instanceof ApiError && err.status === 404) {
        main.replaceChildren(h("div", { class: "panel" }, h("h1", {}, "Model not found"),
          h("p", {}, "There is no such model for this tenant. "), h("a", { href: "#/models" }, "Back to Custom Models")));
        gone = true;
        return;
      }
      toast(describe(err), "error");
    }
    schedulePoll();
  }

  // Validation of a dataset changes no status while a model waits at 1 or 5: follow it by polling.
  function schedulePoll() {
    clearTimeout(poll);
    if (gone) return;
    const pending = !datasetsKnown || datasets.some((d) => d.status === "uploaded" || d.status === "validating");
    if (pending) poll = setTimeout(load, datasetsKnown ? 2500 : 1000);
  }

  updateBtn.addEventListener("click", () => { formError.textContent = ""; });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!name.value.trim()) { formError.textContent = "A model needs a name."; name.focus(); return; }
    const body = {};
    if (name.value.trim() !== model.name) body.name = name.value.trim();
    if ((description.value || "") !== (model.description || "")) body.description = description.value;
    if (autoTrain.checked !== model.auto_train) body.auto_train = autoTrain.checked;
    if (!Object.keys(body).length) { toast("Nothing to update"); return; }
    updateBtn.disabled = true;
    try {
      model = await api("PATCH", `/api/models/${id}`, body);
      dirty = false;
      paint();
      toast("Model updated");
    } catch (err) {
      formError.textContent = describe(err);
    } finally {
      updateBtn.disabled = isLocked(model.status.code);
    }
  });

  trainBtn.addEventListener("click", () => {
    const cost = h("div", { id: "train-dialog-cost", class: "cost", "aria-live": "polite" },
      h("p", { class: "muted" }, "Working out what this training will cost…"));
    const showCost = (c) => cost.replaceChildren(...costView(c));
    confirmDialog({
      id: "train-dialog", title: "Train the language confirmation", confirmLabel: "Train",
      message: TRAIN_MESSAGE(model.name), extra: cost,
      action: async () => {
        let accepted;
        try {
          accepted = await api("POST", `/api/models/${id}/train`);
        } catch (err) {
          // refused for credits: the model is unchanged; the dialog shows the amounts the API checked
          if (err instanceof ApiError && err.code === "insufficient_credits" && err.details) showCost(err.details);
          throw err;
        }
        toast("Training started successfully");
        model = accepted.model;
        paint();
        load();
      },
    });
    api("GET", `/api/models/${id}`).then((m) => {
      if (m.cost) showCost(m.cost);
      else cost.hidden = true; // an API without credits: nothing to show
    }).catch((err) => { cost.replaceChildren(h("p", { class: "form-error" }, `The cost is not known: ${describe(err)}`)); });
  });

  cancelBtn.addEventListener("click", () => {
    confirmDialog({
      id: "cancel-dialog", title: "Cancel training", confirmLabel: "Cancel training", dismissLabel: "Keep training",
      danger: true,
      message: `Cancel the training of ${model.name}? Validation and training stop now, the model becomes Failed `
        + "(cancelled) and its reserved credits are refunded. You can train it again afterwards.",
      action: async () => {
        model = await api("POST", `/api/models/${id}/cancel`);
        toast("Training cancelled");
        paint();
        load();
      },
    });
  });

  exportBtn.addEventListener("click", async () => {
    exportBtn.disabled = true;
    try {
      toast(`Downloaded ${await download(`/api/models/${id}/export`, `voxtrain-model-${id}.tar.gz`)}`);
    } catch (err) {
      toast(describe(err), "error");
    } finally {
      exportBtn.disabled = false;
    }
  });

  newDatasetBtn.addEventListener("click", () => {
    openNewDataset(model, config, { onUploaded: load });
  });

  load();
  return {
    onLive(event) {
      if (event.type === "ready") { load(); return; }
      if (!model || event.data.model_id !== id) return;
      if (event.type === "status") {
        model.status = { ...model.status, code: event.data.new_status, badge: event.data.badge, label: event.data.label };
        if (event.data.error) model.last_error = event.data.error;
        if (event.data.new_status === 3) model.run = { ...(model.run || {}), progress: { stage: "starting", percent: 0 } };
        paint();
        load();
      } else if (event.type === "progress" && model.status.code === 3) {
        model.run = { ...(model.run || {}), progress: event.data };
        showProgress(event.data);
      }
    },
    teardown() { gone = true; clearTimeout(poll); },
  };
}

// ------------------------------------------------------------------ router

function markNav(name) {
  document.querySelectorAll("[data-nav]").forEach((a) => {
    if (a.dataset.nav === name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  });
}

function render() {
  if (page && page.teardown) page.teardown();
  page = null;
  document.querySelectorAll("dialog").forEach((d) => d.remove());
  document.getElementById("shell").inert = false;
  if (!auth.token) { document.title = "Sign in — voxtrain console"; page = pageSignIn(); return; }
  showChrome(true);
  const hash = location.hash || "#/models";
  const m = hash.match(/^#\/models\/([0-9a-fA-F-]{36})$/);
  if (m) { markNav("models"); page = pageModel(m[1]); return; }
  if (hash === "#/transcribe") { markNav("transcribe"); document.title = "Transcribe — voxtrain console"; page = pageTranscribe(); return; }
  markNav("models");
  document.title = "Custom Models — voxtrain console";
  page = pageModels();
}

async function boot() {
  config = await loadConfig((err) => { main.textContent = `Waiting for the voxtrain APIs (${err.message})…`; });
  document.getElementById("sign-out").addEventListener("click", () => signOut());
  window.addEventListener("hashchange", () => { render(); main.focus({ preventScroll: true }); });
  if (auth.key) {
    try {
      await startSession(auth.key); // a fresh token, and the events cookie again (it may have been cleared)
      live.connect();
    } catch {
      auth.clear();
    }
  }
  render();
  document.body.dataset.ready = "true";
}

boot();
