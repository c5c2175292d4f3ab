// Dataset uploads: the checks the datasets API makes (so mistakes show before a byte is sent) and the
// two ways to send — one streamed multipart request for ordinary files, and the resumable upload
// (parts relayed by the console to object storage, each with its SHA-256, which storage verifies; then
// "complete") for big ones.

import { ApiError, api, send } from "./api.js";

/** The type select's options: auto, then every dataset type with its extensions (from the vocabulary). */
export function typeOptions(config) {
  return [{ value: "auto", label: "Auto-detect (default)" },
    ...config.types.map((t) => ({ value: t.name, label: `${t.name} (${t.extensions.join(", ")})` }))];
}
const PART_CONCURRENCY = 3;
const PART_ATTEMPTS = 4;

/** The lower-case extension with its dot, as the server computes it ("" when there is none). */
export function extensionOf(name) {
  const base = name.split(/[\\/]/).pop();
  const dot = base.lastIndexOf(".");
  const dots = base.split(".").length - 1;
  return dot > 0 || (dot === 0 && dots > 1) ? base.slice(dot).toLowerCase() : "";
}

/** "10GB", as the spec writes the limit. */
export function sizeText(limit) {
  for (const [unit, name] of [[1024 ** 3, "GB"], [1024 ** 2, "MB"], [1024, "KB"]]) {
    if (limit % unit === 0) return `${limit / unit}${name}`;
  }
  return `${limit} bytes`;
}

/** The type "auto" gives a file (the vocabulary says which types it detects), or null. */
export function detectType(name, config) {
  const ext = extensionOf(name);
  for (const t of config.types) {
    if (t.auto_detected && t.extensions.includes(ext)) return t.name;
  }
  return null;
}

/** { type, error: null | { code, message } } for one file, with the server's codes. */
export function checkFile(file, requested, config) {
  if (file.size > config.max_file_bytes) {
    return { type: null, error: { code: "file_too_large", message: `File size exceeds ${sizeText(config.max_file_bytes)} limit: ${file.name}` } };
  }
  const ext = extensionOf(file.name);
  if (requested !== "auto") {
    const accepted = config.extensions[requested];
    if (accepted.includes(ext)) return { type: requested, error: null };
    const code = requested === "AUDIO" ? "invalid_audio_format"
      : requested === "MANIFEST" ? "validation_failed" : "invalid_transcript_format";
    const what = requested === "AUDIO" ? "audio files" : `${requested} files`;
    return { type: null, error: { code, message: `${file.name}: ${what} must be ${accepted.join(", ")}.` } };
  }
  const detected = detectType(file.name, config);
  if (detected) return { type: detected, error: null };
  const every = [...new Set(Object.values(config.extensions).flat())].sort();
  return { type: null, error: { code: "validation_failed",
    message: `${file.name}: cannot detect the dataset type from the extension; use one of ${every.join(", ")} or choose a type.` } };
}

/** null, or the error for a selection of `count` files. */
export function checkCount(count, config) {
  if (count === 0) return { code: "validation_failed", message: `Select 1-${config.max_files} files.` };
  if (count > config.max_files) {
    return { code: "too_many_files", message: `Select 1-${config.max_files} files per upload (got ${count}).` };
  }
  return null;
}

const sleep = (ms) => new Promise((r) => { setTimeout(r, ms); });

function resumeKey(modelId, type, file) {
  return `voxtrain.upload:${modelId}:${type}:${file.name}:${file.size}:${file.lastModified}`;
}

/** Open (or find again, after a reload or a failure) the resumable upload of one file. */
async function session(modelId, type, file) {
  const key = resumeKey(modelId, type, file);
  const known = localStorage.getItem(key);
  if (known) {
    try {
      const s = await api("GET", `/api/uploads/${modelId}/${known}`);
      if (s.state === "open") return s;
    } catch (err) {
      if (!(err instanceof ApiError) || err.status !== 404) throw err;
    }
    localStorage.removeItem(key);
  }
  const s = await api("POST", `/api/uploads/${modelId}`, { file_name: file.name, size: file.size, type });
  localStorage.setItem(key, s.id);
  return s;
}

/** The part's checksum storage verifies (base64 of its SHA-256), or null where the page has no WebCrypto
 * (plain http on another host than localhost): the console then computes it. */
async function partChecksum(blob) {
  if (!globalThis.crypto?.subtle) return null;
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", await blob.arrayBuffer()));
  let text = "";
  for (const byte of digest) text += String.fromCharCode(byte);
  return btoa(text);
}

