"""What ovpn reads from a host. Each fact is one command and a pure parser of its output (the parsers are
unit-tested on output captured from real hosts); `gather` runs one over any `Remote`. Deploy's health gate,
doctor, monitor and fleet status all read the host through these, so each read has one home."""
