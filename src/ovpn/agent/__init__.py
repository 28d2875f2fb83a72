"""ovpn-agent: the service that runs next to Xray on every host (standard library only, so its image needs
nothing but Python and ovpn's own wheel)."""
