"""The web page served at ``/``: static files shipped with the package (no build step, no CDN)."""
