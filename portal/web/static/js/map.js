/* Portal maps: each page carries its maps as data (<script type="application/json" class="map-data">,
   written by portal/web/maps.py from folium's description); this file draws them: base tiles, town
   shapes with labels, coverage fetched by bbox, a marker, click to check a point. No inline script
   runs, so the pages keep a Content-Security-Policy without 'unsafe-inline'.
   Loaded deferred from the portal itself; the only third-party request a map makes is for base tiles.

   The text comes first: Leaflet (about 150 KB) is not in the page's <head>. This file fetches it
   when a map comes near the screen (most maps sit below the answer on a phone), so a visitor who
   reads the answer and leaves never downloads it. On a connection that asks to save data or is
   slower than 4G, a "Show the map" button in the map's frame loads it only when tapped. */
(function () {
  "use strict";

  function text(value) {
    var span = document.createElement("span");
    span.textContent = String(value);
    return span;
  }

  function townLayer(map, town) {
    var style = { color: town.colour, weight: 2, fillColor: town.colour, fillOpacity: 0.25 };
    var layer = L.geoJSON(town.geometry, {
      style: style,
      // Regions with many towns send points instead of outlines to keep the page light.
      pointToLayer: function (feature, latlng) { return L.circleMarker(latlng, L.extend({ radius: 6 }, style)); }
    });
    if (town.label) {
      // A text node: a town name from an imported file is never read as HTML.
      layer.bindTooltip(text(town.label), { permanent: town.permanent !== false, direction: "center", className: "town-label" });
    }
    if (town.url) {
      layer.on("click", function (e) { L.DomEvent.stopPropagation(e); window.location.href = town.url; });
    }
    return layer.addTo(map);
  }

  function coverageStyle(colours) {
    return function (feature) {
      var p = feature.properties, colour = colours[p.technology] || "#666";
      var planned = p.status === "planned";
      // Planned coverage is dashed and lighter: colour is never the only signal.
      return { color: colour, weight: planned ? 2 : 1, dashArray: planned ? "6 4" : null,
               fillColor: colour, fillOpacity: planned ? 0.08 : 0.3 };
    };
  }

  function loadCoverage(map, options) {
    var layer = L.geoJSON(null, { style: coverageStyle(options.colours) }).addTo(map);
    var pending = null;
    function refresh() {
      var b = map.getBounds(), zoom = map.getZoom();
      var bbox = [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map(function (v) { return v.toFixed(5); }).join(",");
      // Coarser shapes when zoomed out keep the download small at any polygon count.
      var simplify = Math.max(1, Math.round(40000 / Math.pow(2, zoom)));
      var url = options.coverageUrl + (options.coverageUrl.indexOf("?") < 0 ? "?" : "&") + "bbox=" + bbox + "&simplify=" + simplify;
      if (pending) { pending.abort(); }
      pending = new AbortController();
      fetch(url, { signal: pending.signal }).then(function (r) { return r.json(); }).then(function (data) {
        layer.clearLayers();
        layer.addData(data);
        map.getContainer().setAttribute("data-coverage-features", String(data.features.length));
      }).catch(function () {});
    }
    map.on("moveend", refresh);
    refresh();
  }

  // "Bring fiber here": households per public cell (at least 250 m, only cells over the minimum count).
  function loadDemand(map, options) {
    fetch(options.demandUrl).then(function (r) { return r.json(); }).then(function (data) {
      var layer = L.geoJSON(data, {
        pointToLayer: function (feature, latlng) {
          var p = feature.properties;
          return L.circle(latlng, { radius: p.size_m / 2, color: options.demandColour, weight: 2,
                                    fillColor: options.demandColour, fillOpacity: 0.25 });
        },
        onEachFeature: function (feature, layer) {
          layer.bindTooltip(text(options.demandLabel + ": " + feature.properties.households), { sticky: true });
        }
      }).addTo(map);
      map.getContainer().setAttribute("data-demand-cells", String(data.features.length));
      return layer;
    }).catch(function () {});
  }

  function attach(map, options) {
    var labelled = [];
    (options.towns || []).forEach(function (t) {
      var layer = townLayer(map, t);
      if (t.label && t.permanent !== false) { labelled.push({ layer: layer, population: t.population || 0 }); }
    });
    labelled.sort(function (a, b) { return b.population - a.population; });
    if (labelled.length > 1) { declutter(map, labelled); }
    // Lets tests (and curious readers of the DOM) see what was drawn: the canvas renderer leaves no paths.
    map.getContainer().setAttribute("data-town-shapes", String((options.towns || []).length));
    (options.incidents || []).forEach(function (g) {
      L.geoJSON(g, { style: { color: options.incidentColour, weight: 3, dashArray: "2 6", fillOpacity: 0.15 } }).addTo(map);
    });
    if (options.coverageUrl) { loadCoverage(map, options); }
    if (options.demandUrl) { loadDemand(map, options); }
    if (options.checkUrl) {
      map.on("click", function (e) {
        window.location.href = options.checkUrl + "?lat=" + e.latlng.lat.toFixed(6) + "&lon=" + e.latlng.lng.toFixed(6);
      });
    }
  }

  function draw(block) {
    var id = block.getAttribute("data-map"), element = document.getElementById(id), data;
    if (!element || element.getAttribute("data-drawn")) { return null; }
    try { data = JSON.parse(block.textContent); } catch (e) { return null; }
    var map = L.map(element, L.extend({ center: data.center, crs: L.CRS.EPSG3857 }, data.options || {}));
    element.setAttribute("data-drawn", "true");
    element.removeAttribute("data-waiting");
    if (data.scale) { L.control.scale({ metric: true, imperial: false }).addTo(map); }
    (data.tiles || []).forEach(function (t) { L.tileLayer(t.url, t.options).addTo(map); });
    if (data.bounds) { map.fitBounds(data.bounds); }
    (data.markers || []).forEach(function (m) {
      var marker = L.marker(m.location).addTo(map);
      if (m.tooltip) { marker.bindTooltip(text(m.tooltip), { sticky: true }); }
    });
    if (data.layers) { attach(map, data.layers); }
    return map;
  }

  // Town labels that would overlap: the bigger town keeps its label, the smaller one's is hidden
  // until the map is zoomed in far enough to part them (Pechory no longer sits under Pskov).
  function declutter(map, labelled) {
    function place() {
      var kept = [];
      labelled.forEach(function (item) {
        var tip = item.layer.getTooltip && item.layer.getTooltip();
        var el = tip && tip.getElement && tip.getElement();
        if (!el) { return; }
        el.classList.remove("town-label-hidden");
        var r = el.getBoundingClientRect();
        var clash = kept.some(function (k) {
          return r.left < k.right + 2 && r.right + 2 > k.left && r.top < k.bottom + 2 && r.bottom + 2 > k.top;
        });
        if (clash) { el.classList.add("town-label-hidden"); } else { kept.push(r); }
      });
      map.getContainer().setAttribute("data-labels-shown", String(kept.length));
    }
    map.on("zoomend moveend resize", place);
    place();
  }

  var leafletLoading = null;

  // Load Leaflet's stylesheet and script once per page, from the portal itself.
  function loadLeaflet(urls) {
    if (window.L) { return Promise.resolve(); }
    if (leafletLoading) { return leafletLoading; }
    leafletLoading = new Promise(function (resolve, reject) {
      var css = document.createElement("link");
      css.rel = "stylesheet";
      css.href = urls.css;
      document.head.appendChild(css);
      var script = document.createElement("script");
      script.src = urls.js;
      script.onload = function () { resolve(); };
      script.onerror = function () { leafletLoading = null; reject(new Error("leaflet")); };
      document.head.appendChild(script);
    });
    return leafletLoading;
  }

  // Save-Data, or a connection slower than 4G: the map waits for a tap.
  function slowConnection() {
    var c = navigator.connection;
    return !!(c && (c.saveData || /(^|-)2g$|^3g$/.test(c.effectiveType || "")));
  }

  function showButton(element, label, onTap) {
    var button = document.createElement("button");
    button.type = "button";
    button.className = "map-show";
    button.textContent = label;
    button.addEventListener("click", function () { button.remove(); onTap(); });
    element.appendChild(button);
  }

  function prepare(block) {
    var element = document.getElementById(block.getAttribute("data-map")), data;
    if (!element || element.getAttribute("data-drawn") || element.getAttribute("data-waiting")) { return; }
    try { data = JSON.parse(block.textContent); } catch (e) { return; }
    element.setAttribute("data-waiting", "true");
    function go() {
      loadLeaflet(data.leaflet).then(function () { draw(block); }).catch(function () {
        element.removeAttribute("data-waiting");
      });
    }
    if (!data.leaflet || window.L) { if (window.L) { draw(block); } return; }
    if (slowConnection()) {
      showButton(element, (data.text && data.text.show) || "Show the map", go);
    } else if ("IntersectionObserver" in window) {
      // Start a little before the map scrolls into view, so it is drawn by the time it is seen.
      var watcher = new IntersectionObserver(function (entries) {
        if (entries.some(function (e) { return e.isIntersecting; })) { watcher.disconnect(); go(); }
      }, { rootMargin: "300px 0px" });
      watcher.observe(element);
    } else {
      go();
    }
  }

  function prepareAll() {
    document.querySelectorAll('script.map-data[type="application/json"]').forEach(prepare);
  }

  window.PortalMaps = { attach: attach, draw: draw };
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", prepareAll);
  } else {
    prepareAll();
  }
})();
