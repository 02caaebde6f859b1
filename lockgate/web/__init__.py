"""The browser side of lockgate: server-rendered pages (Jinja2), their static assets and the
negotiation that tells a browser from an installer or a script.

Domains keep their own views; this package holds what every page shares: the template
environment and base layout (`templates.py`), the static files (`static.py`) and
`negotiation.py`.
"""
