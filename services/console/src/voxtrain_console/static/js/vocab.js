// The product's rules, from the APIs that own them — never copied here: statuses (names, badges, which
// allow Train or lock changes), languages and dataset types from the models API (/api/vocabulary), the
// upload limits from the datasets API (/api/upload-limits), plus the console's own settings (/api/config).
// Loaded once when the pages start.

import { ERROR_FIXES } from "./api.js";
import { listText, setStatuses } from "./ui.js";
import { sizeText } from "./upload.js";

const RETRY_MS = 2000;

async function getJson(path) {
  const r = await fetch(path, { headers: { accept: "application/json" } });
  if (!r.ok) throw new Error(`${path} answered ${r.status}`);
  return r.json();
}

/** The fixes that name rules (extensions, limits), worded from the loaded rules. */
function describeFixes(config) {
  const ext = config.extensions;
  ERROR_FIXES.invalid_audio_format = `Replace the file with real audio in the format its extension names (${listText(ext.AUDIO)}), then click “Train the Language”.`;
  ERROR_FIXES.file_too_large = `Split the file into parts of at most ${sizeText(config.max_file_bytes)} each.`;
  ERROR_FIXES.no_training_text = `Upload transcripts (TRANSCRIPT, ${ext.TRANSCRIPT.join("/")}) or a manifest with text, then train again.`;
}

/**
 * The pages' configuration: { statuses, languages, types, extensions, max_files, max_file_bytes,
 * resumable_threshold_bytes }. Waits (calling `onWait(error)`) while an API cannot answer.
 */
export async function loadConfig(onWait = () => {}) {
  for (;;) {
    try {
      const [vocabulary, limits, own] = await Promise.all(
        [getJson("/api/vocabulary"), getJson("/api/upload-limits"), getJson("/api/config")]);
      setStatuses(vocabulary.statuses);
      const config = {
        ...own,
        max_files: limits.max_files,
        max_file_bytes: limits.max_file_bytes,
        statuses: vocabulary.statuses,
        languages: vocabulary.languages,
        types: vocabulary.dataset_types,
        extensions: Object.fromEntries(vocabulary.dataset_types.map((t) => [t.name, t.extensions])),
      };
      describeFixes(config);
      return config;
    } catch (err) {
      onWait(err);
      await new Promise((r) => { setTimeout(r, RETRY_MS); });
    }
  }
}
