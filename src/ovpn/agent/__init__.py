"""ovpn-agent: the service that runs next to Xray on every host. Beyond the standard library it needs only the
`agent` extra (gRPC and protobuf for Xray's API), whose wheels ship in the bundle with ovpn's own."""