async function putPart(modelId, uploadId, number, blob, signal, onProgress) {
  const checksum = await partChecksum(blob);
  const headers = checksum ? { "x-amz-checksum-sha256": checksum } : {};
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await send("PUT", `/api/uploads/${modelId}/${uploadId}/parts/${number}`, blob,
        { onProgress, signal, contentType: "application/octet-stream", headers });
    } catch (err) {
      const retriable = err.status === 0 || err.status >= 500 || err.status === 408;
      if (err.code === "aborted" || !retriable || attempt >= PART_ATTEMPTS) throw err;
      onProgress(0, blob.size);
      await sleep(800 * attempt);
    }
  }
}

/** Send every missing part of a resumable upload; onProgress(fraction). */
async function sendParts(modelId, s, file, signal, onProgress) {
  const done = new Map(s.parts_received.map((p) => [p.part_number, p.size]));
  const inFlight = new Map();
  const report = () => {
    let bytes = 0;
    for (const v of done.values()) bytes += v;
    for (const v of inFlight.values()) bytes += v;
    onProgress(bytes / file.size);
  };
  report();
  const queue = [...s.missing_parts];
  const worker = async () => {
    while (queue.length) {
      const n = queue.shift();
      const start = (n - 1) * s.part_size;
      const blob = file.slice(start, Math.min(start + s.part_size, file.size));
      inFlight.set(n, 0);
      await putPart(modelId, s.id, n, blob, signal, (loaded) => { inFlight.set(n, loaded); report(); });
      inFlight.delete(n);
      done.set(n, blob.size);
      report();
    }
  };
  await Promise.all(Array.from({ length: Math.min(PART_CONCURRENCY, queue.length) }, worker));
}

/**
 * Upload entries ({file, type}) to a model. Each entry gets state "uploading" | "done" | "failed",
 * progress (0..1) and error (an ApiError); onChange(entry) is called whenever one of them changes.
 * A selection without big files goes up in one streamed form request. As soon as one file is big
 * (≥ resumable_threshold_bytes), every file of the selection goes through a resumable session and all
 * sessions are completed together in one call: either way the selection is ONE upload, so a model with
 * auto-train waits for all of its files, and one failed file keeps the others from being recorded.
 */
export async function uploadEntries(modelId, requestedType, entries, config, { signal, onChange }) {
  const set = (entry, patch) => { Object.assign(entry, patch); onChange(entry); };
  const resumable = entries.some((e) => e.file.size >= config.resumable_threshold_bytes);
  entries.forEach((e) => set(e, { state: "uploading", progress: 0, error: null }));
  if (!resumable) {
    await sendForm(modelId, requestedType, entries, set, signal);
    return entries;
  }
  const sessions = new Map();
  await Promise.all(entries.map(async (entry) => {
    try {
      const s = await session(modelId, requestedType, entry.file);
      sessions.set(entry, s);
      await sendParts(modelId, s, entry.file, signal, (fraction) => set(entry, { progress: fraction * 0.99 }));
    } catch (err) {
      set(entry, { state: "failed", error: err });
    }
  }));
  const failed = entries.filter((e) => e.state === "failed");
  if (failed.length) {  // one bad file rejects the whole upload; the sent parts stay resumable
    const reason = { code: "validation_failed", message: `${failed.length} of the files could not be sent; nothing was recorded. Retry to resume.` };
    entries.filter((e) => e.state !== "failed").forEach((e) => set(e, { state: "failed", error: reason }));
    return entries;
  }
  try {
    await api("POST", `/api/uploads/${modelId}/complete`, { uploads: [...sessions.values()].map((s) => ({ id: s.id })) });
    for (const entry of entries) {
      localStorage.removeItem(resumeKey(modelId, requestedType, entry.file));
      set(entry, { state: "done", progress: 1 });
    }
  } catch (err) {
    entries.forEach((e) => set(e, { state: "failed", error: err }));
  }
  return entries;
}

async function sendForm(modelId, requestedType, entries, set, signal) {
  const form = new FormData();
  entries.forEach((e) => form.append("files", e.file, e.file.name));
  const total = entries.reduce((n, e) => n + e.file.size, 0) || 1;
  const offsets = [];
  entries.reduce((offset, e) => { offsets.push(offset); return offset + e.file.size; }, 0);
  const onProgress = (loaded, sent) => {
    const bytes = (loaded / (sent || 1)) * total; // the form's own headers are a few hundred bytes
    entries.forEach((e, i) => {
      const f = e.file.size ? (bytes - offsets[i]) / e.file.size : 1;
      set(e, { progress: Math.max(0, Math.min(0.99, f)) });
    });
  };
  try {
    await send("POST", `/api/datasets/${modelId}?type=${encodeURIComponent(requestedType)}`, form, { onProgress, signal });
    entries.forEach((e) => set(e, { state: "done", progress: 1 }));
  } catch (err) {
    entries.forEach((e) => set(e, { state: "failed", error: err }));
  }
}
