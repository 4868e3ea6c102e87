// takedown's page script: progressive enhancement only. Every page works
// without it. No library, nothing loaded from elsewhere.
(function () {
  "use strict";

  // Error summaries: a link moves focus to its field, not just the view.
  document.addEventListener("click", function (e) {
    var a = e.target.closest(".error-summary a[href^='#']");
    if (!a) return;
    var el = document.getElementById(a.getAttribute("href").slice(1));
    if (!el) return;
    e.preventDefault();
    el.scrollIntoView({ block: "center" });
    el.focus();
  });
  var serverSummary = document.getElementById("error-summary");
  if (serverSummary) serverSummary.focus();

  var form = document.getElementById("report-form");
  if (form) reportForm(form);
  var live = document.getElementById("live");
  if (live) liveStatus(live);

  function reportForm(form) {
    var maxFileSize = Number(form.dataset.maxFileSize);
    var maxFiles = Number(form.dataset.maxFiles);
    var maxTotal = Number(form.dataset.maxTotalSize);
    var input = document.getElementById("f-file");
    var zone = document.getElementById("drop-zone");
    var table = document.getElementById("file-rows");
    var rowTemplate = document.getElementById("file-row");
    var summary = document.getElementById("client-summary");
    var files = [];
    // One key for this page's submission, sent with every attempt: after an
    // answer lost on the way back, sending again gets the report the server
    // stored instead of a second one (and a second NCMEC report).
    var submissionKey = Array.from(crypto.getRandomValues(new Uint8Array(16)), function (b) {
      return ("0" + b.toString(16)).slice(-2);
    }).join("");

    // Times are entered in the browser's zone; tell the server which.
    var offset = new Date().getTimezoneOffset();
    document.getElementById("f-tz").value = String(offset);
    var hint = document.querySelector("[data-local-hint]");
    if (hint) hint.textContent = "Date and time in your local time (" + zoneName(offset) + "); not in the future.";

    zone.hidden = false;
    input.addEventListener("change", function () {
      add(input.files);
      input.value = "";
    });
    ["dragenter", "dragover"].forEach(function (t) {
      zone.addEventListener(t, function (e) { e.preventDefault(); zone.classList.add("over"); });
    });
    ["dragleave", "drop"].forEach(function (t) {
      zone.addEventListener(t, function () { zone.classList.remove("over"); });
    });
    zone.addEventListener("drop", function (e) {
      e.preventDefault();
      add(e.dataTransfer.files);
    });

    function add(list) {
      for (var i = 0; i < list.length; i++) {
        var row = rowTemplate.content.firstElementChild.cloneNode(true);
        files.push({ file: list[i], row: row });
      }
      render();
    }

    function render() {
      var body = table.tBodies[0];
      body.textContent = "";
      files.forEach(function (f, i) {
        var row = f.row;
        row.querySelector("[data-name]").textContent = f.file.name;
        row.querySelector("[data-size]").textContent = size(f.file.size);
        row.querySelectorAll("[data-field]").forEach(function (el) {
          var field = el.dataset.field;
          el.name = "files[" + i + "]." + field;
          el.id = "f-files-" + i + "-" + field;
          if (field === "name") el.value = f.file.name;
        });
        row.querySelectorAll("[data-label]").forEach(function (l) {
          l.htmlFor = "f-files-" + i + "-" + l.dataset.label;
          l.textContent = labelOf(l.dataset.label) + " for " + f.file.name;
        });
        row.querySelector("[data-remove]").onclick = function () {
          files.splice(files.indexOf(f), 1);
          render();
          input.focus();
        };
        row.querySelector("[data-remove]").setAttribute("aria-label", "Remove " + f.file.name);
        body.appendChild(row);
      });
      table.hidden = files.length === 0;
    }

    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var problems = check();
      if (problems.length) {
        show(problems);
        return;
      }
      summary.hidden = true;
      upload();
    });

    function check() {
      var p = [];
      var now = Date.now() + 60000;
      var when = document.getElementById("f-incident_time");
      if (!when.value) p.push(["f-incident_time", "Enter when the incident happened."]);
      else if (new Date(when.value).getTime() > now) p.push(["f-incident_time", "When it happened: the date is in the future. Enter the date and time the incident happened."]);
      var approved = document.getElementById("f-legal_approved"); // absent where legal decides after submission
      if (approved && approved.checked && !document.getElementById("f-approver").value.trim())
        p.push(["f-approver", "Approved by: enter who approved the report, or untick \"Legal approved\"."]);
      if (files.length === 0) p.push(["f-file", "Attach at least one file."]);
      if (files.length > maxFiles) p.push(["f-file", "Attach at most " + maxFiles + " files; there are " + files.length + "."]);
      var total = 0;
      files.forEach(function (f, i) {
        total += f.file.size;
        if (f.file.size === 0) p.push(["f-file", f.file.name + " is empty."]);
        if (f.file.size > maxFileSize) p.push(["f-file", f.file.name + " is larger than " + size(maxFileSize) + "."]);
        if (!allowedType(f.file.type)) p.push(["f-file", f.file.name + " is a " + f.file.type + " file: attach images, videos, audio, PDF, ZIP or text."]);
        var t = document.getElementById("f-files-" + i + "-upload_time");
        if (t.value && new Date(t.value).getTime() > now) p.push([t.id, f.file.name + ": the upload time is in the future."]);
      });
      if (total > maxTotal) p.push(["f-file", "The files add up to " + size(total) + "; the limit is " + size(maxTotal) + "."]);
      return p;
    }

    function allowedType(t) {
      return t === "" || /^(image|video|audio)\//.test(t) || ["application/pdf", "application/zip", "application/x-zip-compressed", "text/plain", "application/octet-stream"].indexOf(t) >= 0;
    }

    function show(problems) {
      var ul = summary.querySelector("ul");
      ul.textContent = "";
      problems.forEach(function (p) {
        var li = document.createElement("li");
        var a = document.createElement("a");
        a.href = "#" + p[0];
        a.textContent = p[1];
        li.appendChild(a);
        ul.appendChild(li);
      });
      var old = document.getElementById("error-summary");
      if (old) old.hidden = true;
      summary.hidden = false;
      summary.focus();
    }

    function upload() {
      // The fields first, the files last: the server reads the forgery
      // token and the description before any file.
      var data = new FormData();
      new FormData(form).forEach(function (v, k) { if (k !== "file") data.append(k, v); });
      files.forEach(function (f) { data.append("file", f.file, f.file.name); });

      var button = document.getElementById("submit");
      var box = document.getElementById("progress");
      var bar = document.getElementById("upload-progress");
      var text = document.getElementById("progress-text");
      button.disabled = true;
      box.hidden = false;
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.action);
      xhr.setRequestHeader("Accept", "application/json");
      xhr.setRequestHeader("Idempotency-Key", submissionKey);
      xhr.upload.onprogress = function (e) {
        if (!e.lengthComputable) return;
        var pct = Math.floor((e.loaded / e.total) * 100);
        bar.value = pct;
        text.textContent = pct + "% (" + size(e.loaded) + " of " + size(e.total) + ")";
      };
      xhr.onload = function () {
        var body = {};
        try { body = JSON.parse(xhr.responseText); } catch (err) { /* not JSON */ }
        if (xhr.status === 201 && body.status_page) {
          text.textContent = "Stored. Opening the report's status…";
          window.location.assign(body.status_page);
          return;
        }
        done();
        var probs = (body.problems || []).map(function (p) { return [p.ID || p.id, p.Message || p.message]; });
        if (!probs.length) probs = [["f-file", (body.error && body.error.message) || "The report could not be sent (" + xhr.status + "). Nothing was kept; try again."]];
        show(probs);
      };
      xhr.onerror = function () {
        done();
        show([["f-file", "The connection was lost before the server answered. Send the report again: if it was stored, that opens it instead of storing it twice."]]);
      };
      xhr.send(data);
      function done() { button.disabled = false; box.hidden = true; bar.value = 0; }
    }
  }

  function liveStatus(live) {
    var url = live.dataset.live;
    function terminal() {
      var c = document.getElementById("live-content");
      return c && c.dataset.terminal === "true";
    }
    function poll() {
      if (terminal()) return;
      // Do not replace the retract form under someone typing a reason.
      if (live.contains(document.activeElement) && document.activeElement.tagName === "INPUT") {
        return setTimeout(poll, 2000);
      }
      var xhr = new XMLHttpRequest();
      xhr.open("GET", url);
      xhr.onload = function () {
        if (xhr.status === 200 && xhr.responseText !== live.dataset.last) {
          live.dataset.last = xhr.responseText;
          live.innerHTML = xhr.responseText;
        }
        setTimeout(poll, 2000);
      };
      xhr.onerror = function () { setTimeout(poll, 5000); };
      xhr.send();
    }
    setTimeout(poll, 1000);
  }

  function size(n) {
    var units = ["B", "KiB", "MiB", "GiB", "TiB"];
    var i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : n) + " " + units[i];
  }
  function zoneName(offset) {
    var m = -offset, sign = m < 0 ? "-" : "+";
    m = Math.abs(m);
    return "UTC" + sign + String(Math.floor(m / 60)).padStart(2, "0") + ":" + String(m % 60).padStart(2, "0");
  }
  function labelOf(field) {
    return { location_url: "Location URL", upload_time: "Uploaded to the platform", uploader_ip: "Uploader IP",
      viewed_by_staff: "Viewed by staff", publicly_available: "Publicly available", industry_classification: "Classification" }[field] || field;
  }
})();
