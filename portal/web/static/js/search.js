/* Town search autocomplete: an ARIA combobox over /api/v1/towns?q=. The form works without it. */
(function () {
  "use strict";
  var input = document.getElementById("town-q");
  var list = document.getElementById("town-suggestions");
  if (!input || !list) { return; }
  var api = input.getAttribute("data-api"), items = [], active = -1, timer = null, seq = 0;
  var ru = document.documentElement.lang === "ru";

  function close() { list.hidden = true; input.setAttribute("aria-expanded", "false"); input.removeAttribute("aria-activedescendant"); active = -1; }
  function go(town) { window.location.href = "/towns/" + encodeURIComponent(town.slug); }
  function highlight(i) {
    var options = list.querySelectorAll("li");
    options.forEach(function (li, n) { li.setAttribute("aria-selected", n === i ? "true" : "false"); });
    active = i;
    if (i >= 0) { input.setAttribute("aria-activedescendant", options[i].id); }
  }
  function render(towns) {
    // A late answer must not drop the option the visitor has already highlighted.
    var keep = active >= 0 && items[active] ? items[active].slug : null;
    items = towns; list.innerHTML = ""; active = -1;
    towns.forEach(function (t, i) {
      var li = document.createElement("li");
      li.id = "town-option-" + i; li.setAttribute("role", "option"); li.setAttribute("aria-selected", "false");
      var primary = ru && t.name_ru ? t.name_ru : t.name, secondary = ru ? t.name : t.name_ru;
      li.textContent = primary;
      if (secondary && secondary !== primary) {
        // The name in the other language is marked as such, so a screen reader says it in that language.
        var other = document.createElement("span");
        other.lang = ru ? "en" : "ru";
        other.textContent = secondary;
        li.append(" (", other, ")");
      }
      li.addEventListener("mousedown", function (e) { e.preventDefault(); go(t); });
      list.appendChild(li);
    });
    if (towns.length) { list.hidden = false; input.setAttribute("aria-expanded", "true"); } else { close(); }
    if (keep) { towns.forEach(function (t, i) { if (t.slug === keep) { highlight(i); } }); }
  }
  input.addEventListener("input", function () {
    clearTimeout(timer);
    var q = input.value.trim();
    if (!q) { close(); return; }
    timer = setTimeout(function () {
      var mine = ++seq;
      fetch(api + "?q=" + encodeURIComponent(q)).then(function (r) { return r.json(); }).then(function (data) {
        if (mine === seq) { render(data.towns.slice(0, 8)); }
      }).catch(close);
    }, 120);
  });
  input.addEventListener("keydown", function (e) {
    if (list.hidden) { return; }
    if (e.key === "ArrowDown") { e.preventDefault(); highlight(Math.min(active + 1, items.length - 1)); }
    else if (e.key === "ArrowUp") { e.preventDefault(); highlight(Math.max(active - 1, 0)); }
    else if (e.key === "Enter" && active >= 0) { e.preventDefault(); go(items[active]); }
    else if (e.key === "Escape") { close(); }
  });
  input.addEventListener("blur", function () { setTimeout(close, 150); });
})();
