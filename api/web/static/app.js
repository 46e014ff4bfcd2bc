// crvault: progressive enhancement only. Without this file every page and
// form still works; with it, materials upload by drag and drop, several at
// once, each with its own progress bar, through the JSON API's resumable
// uploads (tus-style: open a session, PATCH chunks at the server's offset)
// with the session cookie and the CSRF token in a header. After a network
// error the upload asks the server where it stands (HEAD) and continues
// from there, by itself with backoff or at once with the Resume button: it
// never starts again from zero.
(function () {
  "use strict";

  // CHUNK bounds each PATCH: a cut connection loses at most the part of one
  // chunk the server had not received yet (it keeps what arrived).
  var CHUNK = 8 * 1024 * 1024;
  var MAX_DELAY = 30000;

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text) { e.textContent = text; }
    return e;
  }

  function problemCode(xhr) {
    try { return JSON.parse(xhr.responseText).code || ""; } catch (e) { return ""; }
  }

  function setupUpload(form) {
    var input = form.querySelector("input[type=file]");
    var drop = form.querySelector(".drop");
    var list = form.querySelector(".uploads");
    var kind = form.querySelector("select[name=kind]");
    // answers: which requested supplementary item an upload answers, when
    // the form asks (supplements outstanding); the API's "item".
    var answers = form.querySelector("select[name=item]");
    var api = form.getAttribute("data-uploads");
    var csrf = form.getAttribute("data-csrf");
    var t = list.dataset;
    var pending = 0, okCount = 0;
    var interrupted = [];

    function finished() {
      if (pending === 0 && okCount > 0 && !form.querySelector(".reload")) {
        var a = el("a", { href: window.location.pathname + "?done=uploaded", "class": "reload button" }, t.reload);
        list.parentNode.insertBefore(a, list.nextSibling);
      }
    }

    function request(method, url, headers) {
      var xhr = new XMLHttpRequest();
      xhr.open(method, url);
      xhr.setRequestHeader("X-CSRF-Token", csrf);
      Object.keys(headers || {}).forEach(function (k) { xhr.setRequestHeader(k, headers[k]); });
      return xhr;
    }

    // Upload is one file's journey: a session on the server, the offset
    // the server holds, and what the item in the list shows.
    function Upload(file, kindValue, item, answers) {
      this.file = file;
      this.kind = kindValue;
      this.answers = answers || 0;
      this.item = item;
      this.bar = item.querySelector("progress");
      this.state = item.querySelector(".state");
      this.url = "";
      this.offset = 0;
      this.attempt = 0;
      this.timer = 0;
      this.busy = false;
      this.over = false;
    }

    Upload.prototype.show = function (text) {
      this.state.textContent = text;
    };

    Upload.prototype.progress = function (at) {
      var size = this.file.size;
      this.bar.max = size || 1;
      this.bar.value = size ? at : 0;
      this.show(size ? Math.floor(100 * at / size) + "%" : t.waiting);
    };

    Upload.prototype.buttons = function (label, cls, action) {
      var old = this.item.querySelector("button");
      if (old) { old.remove(); }
      if (!label) { return; }
      var b = el("button", { type: "button", "class": cls }, label);
      b.addEventListener("click", action);
      this.item.appendChild(b);
    };

    Upload.prototype.begin = function () {
      var self = this;
      pending++;
      self.busy = true;
      self.show(t.waiting);
      var xhr = request("POST", api, { "Content-Type": "application/json" });
      xhr.addEventListener("load", function () {
        self.busy = false;
        if (xhr.status === 201) {
          var s = JSON.parse(xhr.responseText);
          self.url = "/api/v1/uploads/" + encodeURIComponent(s.id);
          self.offset = s.offset || 0;
          self.send();
        } else if (xhr.status >= 500 || xhr.status === 429) {
          self.interrupt();
        } else {
          self.fail(problemCode(xhr) || String(xhr.status));
        }
      });
      xhr.addEventListener("error", function () { self.busy = false; self.interrupt(); });
      var session = { kind: self.kind, filename: self.file.name, content_type: self.file.type || "", size: self.file.size };
      if (self.answers) { session.item = self.answers; }
      xhr.send(JSON.stringify(session));
    };

    // send PATCHes the next chunk from the server's offset.
    Upload.prototype.send = function () {
      var self = this;
      var end = Math.min(self.offset + CHUNK, self.file.size);
      var from = self.offset;
      self.busy = true;
      self.item.classList.remove("interrupted");
      self.buttons("");
      self.progress(from);
      var xhr = request("PATCH", self.url, { "Content-Type": "application/offset+octet-stream", "Upload-Offset": String(from) });
      xhr.upload.addEventListener("progress", function (ev) {
        if (ev.lengthComputable) { self.progress(from + ev.loaded); }
      });
      xhr.addEventListener("load", function () {
        self.busy = false;
        var at = parseInt(xhr.getResponseHeader("Upload-Offset") || "", 10);
        if (xhr.status === 200) {
          var s = JSON.parse(xhr.responseText);
          self.attempt = 0;
          self.offset = s.offset;
          if (s.status === "completed" || s.material) {
            self.done();
          } else {
            self.send();
          }
        } else if (xhr.status === 409 && !isNaN(at)) {
          self.offset = at; // the server holds a different part: go on from there
          self.send();
        } else if (xhr.status >= 500 || xhr.status === 429 || xhr.status === 408) {
          self.interrupt();
        } else {
          self.fail(problemCode(xhr) || String(xhr.status));
        }
      });
      xhr.addEventListener("error", function () { self.busy = false; self.interrupt(); });
      xhr.addEventListener("abort", function () { self.busy = false; self.interrupt(); });
      xhr.send(self.file.slice(from, end));
    };

    // interrupt waits, longer after each failed attempt, then resumes; the
    // Resume button does not wait.
    Upload.prototype.interrupt = function () {
      var self = this;
      if (self.over) { return; }
      var delay = Math.min(MAX_DELAY, 1000 * Math.pow(2, self.attempt));
      delay = Math.round(delay * (0.75 + Math.random() / 2));
      self.attempt++;
      self.item.classList.add("interrupted");
      self.show(t.interrupted);
      self.buttons(t.resume, "resume", function () { self.resume(); });
      clearTimeout(self.timer);
      self.timer = setTimeout(function () { self.resume(); }, delay);
      if (interrupted.indexOf(self) < 0) { interrupted.push(self); }
    };

    // resume asks the server where the upload stands and continues there.
    Upload.prototype.resume = function () {
      var self = this;
      clearTimeout(self.timer);
      if (self.busy || self.over) { return; }
      var i = interrupted.indexOf(self);
      if (i >= 0) { interrupted.splice(i, 1); }
      if (!self.url) { pending--; self.begin(); return; }
      self.busy = true;
      self.show(t.resuming);
      self.buttons("");
      var xhr = request("HEAD", self.url);
      xhr.addEventListener("load", function () {
        self.busy = false;
        var at = parseInt(xhr.getResponseHeader("Upload-Offset") || "", 10);
        if (xhr.status === 200 && !isNaN(at)) {
          self.offset = at;
          if (at >= self.file.size && xhr.getResponseHeader("Content-Location")) {
            self.done();
          } else {
            self.send();
          }
        } else if (xhr.status >= 500 || xhr.status === 429) {
          self.interrupt();
        } else {
          self.fail(String(xhr.status));
        }
      });
      xhr.addEventListener("error", function () { self.busy = false; self.interrupt(); });
      xhr.send();
    };

    Upload.prototype.done = function () {
      this.over = true;
      pending--;
      this.progress(this.file.size);
      this.bar.value = this.bar.max;
      this.show(t.done);
      this.buttons("");
      this.item.classList.remove("interrupted");
      this.item.classList.add("done");
      okCount++;
      finished();
    };

    // fail is a refusal by the server (or a session it no longer has):
    // retrying opens a new session.
    Upload.prototype.fail = function (why) {
      var self = this;
      pending--;
      self.over = true;
      self.item.classList.remove("interrupted");
      self.item.classList.add("failed");
      self.show(t.failed + (why ? " (" + why + ")" : ""));
      self.buttons(t.retry, "retry", function () {
        self.item.classList.remove("failed");
        var again = new Upload(self.file, self.kind, self.item, self.answers);
        again.begin();
      });
      finished();
    };

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
        var n = answers && kind.value === "supplementary" ? parseInt(answers.value, 10) || 0 : 0;
        new Upload(file, kind.value, item, n).begin();
      });
    }

    // Back online: resume what waits rather than wait out the backoff.
    window.addEventListener("online", function () {
      interrupted.slice().forEach(function (u) { u.resume(); });
    });
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
    // Served over plain HTTP to a browser that is not on this machine (no
    // TLS proxy in front): the browser drops the Secure cookies, and every
    // sign-in would come back to this page without a word. Say so.
    var insecure = document.getElementById("insecure-context");
    if (insecure && window.isSecureContext === false) { insecure.hidden = false; }
    var form = document.getElementById("upload-form");
    if (form && window.XMLHttpRequest && window.Blob && Blob.prototype.slice) { setupUpload(form); }
  });
})();
