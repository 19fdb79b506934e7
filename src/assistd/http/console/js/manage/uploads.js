// Uploading several files at once, each with its own progress bar and outcome; used by
// the Files page and by a vector store's "Add files".

import { upload } from "../api.js";
import { errorText, h } from "../dom.js";

/**
 * Upload `files` with `purpose`, showing each in `list` (a <ul>). Resolves with the
 * uploaded file objects (those that failed are left out; their row says why).
 */
export async function uploadAll(files, purpose, list) {
  const jobs = [...files].map(async (file) => {
    const bar = h("progress", { max: 1, value: 0, "aria-label": `Upload of ${file.name}` });
    const state = h("span", { class: "upload-state" }, "Uploading…");
    list.append(
      h("li", { class: "upload" }, h("span", { class: "upload-name" }, file.name), bar, state),
    );
    try {
      const uploaded = await upload(file, purpose, (fraction) => (bar.value = fraction));
      bar.value = 1;
      state.textContent = "Done";
      state.className = "upload-state status completed";
      return uploaded;
    } catch (error) {
      state.textContent = errorText(error);
      state.className = "upload-state invalid";
      return null;
    }
  });
  return (await Promise.all(jobs)).filter(Boolean);
}

/** Make `zone` take dropped files: `onFiles(fileList)`. */
export function dropzone(zone, onFiles) {
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    if (event.dataTransfer?.files?.length) onFiles(event.dataTransfer.files);
  });
  return zone;
}
