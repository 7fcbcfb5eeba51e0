"""Werkzeug's ProxyFix, reading a forwarded header of one plain value without its list parser.

``ProxyFix`` reads each ``X-Forwarded-*`` header with ``parse_list_header``, which walks the
value a character at a time to honour quoted strings. Behind one proxy the headers hold one
plain value each (``X-Forwarded-For: 203.0.113.7``, ``X-Forwarded-Proto: https``), and the two
parses were a third of the full stack's cost beyond a bare Flask ``/ping`` in configuration B
(issue 8, benchmarks/results/3-december-midday). A value without a comma, a quote or blanks
around it is a list of that one item whatever Werkzeug's version (its list syntax changed in
3.2); anything else goes to Werkzeug's parser as before.
"""

from __future__ import annotations

from werkzeug.middleware.proxy_fix import ProxyFix as _WerkzeugProxyFix


class ProxyFix(_WerkzeugProxyFix):
    """``werkzeug.middleware.proxy_fix.ProxyFix``, the same values, one plain value read faster."""

    def _get_real_value(self, trusted: int, value: str | None) -> str | None:
        if not (trusted and value):
            return None  # a header not trusted, or not sent: Werkzeug's first test
        if "," not in value and '"' not in value and value == value.strip():
            # The list [value]: its last item when one proxy is trusted, too short otherwise.
            return value if trusted == 1 else None
        return super()._get_real_value(trusted, value)
