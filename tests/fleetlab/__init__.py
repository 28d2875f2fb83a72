"""A lab of hosts that look to ovpn like rented Debian servers: sshd, sudo, Docker Engine and Compose.

Each host is a container of a private Docker engine on this machine, on an internal network, with its own inner
Docker engine. ovpn runs inside a controller container's network namespace (`nsenter --net`), so no test
traffic ever leaves the root namespace towards a test address. Images come from debootstrap and local builds only.
"""
