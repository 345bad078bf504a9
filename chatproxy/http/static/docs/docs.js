// Start Swagger UI on this service's spec. A file of its own, so that the page's
// Content-Security-Policy can forbid inline scripts.
"use strict";

window.ui = SwaggerUIBundle({
  url: "openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
  // The spec is served by the proxy; no validator badge, which would call a remote service.
  validatorUrl: null,
});
