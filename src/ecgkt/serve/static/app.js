// ecgkt upload page: send the chosen file(s) to POST /v1/report and show the returned HTML fragment.
// Plain browser JavaScript, no build step, no third-party code.
"use strict";

(function () {
  const form = document.getElementById("upload-form");
  const input = document.getElementById("file-input");
  const dropZone = document.getElementById("drop-zone");
  const fileList = document.getElementById("file-list");
  const submit = document.getElementById("submit");
  const status = document.getElementById("status");
  const errorBox = document.getElementById("error");
  const report = document.getElementById("report");
  let chosen = [];

  function setFiles(files) {
    chosen = Array.from(files);
    fileList.replaceChildren(...chosen.map((file) => {
      const item = document.createElement("li");
      item.textContent = `${file.name} (${(file.size / 1024).toFixed(1)} KiB)`;
      return item;
    }));
    submit.disabled = chosen.length === 0;
    hideError();
  }

  function showError(text) {
    errorBox.textContent = text;
    errorBox.hidden = false;
  }

  function hideError() {
    errorBox.hidden = true;
    errorBox.textContent = "";
  }

  async function describeFailure(response) {
    try {
      const body = await response.json();
      if (body && body.error) {
        return `${body.detail}\n(${body.error}, HTTP ${response.status})`;
      }
    } catch (_) {
      // not JSON: fall through
    }
    return `The server answered HTTP ${response.status}.`;
  }

  input.addEventListener("change", () => setFiles(input.files));
  ["dragenter", "dragover"].forEach((name) => dropZone.addEventListener(name, (event) => {
    event.preventDefault();
    dropZone.classList.add("dragging");
  }));
  ["dragleave", "drop"].forEach((name) => dropZone.addEventListener(name, (event) => {
    event.preventDefault();
    dropZone.classList.remove("dragging");
  }));
  dropZone.addEventListener("drop", (event) => setFiles(event.dataTransfer.files));

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (chosen.length === 0) {
      return;
    }
    const data = new FormData();
    chosen.forEach((file) => data.append("files", file, file.name));
    for (const name of ["sampling_rate_hz", "leads", "units", "missing_leads"]) {
      const value = form.elements[name].value.trim();
      if (value && !(name === "units" && value === "auto") && !(name === "missing_leads" && value === "error")) {
        data.append(name, value);
      }
    }
    submit.disabled = true;
    status.textContent = "Analysing…";
    hideError();
    report.replaceChildren();
    try {
      const response = await fetch("/v1/report", { method: "POST", body: data });
      if (!response.ok) {
        showError(await describeFailure(response));
        status.textContent = "";
        return;
      }
      // The fragment is rendered by the server from an autoescaping template; scripts are blocked by CSP.
      report.innerHTML = await response.text();
      status.textContent = "Done.";
    } catch (error) {
      showError(`Could not reach the service: ${error}`);
      status.textContent = "";
    } finally {
      submit.disabled = chosen.length === 0;
    }
  });

  fetch("/v1/model")
    .then((response) => (response.ok ? response.json() : Promise.reject(response.status)))
    .then((info) => {
      const macro = info.validation_macro_auroc_diagnosis;
      document.getElementById("model-line").textContent =
        `Model: ${info.diagnoses.length} diagnoses, ${info.labs.length} lab abnormalities` +
        (macro === null ? "" : `, validation macro AUROC ${macro.toFixed(3)}`) +
        ` · backend ${info.backend} · ecgkt ${info.ecgkt_version}`;
    })
    .catch(() => {
      document.getElementById("model-line").textContent = "Model information unavailable.";
    });
})();
