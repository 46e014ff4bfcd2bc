// crvault: progressive enhancement only. Without this file every page and
// form still works; with it, materials upload by drag and drop, several at
// once, each with its own progress bar, straight to the JSON API with the
// session cookie and the CSRF token in a header.
(function () {
  "use strict";

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text) { e.textContent = text; }
    return e;
  }

  function setupUpload(form) {
    var input = form.querySelector("input[type=file]");
    var drop = form.querySelector(".drop");
    var list = form.querySelector(".uploads");
    var kind = form.querySelector("select[name=kind]");
    var api = form.getAttribute("data-api");
    var csrf = form.getAttribute("data-csrf");
    var t = list.dataset;
    var pending = 0, okCount = 0;

    function finished() {
      if (pending === 0 && okCount > 0 && !form.querySelector(".reload")) {
        var a = el("a", { href: window.location.pathname + "?done=uploaded", "class": "reload button" }, t.reload);
        list.parentNode.insertBefore(a, list.nextSibling);
      }
    }

    function send(file, item) {
      var bar = item.querySelector("progress");
      var state = item.querySelector(".state");
      var old = item.querySelector("button");
      if (old) { old.remove(); }
      pending++;
      state.textContent = t.waiting;
      var xhr = new XMLHttpRequest();
      xhr.open("POST", api);
      xhr.setRequestHeader("X-CSRF-Token", csrf);
      xhr.upload.addEventListener("progress", function (ev) {
        if (ev.lengthComputable) {
          bar.max = ev.total;
          bar.value = ev.loaded;
          state.textContent = Math.floor(100 * ev.loaded / ev.total) + "%";
        }
      });
      xhr.addEventListener("load", function () {
        pending--;
        if (xhr.status === 201) {
          bar.value = bar.max;
          state.textContent = t.done;
          item.classList.add("done");
          okCount++;
        } else {
          var msg = "";
          try { msg = JSON.parse(xhr.responseText).code || ""; } catch (e) { msg = ""; }
          fail(file, item, msg || String(xhr.status));
        }
        finished();
      });
      xhr.addEventListener("error", function () { pending--; fail(file, item, ""); finished(); });
      xhr.addEventListener("abort", function () { pending--; fail(file, item, ""); finished(); });
      var body = new FormData();
      body.append("kind", kind.value);
      body.append("file", file, file.name);
      xhr.send(body);
    }

    function fail(file, item, why) {
      item.querySelector(".state").textContent = t.failed + (why ? " (" + why + ")" : "");
      item.classList.add("failed");
      var retry = el("button", { type: "button" }, t.retry);
      retry.addEventListener("click", function () { item.classList.remove("failed"); send(file, item); });
      item.appendChild(retry);
    }

    function start(files) {
      Array.prototype.forEach.call(files, function (file) {
        var id = "up-" + Math.random().toString(36).slice(2);
        var item = el("li", { "class": "upload-item" });
        item.appendChild(el("span", { id: id, "class": "name" }, file.name));
        item.appendChild(document.createTextNode(" "));
        item.appendChild(el("span", { "class": "state", role: "status" }));
        var bar = el("progress", { max: String(file.size || 1), value: "0", "aria-labelledby": id });
        bar.setAttribute("aria-label", t.progressLabel + " " + file.name);
        item.appendChild(bar);
        list.appendChild(item);
        send(file, item);
      });
    }

    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      if (input.files.length) { start(input.files); }
      input.value = "";
    });
    ["dragenter", "dragover"].forEach(function (n) {
      drop.addEventListener(n, function (ev) { ev.preventDefault(); drop.classList.add("over"); });
    });
    ["dragleave", "drop"].forEach(function (n) {
      drop.addEventListener(n, function () { drop.classList.remove("over"); });
    });
    drop.addEventListener("drop", function (ev) {
      ev.preventDefault();
      if (ev.dataTransfer && ev.dataTransfer.files.length) { start(ev.dataTransfer.files); }
    });
    input.removeAttribute("required");
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("upload-form");
    if (form && window.FormData && window.XMLHttpRequest) { setupUpload(form); }
  });
})();
