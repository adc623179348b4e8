// The subscribe form ("Tell me when it's fixed"): fetch the double-submit token for this
// browser (the page itself is cached for everyone), and offer "use my location".
(function () {
  "use strict";
  var forms = document.querySelectorAll("form.subscribe-form");
  if (!forms.length) { return; }
  fetch("/subscriptions/csrf", {credentials: "same-origin", cache: "no-store"})
    .then(function (r) { return r.ok ? r.json() : null; })
    .then(function (data) {
      if (!data) { return; }
      forms.forEach(function (form) { form.elements.csrf_token.value = data.token; });
    })
    .catch(function () { /* the same-origin check still lets the form through */ });
  forms.forEach(function (form) {
    var button = form.querySelector(".subscribe-locate");
    var note = form.querySelector(".subscribe-located");
    if (!button || !navigator.geolocation) { return; }
    button.hidden = false;
    button.addEventListener("click", function () {
      navigator.geolocation.getCurrentPosition(function (pos) {
        // Rounded here already; the portal keeps only the ~100 m cell.
        var lat = pos.coords.latitude.toFixed(3), lon = pos.coords.longitude.toFixed(3);
        form.elements.lat.value = lat;
        form.elements.lon.value = lon;
        var ru = document.documentElement.lang === "ru";
        note.textContent = (ru ? "Место: точка " : "Place: the point ") + lat + ", " + lon +
          (ru ? " (±100 м)" : " (±100 m)");
        note.hidden = false;
        button.hidden = true;
      });
    });
  });
})();
