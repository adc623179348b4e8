/* "Use my location" on the point form (templates/_check_form.html): the browser's own geolocation
   fills the form's latitude and longitude and sends it, so the visitor lands on the answer for where
   they stand. The position goes to the portal only, as the form's query; no third party is asked.
   Without scripts or geolocation the button stays hidden and the form works as typed. */
(function () {
  "use strict";
  if (!("geolocation" in navigator)) { return; }
  document.querySelectorAll("form.check").forEach(function (form) {
    var button = form.querySelector("button.locate"), status = form.querySelector(".locate-status");
    var lat = form.querySelector("input[name=lat]"), lon = form.querySelector("input[name=lon]");
    if (!button || !lat || !lon) { return; }
    var label = button.textContent;
    button.hidden = false;
    function say(text) { if (status) { status.textContent = text; } }
    button.addEventListener("click", function () {
      button.disabled = true;
      button.textContent = button.getAttribute("data-busy");
      say("");
      navigator.geolocation.getCurrentPosition(function (position) {
        lat.value = position.coords.latitude.toFixed(6);
        lon.value = position.coords.longitude.toFixed(6);
        form.submit();
      }, function (error) {
        button.disabled = false;
        button.textContent = label;
        say(button.getAttribute(error.code === 1 ? "data-denied" : "data-failed"));
      }, { enableHighAccuracy: true, timeout: 15000, maximumAge: 60000 });
    });
  });
})();
