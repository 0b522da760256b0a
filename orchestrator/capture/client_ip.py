"""The client's address, pure: the socket peer, unless the peer is one of the trusted proxies
(`OUTREACH_TRUSTED_PROXIES`, addresses or networks), in which case the nearest address in
`X-Forwarded-For` that is not itself a trusted proxy. Anyone can write `X-Forwarded-For`; only
the entries our own proxies appended are believed, so the walk goes from the right.

`outreach serve` also hands the proxies to uvicorn, which then puts the client in the socket
peer already; the walk here stops at once, the peer not being a proxy."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _address(value: str) -> Address | None:
    text = value.strip()
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:443"
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "203.0.113.9:5123"
        text = text.partition(":")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


@dataclass(frozen=True)
class TrustedProxies:
    networks: tuple[Network, ...] = ()

    @classmethod
    def parse(cls, values: Sequence[str]) -> TrustedProxies:
        """Addresses and networks; `*` trusts every peer (as uvicorn's `forwarded_allow_ips`
        does). Other literals uvicorn accepts (a Unix socket path) can never be an IP peer."""
        networks: list[Network] = []
        for value in (v.strip() for v in values):
            if value == "*":
                networks += [ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")]
                continue
            try:
                networks.append(ipaddress.ip_network(value, strict=False))
            except ValueError:
                continue
        return cls(tuple(networks))

    def trusts(self, address: Address) -> bool:
        return any(address in network for network in self.networks)


def client_ip(peer: str | None, forwarded_for: str | None, trusted: TrustedProxies) -> str | None:
    peer_address = _address(peer) if peer else None
    if peer_address is None:
        return peer
    if not trusted.trusts(peer_address) or not forwarded_for:
        return str(peer_address)
    nearest = peer_address
    for entry in reversed(forwarded_for.split(",")):
        address = _address(entry)
        if address is None:
            break  # garbage: keep the last address our proxies vouched for
        nearest = address
        if not trusted.trusts(address):
            break
    return str(nearest)
