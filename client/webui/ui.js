// The live part of the page: the server sends it, rendered, as server-sent
// events; forms are sent in the background and their answer shown in place.
// Without this script the page works the same, reloading on each form.
"use strict";
(function () {
  var live = document.getElementById("live");
  var answer = document.getElementById("answer");
  function show(text, isError) {
    answer.textContent = text;
    answer.className = "answer" + (isError ? " error" : "");
  }
  // Opened once the page has loaded, so that the stream, which never ends,
  // does not hold the page "loading".
  window.addEventListener("load", function () {
    if (!window.EventSource || !live) return;
    var es = new EventSource("/ui/live");
    es.addEventListener("live", function (e) { live.innerHTML = e.data; });
    es.onerror = function () { document.body.classList.add("offline"); };
    es.onopen = function () { document.body.classList.remove("offline"); };
  });
  document.addEventListener("submit", function (e) {
    var form = e.target;
    if (form.getAttribute("action") !== "/ui/do") return;
    e.preventDefault();
    var data = new URLSearchParams(new FormData(form));
    if (e.submitter && e.submitter.name) data.set(e.submitter.name, e.submitter.value);
    if (data.get("do") === "benchmark") show("running the benchmarks…", false);
    fetch("/ui/do", { method: "POST", body: data, headers: { "Accept": "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (a) {
        show(a.error || a.message, !!a.error);
        if (!a.error && data.get("do") === "attach") form.reset();
      })
      .catch(function (err) { show("the client did not answer: " + err, true); });
  });
})();
