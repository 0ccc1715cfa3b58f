"""The process: configuration, the composition root, and what keeps the services running.

Owns the settings (config.py), the composition root (app.py: builds every service and registers the
Slack listeners, the one module of bot/ that imports handlers/), the CLI (cli.py), the web server
(web.py: one route builder per integration; serving.py), the scheduler and its leases (scheduler.py),
claims on durable work (claims.py, claim_tables.py) and their retry schedule (backoff.py), logs and
metrics, the one wall clock (clock.py), start-up checks (preflight.py, check.py) and the bundle of
services handed to the listeners (services.py).

May import every room of bot/ (it builds them) and handlers/ from app.py only. The other rooms import
from here only the clock, claims, backoff, logs and metrics.
"""
