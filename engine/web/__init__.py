"""Server-rendered web pages (Jinja2) over the same read path as the FHIR API."""
