// Live updates for the console: one EventSource per page. "overview" events carry every
// store's status and every queue's counts; "job" events name the jobs a queue just finished.
// Nothing here is needed to read a page or to act: links and forms work without it.
(function () {
  "use strict";
  if (!window.EventSource) return;
  var source = new EventSource("/console/events");
  // Close the stream as the page goes away: browsers allow few connections per host, and a
  // stream left to time out would hold one.
  window.addEventListener("pagehide", function () { source.close(); });

  function each(selector, f) {
    Array.prototype.forEach.call(document.querySelectorAll(selector), f);
  }

  source.addEventListener("overview", function (e) {
    var d = JSON.parse(e.data);
    (d.stores || []).forEach(function (s) {
      each('tr[data-store="' + CSS.escape(s.key) + '"]', function (row) {
        row.setAttribute("data-status", s.status);
        var cell = row.querySelector("td.status");
        if (cell) cell.textContent = s.status;
        var latency = row.querySelector("td.latency");
        if (latency) latency.textContent = s.latency_ms === null ? "\u2014" : s.latency_ms.toFixed(1) + " ms";
        var version = row.querySelector("td.version");
        if (version && s.status === "down") version.textContent = "\u2014";
        var detail = row.querySelector("td.detail");
        if (detail) detail.textContent = s.error || "";
      });
    });
    // Counts per queue, and their totals; a dead count above zero is marked.
    var states = ["waiting", "delayed", "active", "completed", "dead"];
    var totals = {};
    function setCount(key, state, n) {
      each('[data-count="' + CSS.escape(key + ":" + state) + '"]', function (el) {
        el.textContent = n;
        if (state === "dead" && n > 0) el.setAttribute("data-nonzero", "");
        else el.removeAttribute("data-nonzero");
      });
    }
    (d.queues || []).forEach(function (q) {
      states.forEach(function (state) {
        totals[state] = (totals[state] || 0) + q[state];
        setCount(q.queue, state, q[state]);
      });
    });
    states.forEach(function (state) { setCount("*", state, totals[state] || 0); });
    each("section.alerts", function (section) {
      var alerts = d.alerts || [];
      section.setAttribute("data-alerts", alerts.length);
      if (alerts.length === 0) {
        var ok = document.createElement("p");
        ok.className = "ok";
        ok.textContent = "Nothing needs attention.";
        section.replaceChildren(ok);
        return;
      }
      var list = document.createElement("ul");
      alerts.forEach(function (alert) {
        var item = document.createElement("li");
        item.className = "alert";
        var link = document.createElement("a");
        link.href = alert.href;
        link.textContent = alert.text;
        item.appendChild(link);
        list.appendChild(item);
      });
      section.replaceChildren(list);
    });
    document.body.setAttribute("data-live", d.at || "");
  });

  // A job page reloads its detail block when one of the job's events arrives; a queue page
  // reloads its list at most every two seconds while its queue is busy.
  var listTimer = null;
  source.addEventListener("job", function (e) {
    var d = JSON.parse(e.data);
    if (!Array.isArray(d.ids)) return;
    each("[data-job]", function (el) {
      if (el.getAttribute("data-queue") === d.queue && d.ids.indexOf(el.getAttribute("data-job")) >= 0) {
        refresh(el, el.getAttribute("data-src"));
      }
    });
    var list = document.querySelector("table[data-list-queue]");
    if (list && list.getAttribute("data-list-queue") === d.queue && !listTimer) {
      listTimer = setTimeout(function () {
        listTimer = null;
        fetch(location.href, { credentials: "same-origin" })
          .then(function (r) { return r.ok ? r.text() : null; })
          .then(function (html) {
            if (!html) return;
            var doc = new DOMParser().parseFromString(html, "text/html");
            var fresh = doc.querySelector("table[data-list-queue]");
            var current = document.querySelector("table[data-list-queue]");
            if (fresh && current) current.replaceWith(fresh);
          });
      }, 2000);
    }
  });

  function refresh(el, src) {
    fetch(src, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html === null) return;
        // The fragment is server-rendered and escaped; parse it rather than trusting strings.
        var doc = new DOMParser().parseFromString("<div>" + html + "</div>", "text/html");
        el.replaceChildren.apply(el, Array.prototype.slice.call(doc.body.firstChild.childNodes));
      });
  }
})();
