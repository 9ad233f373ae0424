"""The dashboard: a Streamlit app (:mod:`.app`) and a static HTML report (:mod:`.report`) with
the same Plotly charts (:mod:`.charts`) on the marts, read through :mod:`.data`."""

from pathlib import Path

# The Streamlit script (``streamlit run`` executes it; importing it would run the page).
APP = Path(__file__).with_name("app.py")
# What ``stockpipe dashboard`` runs: Streamlit's ASGI server for APP (see server.py).
SERVER = Path(__file__).with_name("server.py")
# The browser tab's title, from the first HTML on (server.py) and after the script runs.
PAGE_TITLE = "stockpipe"
