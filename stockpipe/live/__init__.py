"""The live tier: trades in, prices on the dashboard and alerts out within seconds.

* :mod:`.ingest`: trades over Finnhub's websocket -> 1-minute bars -> the prices topic
  (``stockpipe ingest --follow``);
* :mod:`.exchange`: a simulated exchange speaking the same websocket protocol, so the whole
  live path runs offline (``stockpipe demo --live``);
* :mod:`.store`: the live store (an embedded warehouse of its own, fed by a following drain
  that commits about every second) and the live marts dbt defines over it, refreshed after
  each commit for the dashboard, with alerts on arrival (``stockpipe live``);
* :mod:`.demo`: the three together on one machine, offline (``stockpipe demo --live``).
"""
