"""Quality flags that depend on the click alone (no I/O): bots and link previews.

The flags that need history (duplicate, velocity, revoked) are computed at write time against
the database in :mod:`openpartner.clicks.writer`, so they hold across router processes.
"""

from __future__ import annotations

import re

# Crawlers, link unfurlers (chat apps fetch every link pasted into them), headless browsers,
# uptime checkers and HTTP libraries. A substring match on the lower-cased user agent; real
# browsers never contain these.
_BOT_MARKERS = (
    "bot",
    "crawl",
    "spider",
    "slurp",
    "preview",
    "facebookexternalhit",
    "facebookcatalog",
    "meta-externalagent",
    "embedly",
    "iframely",
    "whatsapp",
    "telegram",
    "skypeuripreview",
    "vkshare",
    "quora link",
    "pinterest",
    "tumblr",
    "flipboard",
    "bitly",
    "nuzzel",
    "outbrain",
    "mastodon",
    "pleroma",
    "misskey",
    "cardyb",
    "headlesschrome",
    "phantomjs",
    "lighthouse",
    "pagespeed",
    "google-inspectiontool",
    "googleother",
    "feedfetcher",
    "ia_archiver",
    "archive.org",
    "yandex",
    "semrush",
    "ahrefs",
    "python-requests",
    "python-urllib",
    "python-httpx",
    "aiohttp",
    "curl/",
    "wget",
    "libwww",
    "httpclient",
    "okhttp",
    "go-http-client",
    "java/",
    "axios",
    "node-fetch",
    "undici",
    "scrapy",
    "uptime",
    "pingdom",
    "monitor",
)
_BOT_RE = re.compile("|".join(re.escape(marker) for marker in _BOT_MARKERS))
_CACHE_MAX = 4096
_cache: dict[str, bool] = {}


def is_bot(user_agent: str | None) -> bool:
    """Known crawler or preview agent, or no user agent at all (browsers always send one)."""
    if not user_agent or not user_agent.strip():
        return True
    cached = _cache.get(user_agent)
    if cached is None:
        # User agents repeat a lot; a small memo keeps the regex off most requests.
        cached = _BOT_RE.search(user_agent.lower()) is not None
        if len(_cache) >= _CACHE_MAX:
            _cache.clear()
        _cache[user_agent] = cached
    return cached
