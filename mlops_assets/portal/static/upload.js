// The upload form, enhanced: a file may be dropped on its area, and the upload shows its
// progress. Without this script the same form posts as it is.
"use strict";
(function () {
  function enhance() {
    const form = document.getElementById("upload-form");
    if (!form || form.dataset.enhanced) return;
    form.dataset.enhanced = "yes";
    const drop = document.getElementById("drop");
    const input = document.getElementById("file");
    const help = document.getElementById("drop-help");
    const progress = document.getElementById("progress");
    const bar = document.getElementById("progress-bar");
    const text = document.getElementById("progress-text");
    const chosen = () => { if (input.files.length) help.textContent = "Chosen: " + input.files[0].name; };
    input.addEventListener("change", chosen);
    ["dragenter", "dragover"].forEach((name) => drop.addEventListener(name, (event) => {
      event.preventDefault();
      drop.classList.add("over");
    }));
    ["dragleave", "drop"].forEach((name) => drop.addEventListener(name, () => drop.classList.remove("over")));
    drop.addEventListener("drop", (event) => {
      event.preventDefault();
      if (event.dataTransfer && event.dataTransfer.files.length) {
        input.files = event.dataTransfer.files;
        chosen();
      }
    });
    form.addEventListener("submit", (event) => {
      if (!window.XMLHttpRequest || !window.FormData) return;  // the plain form does it
      event.preventDefault();
      const request = new XMLHttpRequest();
      request.open("POST", form.action);
      progress.hidden = false;
      form.querySelector("button[type=submit]").disabled = true;
      request.upload.addEventListener("progress", (e) => {
        if (e.lengthComputable) {
          const percent = Math.round((e.loaded / e.total) * 100);
          bar.value = percent;
          text.textContent = percent + " %";
        }
      });
      request.upload.addEventListener("load", () => { text.textContent = "Checking…"; });
      request.addEventListener("load", () => {
        if (request.status === 200 && request.responseURL && !request.responseURL.endsWith("/upload")) {
          window.location.assign(request.responseURL);  // the pre-check's report
          return;
        }
        // A refusal: the answer is the form again, with what is wrong.
        const page = new DOMParser().parseFromString(request.responseText, "text/html");
        const main = page.querySelector("main");
        if (main) {
          document.querySelector("main").replaceWith(main);
          enhance();
          const problem = document.getElementById("problem");
          if (problem) problem.focus();
        }
      });
      request.addEventListener("error", () => {
        text.textContent = "The upload failed: check your connection and try again.";
        form.querySelector("button[type=submit]").disabled = false;
      });
      request.send(new FormData(form));
    });
  }
  document.addEventListener("DOMContentLoaded", enhance);
})();
