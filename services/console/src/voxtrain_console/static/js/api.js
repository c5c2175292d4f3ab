// The console's one origin: /api/… (proxied to the models, datasets and transcription APIs).
// The tenant token lives in sessionStorage (this tab only) and goes out as Authorization: Bearer.

const TOKEN_KEY = "voxtrain.token";
const API_KEY = "voxtrain.apiKey"; // exchanged again for a new short-lived token before the token expires
const TENANT_KEY = "voxtrain.tenant";

/** The spec's and the design's error codes, in words. */
export const ERROR_WORDS = {
  validation_failed: "Datasets failed validation",
  invalid_audio_format: "Audio files invalid format",
  invalid_transcript_format: "Transcript files invalid format",
  file_too_large: "File size exceeds 10GB limit",
  too_many_files: "Too many files: select 1–10 files per upload",
  model_locked: "The model is queued or training: it cannot be modified until training is finished",
  invalid_status: "Not possible in the model's current status",
  not_found: "Not found",
  conflict: "Conflict with another request",
  unauthorized: "Your token is missing, invalid or expired",
  forbidden: "Not allowed for this tenant",
  storage_unavailable: "File storage is unavailable",
  no_training_text: "No training text in the datasets",
  stage_failed: "A training stage failed",
  worker_lost: "The training worker was lost",
  training_timeout: "Training took too long",
  cancelled: "Training was cancelled",
  insufficient_credits: "Not enough credits for this training",
  no_datasets: "The model has no datasets yet",
  server_busy: "voxtrain is busy: try again shortly",
  upload_abandoned: "The upload was not completed",
  part_checksum_missing: "Part of the upload was not verified: retry to resend it",
  part_checksum_mismatch: "Part of the upload arrived damaged: retry to resend it",
  upstream_unavailable: "A voxtrain service is unavailable",
  upstream_timeout: "A voxtrain service did not answer in time",
  network: "The console cannot be reached",
};

/** What to do about an error, per code (shown with a Failed model's errors); the fixes that name rules
 * (extensions, limits) are added by vocab.js from the loaded vocabulary. */
export const ERROR_FIXES = {
  invalid_transcript_format: "Fix the transcript (UTF-8 text; valid .vtt or .srt structure; not empty), upload it again, then train again.",
  validation_failed: "Check the dataset named here, upload a corrected one, then click “Train the Language”.",
  stage_failed: "Check the datasets named here; if they look right, train again.",
  worker_lost: "The training was interrupted: click “Train the Language” to start it again.",
  training_timeout: "Training took too long: use fewer or smaller datasets, then train again.",
};

export function words(code) {
  return ERROR_WORDS[code] || (code ? code.replaceAll("_", " ") : "Error");
}

export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message || words(code));
    this.status = status;
    this.code = code;
    this.details = details;
  }

  /** "Words (code): the server's message" */
  describe() {
    const lead = `${words(this.code)} (${this.code})`;
    return this.message && this.message !== words(this.code) ? `${lead}: ${this.message}` : lead;
  }
}

export const auth = {
  get token() { return sessionStorage.getItem(TOKEN_KEY); },
  get tenant() { return sessionStorage.getItem(TENANT_KEY); },
  get key() { return sessionStorage.getItem(API_KEY); },
  save(token, tenant, key) {
    sessionStorage.setItem(TOKEN_KEY, token); sessionStorage.setItem(TENANT_KEY, tenant); sessionStorage.setItem(API_KEY, key);
  },
  clear() { [TOKEN_KEY, TENANT_KEY, API_KEY].forEach((k) => sessionStorage.removeItem(k)); },
};

/** Called when an API answers 401: the page signs out. */
export const hooks = { unauthorized: () => {} };

function errorFrom(status, body) {
  const e = body && body.error;
  if (e) return new ApiError(status, e.code, e.message, e.details);
  return new ApiError(status, status >= 500 ? "upstream_unavailable" : "validation_failed", `HTTP ${status}`);
}

async function parsed(response) {
  const text = await response.text();
  try { return text ? JSON.parse(text) : null; } catch { return null; }
}

/** Send a request to the console's API; throws ApiError for a refusal; the answer as it came otherwise. */
async function request(method, path, body, accept) {
  const headers = { Accept: accept };
  if (auth.token) headers.Authorization = `Bearer ${auth.token}`;
  let payload;
  if (body instanceof FormData) payload = body;
  else if (body !== undefined) { headers["Content-Type"] = "application/json"; payload = JSON.stringify(body); }
  let response;
  try {
    response = await fetch(path, { method, headers, body: payload });
  } catch (exc) {
    throw new ApiError(0, "network", `The console did not answer (${exc.message}).`);
  }
  if (!response.ok) {
    const err = errorFrom(response.status, await parsed(response));
    if (response.status === 401 && path !== "/api/session") hooks.unauthorized(err);
    throw err;
  }
  return response;
}

/** Send a request to the console's API; JSON in, JSON out; throws ApiError. */
export async function api(method, path, body = undefined) {
  return parsed(await request(method, path, body, "application/json"));
}

/** Download a file from the console's API (with the token): saved under the name the API gives it. */
export async function download(path, fallbackName) {
  const response = await request("GET", path, undefined, "*/*");
  const disposition = response.headers.get("content-disposition") || "";
  const match = disposition.match(/filename="?([^";]+)"?/);
  const url = URL.createObjectURL(await response.blob());
  const link = document.createElement("a");
  link.href = url;
  link.download = match ? match[1] : fallbackName;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
  return link.download;
}

/**
 * Send with XMLHttpRequest so upload progress can be shown: onProgress(loadedBytes, totalBytes).
 * Resolves with the parsed JSON answer; rejects with ApiError. `signal` aborts.
 */
export function send(method, path, body, { onProgress = () => {}, signal = null, contentType = null, headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, path);
    if (auth.token) xhr.setRequestHeader("Authorization", `Bearer ${auth.token}`);
    xhr.setRequestHeader("Accept", "application/json");
    if (contentType) xhr.setRequestHeader("Content-Type", contentType);
    for (const [name, value] of Object.entries(headers)) xhr.setRequestHeader(name, value);
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded, e.total); };
    xhr.onload = () => {
      let json = null;
      try { json = xhr.responseText ? JSON.parse(xhr.responseText) : null; } catch { json = null; }
      if (xhr.status >= 200 && xhr.status < 300) resolve(json);
      else {
        const err = errorFrom(xhr.status, json);
        if (xhr.status === 401) hooks.unauthorized(err);
        reject(err);
      }
    };
    xhr.onerror = () => reject(new ApiError(0, "network", "The upload was interrupted (network error)."));
    xhr.onabort = () => reject(new ApiError(0, "aborted", "Upload cancelled."));
    if (signal) {
      if (signal.aborted) { reject(new ApiError(0, "aborted", "Upload cancelled.")); return; }
      signal.addEventListener("abort", () => xhr.abort(), { once: true });
    }
    xhr.send(body);
  });
}
