// Small DOM helpers: elements, badges, toasts, and modal dialogs that keep the keyboard inside.

/** Build an element. attrs: class, text, dataset, on<event>, booleans (true → present), anything else → attribute. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/** The spec's statuses by code: { name, label, badge, can_train, locked, accepts_datasets }, from the models
 * API's vocabulary (filled by vocab.js when the pages start). */
export const STATUSES = {};

export function setStatuses(list) {
  for (const s of list) STATUSES[s.code] = s;
}

/** "Train the Language" is offered (Not Running and Failed). */
export const canTrain = (code) => Boolean(STATUSES[code]?.can_train);
/** The model and its datasets cannot change (Ready to Run and Running). */
export const isLocked = (code) => Boolean(STATUSES[code]?.locked);
/** Cancel is offered while a training is queued or running: the statuses that lock the model (2 and 3). */
export const canCancel = (code) => isLocked(code);
/** Datasets may be added or removed. */
export const acceptsDatasets = (code) => Boolean(STATUSES[code]?.accepts_datasets);

/** "a, b, c or d". */
export function listText(items) {
  return items.length < 2 ? items.join("") : `${items.slice(0, -1).join(", ")} or ${items[items.length - 1]}`;
}

export function badge(code, extraClass = "") {
  const s = STATUSES[code] || { label: `Status ${code}`, badge: "zinc" };
  return h("span", { class: `badge ${extraClass}`.trim(), dataset: { badge: s.badge, status: String(code) } },
    h("span", { class: "dot", "aria-hidden": "true" }), s.label);
}

/** "1 credit", "12,500 credits". */
export function credits(n) {
  return `${Number(n).toLocaleString("en-US")} credit${n === 1 ? "" : "s"}`;
}

/** The trainer's estimate of the time left, in words: "about 12 min left"; "" when it has none. */
export function etaText(seconds) {
  if (typeof seconds !== "number" || !Number.isFinite(seconds) || seconds < 0) return "";
  if (seconds < 60) return "less than a minute left";
  const minutes = Math.round(seconds / 60);
  if (minutes < 120) return `about ${minutes} min left`;
  return `about ${Math.floor(minutes / 60)} h ${minutes % 60} min left`;
}

export function formatBytes(n) {
  if (n === null || n === undefined) return "";
  const units = ["bytes", "KB", "MB", "GB", "TB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
  return i === 0 ? `${n} bytes` : `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

export function formatDate(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

let toastSeq = 0;
/** A toast: success/info in the polite live region, errors in the assertive one. */
export function toast(message, kind = "success", ms = 6000) {
  const region = document.getElementById(kind === "error" ? "alerts" : "toasts");
  const id = `toast-${++toastSeq}`;
  const close = () => el.remove();
  const el = h("div", { class: `toast ${kind}`, id, dataset: { kind } },
    h("span", { class: "toast-text" }, message),
    h("button", { type: "button", "aria-label": "Dismiss", onclick: close }, "×"));
  region.append(el);
  if (ms) setTimeout(close, kind === "error" ? ms * 2 : ms);
  return el;
}

const FOCUSABLE = 'a[href], button:not([disabled]), input:not([disabled]):not([type="hidden"]), select:not([disabled]), ' +
  'textarea:not([disabled]), [tabindex]:not([tabindex="-1"])';

function focusables(root) {
  return [...root.querySelectorAll(FOCUSABLE)].filter((e) => !e.hidden && e.offsetParent !== null);
}

/**
 * Open a modal <dialog>: the page behind is inert, Tab and Shift+Tab cycle inside, Escape closes
 * (unless onEscape returns false), and focus returns to what had it before. Returns close().
 */
export function openDialog(dialog, { initialFocus = null, onClose = null, onEscape = null } = {}) {
  const opener = document.activeElement;
  const shell = document.getElementById("shell");
  document.body.append(dialog);
  shell.inert = true;
  dialog.showModal();
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    document.removeEventListener("keydown", onKey, true);
    if (dialog.open) dialog.close();
    dialog.remove();
    shell.inert = document.querySelectorAll("dialog[open]").length > 0;
    if (onClose) onClose();
    if (opener && opener.isConnected && typeof opener.focus === "function") opener.focus();
  };
  const escape = () => { if (!onEscape || onEscape() !== false) close(); };
  // On the document, not the dialog: a button that disables itself drops the focus to <body>,
  // and Escape and Tab must still work then.
  const onKey = (e) => {
    if (closed || document.querySelector("dialog[open]:last-of-type") !== dialog) return;
    if (e.key === "Escape") {
      e.preventDefault();
      escape();
      return;
    }
    if (e.key !== "Tab") return;
    const items = focusables(dialog);
    if (items.length === 0) { e.preventDefault(); return; }
    const first = items[0];
    const last = items[items.length - 1];
    const inside = dialog.contains(document.activeElement);
    if (e.shiftKey && (document.activeElement === first || !inside)) {
      e.preventDefault();
      last.focus();
    } else if (!e.shiftKey && (document.activeElement === last || !inside)) {
      e.preventDefault();
      first.focus();
    }
  };
  document.addEventListener("keydown", onKey, true);
  dialog.addEventListener("cancel", (e) => { e.preventDefault(); escape(); }); // the browser's own Escape
  const target = initialFocus || focusables(dialog)[0];
  if (target) target.focus();
  return close;
}

/** A progress bar (role=progressbar) with a setter: bar.set(fraction 0..1, label). */
export function progressBar(label) {
  const fill = h("span");
  const bar = h("div", { class: "bar", role: "progressbar", "aria-label": label, "aria-valuemin": "0",
    "aria-valuemax": "100", "aria-valuenow": "0" }, fill);
  bar.set = (fraction) => {
    const pct = Math.max(0, Math.min(100, Math.round(fraction * 100)));
    fill.style.setProperty("width", `${pct}%`);
    bar.setAttribute("aria-valuenow", String(pct));
    bar.dataset.percent = String(pct);
  };
  return bar;
}
