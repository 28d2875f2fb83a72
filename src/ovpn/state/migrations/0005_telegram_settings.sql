-- Who a server's Telegram bot answers and notifies (`ovpn server monitor telegram-setup`). The token itself never
-- enters the state: it lives only in the host's secret file, which deploys keep.
CREATE TABLE telegram_settings (
    server_id       INTEGER PRIMARY KEY REFERENCES servers (id) ON DELETE CASCADE,
    owner_user_id   INTEGER NOT NULL,
    notify_chat_ids TEXT NOT NULL DEFAULT '',
    api_base_url    TEXT NOT NULL DEFAULT '',
    updated_at      TEXT NOT NULL
);
