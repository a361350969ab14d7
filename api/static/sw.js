// Service worker of the field page (served as /field/sw.js, scope /field/): keeps the page and its assets so that
// the page opens without a connection once it has been loaded. Network first (always fresh when online), the
// cache when offline. API responses (personal data) are never cached.
"use strict";
const CACHE = "gridgov-field-v7";
const SHELL = ["/field/", "/static/common.js", "/static/field.js", "/static/field.css", "/static/map.css",
               "/static/field_cases.js", "/static/field_cases.css",
               "/static/field_ledger.js", "/static/field_ledger.css", "/static/field_patrol.js",
               "/static/field_tasks.js",
               "/static/vendor/leaflet/leaflet.js", "/static/vendor/leaflet/leaflet.css",
               "/static/vendor/leaflet/images/marker-icon.png", "/static/vendor/leaflet/images/layers.png"];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(caches.keys()
    .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
    .then(() => self.clients.claim()));
});

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  const shell = url.origin === self.location.origin && event.request.method === "GET"
    && (url.pathname.startsWith("/static/") || url.pathname === "/field/" || url.pathname === "/field");
  if (!shell) return;  // the API goes to the network, never to the cache
  event.respondWith(fetch(event.request)
    .then((response) => {
      if (response.ok) { const copy = response.clone(); caches.open(CACHE).then((cache) => cache.put(event.request, copy)); }
      return response;
    })
    .catch(() => caches.match(event.request, { ignoreSearch: true })
      .then((hit) => hit || (url.pathname.startsWith("/field") ? caches.match("/field/") : Response.error()))));
});
