// "Not working here" (templates/listening/_report_form.html): a tap on a service asks the
// self-check question first; "nothing works" sends the form, and the answer (the known incident,
// or the count next to the usual level) is shown in place, taken from the page the form post
// returns, so its words come from the portal's catalog. Without scripts the form posts as usual.
(function () {
  "use strict";
  var forms = document.querySelectorAll("form.report-form");
  if (!forms.length) { return; }
  // The double-submit token, for browsers that send neither Sec-Fetch-Site nor Origin.
  fetch("/subscriptions/csrf", {credentials: "same-origin", cache: "no-store"})
    .then(function (r) { return r.ok ? r.json() : null; })
    .then(function (data) {
      if (data) { forms.forEach(function (form) { form.elements.csrf_token.value = data.token; }); }
    })
    .catch(function () { /* the same-origin check still lets the form through */ });

  forms.forEach(function (form) {
    var section = form.closest("section") || form.parentNode;
    var result = section.querySelector(".report-result");
    var check = form.querySelector(".report-selfcheck");
    var advice = form.querySelector(".report-advice");
    var chosen = null;

    form.querySelectorAll("button[name=service]").forEach(function (button) {
      button.addEventListener("click", function (event) {
        event.preventDefault();
        chosen = button.value;
        advice.hidden = true;
        check.hidden = false;
        check.querySelector(".report-send").focus();
      });
    });
    check.querySelector(".report-one").addEventListener("click", function () {
      check.hidden = true;
      advice.hidden = false;
    });
    check.querySelector(".report-send").addEventListener("click", function () {
      var data = new FormData(form);
      data.set("service", chosen);
      check.hidden = true;
      fetch(form.action, {method: "POST", body: data, credentials: "same-origin"})
        .then(function (r) { return r.text(); })
        .then(function (html) {
          var page = new DOMParser().parseFromString(html, "text/html");
          var found = page.getElementById("report-answer") || page.querySelector(".error-message");
          result.replaceChildren();
          if (found) { result.appendChild(document.importNode(found, true)); }
        })
        .catch(function () {
          // No answer in place (offline, blocked): post the form the ordinary way.
          var field = document.createElement("input");
          field.type = "hidden";
          field.name = "service";
          field.value = chosen;
          form.appendChild(field);
          form.submit();
        });
    });

    var locate = form.querySelector(".report-locate");
    var note = form.querySelector(".report-located");
    if (locate && navigator.geolocation) {
      locate.hidden = false;
      locate.addEventListener("click", function () {
        navigator.geolocation.getCurrentPosition(function (pos) {
          // Rounded here already; the portal keeps only the ~100 m cell.
          var lat = pos.coords.latitude.toFixed(3), lon = pos.coords.longitude.toFixed(3);
          form.elements.lat.value = lat;
          form.elements.lon.value = lon;
          var ru = document.documentElement.lang === "ru";
          note.textContent = (ru ? "Место: точка " : "Place: the point ") + lat + ", " + lon +
            (ru ? " (±100 м)" : " (±100 m)");
          note.hidden = false;
          locate.hidden = true;
        });
      });
    }
  });
})();
