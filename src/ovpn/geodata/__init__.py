"""Geodata: the geosite.dat/geoip.dat format (`dat`), Xray's matching (`match`), route explanation
(`explain`) and the download cache (`cache`, the only module here that does I/O)."""
