"""ovpn: a control plane for fleets of Xray VLESS + REALITY servers."""

__version__ = "0.1.0"
