// The "New Dataset" modal: type select, an upload area (click or drag-and-drop, 1–10 files),
// the client-side checks, per-file progress bars, and "Create".

import { ApiError, words } from "./api.js";
import { formatBytes, h, openDialog, progressBar, toast } from "./ui.js";
import { checkCount, checkFile, sizeText, typeOptions, uploadEntries } from "./upload.js";

function describe(err) {
  return err instanceof ApiError ? err.describe() : (err && err.message) || String(err);
}

export function openNewDataset(model, config, { onUploaded }) {
  let entries = []; // { file, checked: {type, error}, state, progress, error, row }
  let busy = false;
  let controller = null;

  const typeSelect = h("select", { id: "nd-type", name: "type" }, typeOptions(config).map((t) => h("option", { value: t.value }, t.label)));
  const input = h("input", { type: "file", id: "nd-files", name: "files", multiple: true, hidden: true,
    accept: [...new Set(Object.values(config.extensions).flat())].join(",") });
  const zone = h("div", { class: "dropzone", id: "nd-dropzone", role: "button", tabindex: "0",
    "aria-describedby": "nd-help", "aria-controls": "nd-list" },
    h("div", {}, h("strong", {}, "Click to select files"), " or drag and drop them here"),
    h("div", { class: "hint", id: "nd-help" },
      `1–${config.max_files} files per upload, at most ${sizeText(config.max_file_bytes)} per file`));
  const list = h("ul", { class: "files", id: "nd-list", "aria-label": "Selected files" });
  const formError = h("p", { class: "form-error", id: "nd-error", role: "alert" });
  const create = h("button", { class: "btn btn-primary", type: "submit", id: "nd-create", disabled: true }, "Create");
  const cancel = h("button", { class: "btn", type: "button", id: "nd-cancel" }, "Cancel");
  const form = h("form", { id: "new-dataset-form", novalidate: true },
    h("div", { class: "dialog-body" },
      h("h2", { id: "nd-title" }, "New Dataset"),
      h("p", { class: "muted" }, `Add datasets to ${model.name}.`),
      h("div", { class: "field" }, h("label", { for: "nd-type" }, "Dataset type"), typeSelect),
      h("div", { class: "field" }, h("span", { class: "label", id: "nd-files-label" }, "Files"), zone, input),
      list, formError),
    h("div", { class: "dialog-foot" }, cancel, create));
  const dialog = h("dialog", { id: "new-dataset-dialog", "aria-labelledby": "nd-title" }, form);

  const close = openDialog(dialog, {
    initialFocus: typeSelect,
    onEscape: () => !busy, // Escape during an upload does nothing: use Cancel to stop it
  });

  function recheck() {
    const type = typeSelect.value;
    for (const e of entries) {
      if (e.state !== "done") e.checked = checkFile(e.file, type, config);
    }
    const pending = entries.filter((e) => e.state !== "done");
    const countError = checkCount(pending.length, config);
    formError.textContent = countError && pending.length > 0 ? `${words(countError.code)} (${countError.code}): ${countError.message}` : "";
    create.disabled = busy || Boolean(countError) || pending.some((e) => e.checked.error);
    renderList();
  }

  function renderEntry(e, index) {
    const remove = h("button", { class: "btn btn-small btn-quiet", type: "button", "aria-label": `Remove ${e.file.name}`,
      disabled: busy || e.state === "done",
      onclick: () => { entries.splice(index, 1); recheck(); zone.focus(); } }, "Remove");
    const bar = progressBar(`Upload of ${e.file.name}`);
    bar.set(e.progress || 0);
    if (e.state === "done") bar.classList.add("done");
    if (e.state === "failed") bar.classList.add("failed");
    bar.hidden = !e.state;
    let status = null;
    if (e.state === "uploading") status = h("div", { class: "file-state" }, `Uploading… ${Math.round((e.progress || 0) * 100)}%`);
    if (e.state === "done") status = h("div", { class: "file-state ok" }, "Uploaded");
    if (e.state === "failed") status = h("p", { class: "file-error" }, describe(e.error));
    const problem = e.checked && e.checked.error && e.state !== "done"
      ? h("p", { class: "file-error" }, `${words(e.checked.error.code)} (${e.checked.error.code}): ${e.checked.error.message}`) : null;
    return h("li", { dataset: { fileName: e.file.name, state: e.state || "selected" } },
      h("div", { class: "file-row" },
        h("span", { class: "file-name", title: e.file.name }, e.file.name),
        h("span", { class: "file-type" }, e.checked && e.checked.type ? e.checked.type : ""),
        h("span", { class: "file-size" }, formatBytes(e.file.size)),
        remove),
      problem, bar, status);
  }

  function renderList() {
    list.replaceChildren(...entries.map(renderEntry));
  }

  function add(files) {
    if (busy) return;
    entries = entries.filter((e) => e.state !== "done");
    for (const file of files) entries.push({ file, checked: null, state: null, progress: 0, error: null });
    recheck();
  }

  const pick = () => { if (!busy) input.click(); };
  zone.addEventListener("click", pick);
  zone.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); pick(); } });
  input.addEventListener("change", () => { add([...input.files]); input.value = ""; });
  zone.addEventListener("dragenter", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragover", (e) => { e.preventDefault(); if (e.dataTransfer) e.dataTransfer.dropEffect = "copy"; });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    if (e.dataTransfer && e.dataTransfer.files) add([...e.dataTransfer.files]);
  });
  typeSelect.addEventListener("change", recheck);

  cancel.addEventListener("click", () => {
    if (controller) controller.abort();
    close();
  });

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    recheck();
    if (create.disabled) return;
    const todo = entries.filter((x) => x.state !== "done");
    busy = true;
    create.disabled = true;
    typeSelect.disabled = true;
    zone.setAttribute("aria-disabled", "true");
    formError.textContent = "";
    controller = new AbortController();
    let last = 0;
    const onChange = () => {
      const now = performance.now();
      if (now - last > 100) { last = now; renderList(); }
    };
    try {
      await uploadEntries(model.id, typeSelect.value, todo, config, { signal: controller.signal, onChange });
    } finally {
      busy = false;
      controller = null;
      typeSelect.disabled = false;
      zone.removeAttribute("aria-disabled");
    }
    renderList();
    const failed = todo.filter((x) => x.state === "failed");
    const done = todo.filter((x) => x.state === "done");
    if (done.length) onUploaded();
    if (!failed.length) {
      toast(`${done.length} dataset${done.length === 1 ? "" : "s"} uploaded`);
      close();
      return;
    }
    formError.textContent = done.length
      ? `${done.length} uploaded, ${failed.length} failed: see each file. Create sends the failed ones again.`
      : "The upload failed: see each file.";
    recheck();
  });
}
