"""`ovpn-telegram-bot`: the host's Telegram bot (owner-only screens, restarts, alert relay, health, metrics)."""
