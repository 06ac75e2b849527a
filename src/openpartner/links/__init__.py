"""Links: a partner's tracking link (``/<key>`` on the router) and its destination."""
