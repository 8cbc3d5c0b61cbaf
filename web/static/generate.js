// Streams the generated answer into the ask page: each sentence arrives only after the server
// verified it against the passage it cites. Text is set with textContent, never parsed as HTML.
(function () {
  "use strict";
  function start(section) {
    if (section.dataset.started) return;
    section.dataset.started = "1";
    var list = section.querySelector("#generated-sentences");
    var status = section.querySelector("#generated-status");
    status.textContent = "The model is writing…";
    var source = new EventSource(section.dataset.stream);
    var shown = 0;
    source.addEventListener("tokens", function (e) {
      var d = JSON.parse(e.data);
      status.textContent = "The model is writing… " + d.tokens + " tokens, " + shown + " sentence(s) verified.";
    });
    source.addEventListener("sentence", function (e) {
      var d = JSON.parse(e.data);
      var li = document.createElement("li");
      li.textContent = d.text;
      d.links.forEach(function (l) {
        var a = document.createElement("a");
        a.className = "cite-marker";
        a.href = l.href;
        a.title = l.label;
        a.textContent = "[" + l.marker + "]";
        li.appendChild(document.createTextNode(" "));
        li.appendChild(a);
      });
      list.appendChild(li);
      shown += 1;
    });
    source.addEventListener("done", function (e) {
      var d = JSON.parse(e.data);
      status.textContent = shown + " verified sentence(s)" +
        (d.removed > 0 ? ", " + d.removed + " removed because the passages do not support them" : "") +
        " · " + d.tokens + " tokens in " + d.latency_ms + " ms.";
      section.dataset.state = "done";
      source.close();
    });
    source.addEventListener("fallback", function (e) {
      var d = JSON.parse(e.data);
      list.textContent = "";
      var note = document.createElement("p");
      note.className = "flash generator-note";
      note.id = "generator-note";
      note.textContent = d.note;
      section.insertBefore(note, list);
      status.textContent = "";
      section.dataset.state = "fallback";
      source.close();
    });
    source.onerror = function () {
      if (section.dataset.state) return;
      source.close();
      status.textContent = "The answer generator is not available right now. The quoted answer is shown.";
      section.dataset.state = "fallback";
    };
  }
  function scan() {
    document.querySelectorAll("section.generated[data-stream]").forEach(start);
  }
  document.addEventListener("DOMContentLoaded", scan);
  document.addEventListener("htmx:afterSettle", scan);
})();
