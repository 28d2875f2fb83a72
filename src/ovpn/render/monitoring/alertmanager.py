"""`monitoring/alertmanager/alertmanager.yml`: every alert goes to the Telegram bot's webhook, with the bot's
webhook token as a Bearer credential.

Alerts are grouped per alert name and host. Critical alerts are sent sooner and repeated more often than
warnings. A cause inhibits its symptoms on the same host: a dead pool hides its dead backends, a critical
threshold hides the warning one for the same resource.
"""

from __future__ import annotations

from typing import Any

from ovpn.render.monitoring.spec import BOT_WEBHOOK_URL, WEBHOOK_TOKEN_ALERTMANAGER_MOUNT

RECEIVER = "ovpn-telegram-bot"

# (source alert, target alerts): while the source fires on a host, the targets on that host are held back.
INHIBITIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("OvpnProxyPoolDown", ("OvpnProxyBackendDown", "OvpnProxyBackendFlapping", "OvpnProxyFailoverActive")),
    ("OvpnHaproxyContainerMissing", ("OvpnHaproxyScrapeDown",)),
    ("OvpnHostMemoryCritical", ("OvpnHostHighMemory",)),
    ("OvpnHostMemAvailableCritical", ("OvpnHostLowMemAvailable",)),
    ("OvpnHostDiskLowCritical", ("OvpnHostDiskLowWarning", "OvpnRootDiskWillFillSoon")),
    ("OvpnHostInodeLowCritical", ("OvpnHostInodeLowWarning",)),
)


def _one_of(names: tuple[str, ...]) -> str:
    if len(names) == 1:
        return f'alertname="{names[0]}"'
    return f'alertname=~"{"|".join(names)}"'


def alertmanager_document() -> dict[str, Any]:
    return {
        "global": {"resolve_timeout": "5m"},
        "route": {
            "receiver": RECEIVER,
            "group_by": ["alertname", "server"],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "12h",
            "routes": [
                {
                    "receiver": RECEIVER,
                    "matchers": ['severity="critical"'],
                    "group_wait": "10s",
                    "group_interval": "2m",
                    "repeat_interval": "1h",
                }
            ],
        },
        "inhibit_rules": [
            {
                "source_matchers": [_one_of((source,))],
                "target_matchers": [_one_of(targets)],
                "equal": ["server"],
            }
            for source, targets in INHIBITIONS
        ],
        "receivers": [
            {
                "name": RECEIVER,
                "webhook_configs": [
                    {
                        "url": BOT_WEBHOOK_URL,
                        "send_resolved": True,
                        "max_alerts": 0,
                        # The bot refuses a webhook without its token; Alertmanager reads the file per request.
                        "http_config": {
                            "authorization": {
                                "type": "Bearer",
                                "credentials_file": WEBHOOK_TOKEN_ALERTMANAGER_MOUNT,
                            }
                        },
                    }
                ],
            }
        ],
    }
