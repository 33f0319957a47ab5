"""Which URLs may receive the gateway's outbound calls that a config names (alert webhooks): public
http(s) addresses unless the config allows private ones. Checked when the config loads and again,
for host names, when they are resolved (accounting/webhooks.py)."""

from __future__ import annotations


def webhook_problem(url: str, allow_private: bool) -> str | None:
    """Why `url` cannot be a webhook (None: it can): http(s) with a host, and unless
    `allow_private`, not a loopback, private, link-local or otherwise non-public address. Host
    names are resolved and checked again at send time (accounting/webhooks.py)."""
    import ipaddress
    from urllib.parse import urlsplit

    try:
        u = urlsplit(url)
        host = u.hostname
        u.port  # noqa: B018  (raises on a bad port)
    except ValueError as e:
        return f"{url!r} is not a URL ({e})"
    if u.scheme not in ("http", "https") or not host:
        return f"{url!r} is not an http(s) URL with a host"
    if allow_private:
        return None
    if host == "localhost" or host.endswith(".localhost"):
        return f"{host} is a loopback address; set alerts.allow_private: true to allow it"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None  # a host name: checked when it is resolved
    return None if public_ip(host) else \
        f"{host} is a loopback, private or link-local address; set alerts.allow_private: true to allow it"


def public_ip(address: str) -> bool:
    """True for a globally routable address (an IPv4-mapped IPv6 address is judged as IPv4)."""
    import ipaddress

    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast
