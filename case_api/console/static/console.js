// CitySOC console: progressive enhancement only. Every page works without this script.
(function () {
  "use strict";

  function relative(target, now) {
    var seconds = (target - now) / 1000;
    var span = Math.abs(seconds);
    var text;
    if (span < 60) { text = Math.floor(span) + " s"; }
    else if (span < 3600) { text = Math.floor(span / 60) + " min"; }
    else if (span < 172800) { text = Math.floor(span / 3600) + " h " + Math.floor((span % 3600) / 60) + " min"; }
    else { text = Math.floor(span / 86400) + " d"; }
    return seconds >= 0 ? "in " + text : text + " ago";
  }

  // Due times count down: every <time data-countdown> shows its distance from now.
  function tick() {
    var now = Date.now();
    var times = document.querySelectorAll("time[data-countdown]");
    for (var i = 0; i < times.length; i++) {
      var target = Date.parse(times[i].getAttribute("datetime"));
      if (!isNaN(target)) {
        times[i].textContent = relative(target, now);
        times[i].classList.toggle("overdue", target < now);
      }
    }
  }

  // The queue fetches its rows every few seconds: new cases appear without a reload, ticked boxes and focus stay.
  function pollQueue(table) {
    var url = table.getAttribute("data-poll");
    var status = document.getElementById("queue-status");
    var known = {};
    table.querySelectorAll("tbody tr[data-case-id]").forEach(function (row) { known[row.getAttribute("data-case-id")] = true; });

    function refresh() {
      if (document.hidden) { return; }
      fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } }).then(function (response) {
        if (response.redirected || !response.ok) { return null; }
        return response.text();
      }).then(function (html) {
        if (html === null) { return; }
        var holder = document.createElement("table");
        holder.innerHTML = html;
        var fresh = holder.querySelector("tbody");
        var current = table.querySelector("tbody");
        if (!fresh || !current) { return; }
        var ticked = {};
        current.querySelectorAll("input.case-select:checked").forEach(function (box) { ticked[box.value] = true; });
        var focused = document.activeElement && current.contains(document.activeElement) ? document.activeElement.id : null;
        var added = 0;
        fresh.querySelectorAll("tr[data-case-id]").forEach(function (row) {
          var id = row.getAttribute("data-case-id");
          if (!known[id]) { row.classList.add("new-row"); known[id] = true; added++; }
          var box = row.querySelector("input.case-select");
          if (box && ticked[box.value]) { box.checked = true; }
        });
        current.parentNode.replaceChild(fresh, current);
        if (focused) { var again = document.getElementById(focused); if (again) { again.focus(); } }
        if (added && status) { status.textContent = added + (added === 1 ? " new case" : " new cases") + " in the queue"; }
        tick();
      }).catch(function () { /* offline for a moment: try again at the next poll */ });
    }
    window.setInterval(refresh, 5000);
  }

  document.addEventListener("DOMContentLoaded", function () {
    tick();
    window.setInterval(tick, 15000);
    var table = document.getElementById("queue-table");
    if (table && table.getAttribute("data-poll-enabled") === "true") { pollQueue(table); }
  });
})();
