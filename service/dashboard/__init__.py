"""The dashboard: a static page that polls the JSON API and draws with the vendored Chart.js."""
