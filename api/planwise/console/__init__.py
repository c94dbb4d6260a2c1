"""The operations console at `/admin/`: server-rendered pages of the monitoring report for
Planwise administrators (`routes.py`), signed in with a session cookie (`session.py`),
charts as server-rendered SVG (`charts.py`)."""
