"""The monitoring part of a host's deploy bundle: Compose services, Prometheus, alerts, Alertmanager, Grafana.

`render_monitoring(MonitoringSpec(...))` returns `{path under /opt/ovpn: BundleFile}`; see `render.py`.
"""

from ovpn.render.monitoring.render import render_monitoring
from ovpn.render.monitoring.spec import MonitoringSpec

__all__ = ["MonitoringSpec", "render_monitoring"]
