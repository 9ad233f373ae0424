"""The dashboard: a Streamlit app (:mod:`.app`) and a static HTML report (:mod:`.report`) with
the same Plotly charts (:mod:`.charts`) on the marts, read through :mod:`.data`."""

from pathlib import Path

# The Streamlit script (``streamlit run`` executes it; importing it would run the page).
APP = Path(__file__).with_name("app.py")
