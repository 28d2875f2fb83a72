"""`deploy --plan` diffs the bundle against the host without printing a secret, yet shows that one changed."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.topology import RELAY_UUID, XRAY_KEY_PAIRS

from ovpn.ops.plan import FileChange, _text_diff
from ovpn.ops.redact import Redactor

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "proxy-ru" / "xray" / "config.json"
LIVE_KEY = XRAY_KEY_PAIRS["proxy"][0]
NEW_KEY = XRAY_KEY_PAIRS["other"][0]
ALICE = "7de16ee7-504c-4fce-aec4-11358493ffad"
CAROL = "5b0e7f4c-9a3d-4f2e-8c1b-2d6a7e9f0c31"
CONFIG = "xray/config.json"


def live_config() -> bytes:
    text = GOLDEN.read_text()
    assert LIVE_KEY in text and RELAY_UUID in text and ALICE in text  # the secrets these tests look for
    return text.encode()


def printed(path: str, diff: list[str]) -> str:
    """Both forms the plan prints: the text lines and the `--json` document."""
    return "\n".join(diff) + json.dumps(FileChange(path, "changed", diff).__dict__)


def test_a_key_change_shows_two_different_tags_and_neither_key() -> None:
    diff = _text_diff(
        CONFIG, live_config(), live_config().replace(LIVE_KEY.encode(), NEW_KEY.encode()), Redactor()
    )
    out = printed(CONFIG, diff)
    assert LIVE_KEY not in out and NEW_KEY not in out
    removed = [line for line in diff if line.startswith("-") and '"privateKey"' in line]
    added = [line for line in diff if line.startswith("+") and '"privateKey"' in line]
    assert len(removed) == len(added) == 1 and "<secret " in removed[0] and "<secret " in added[0]
    assert removed[0][1:] != added[0][1:]


def test_a_short_id_change_shows_the_unchanged_key_as_a_tag_in_the_context() -> None:
    new = live_config().replace(b'"a1b2c3d4"', b'"a1b2c3d4e5f6"')
    diff = _text_diff(CONFIG, live_config(), new, Redactor())
    assert LIVE_KEY not in printed(CONFIG, diff)
    assert any(line.startswith(" ") and '"privateKey": "<secret ' in line for line in diff)
    assert '+            "a1b2c3d4e5f6"' in diff


def test_user_and_relay_uuids_are_masked_and_a_new_user_is_still_visible() -> None:
    document = json.loads(live_config())
    clients = document["inbounds"][0]["settings"]["clients"]
    clients.append({**clients[0], "id": CAROL, "email": "carol@global"})
    document["outbounds"][0]["settings"]["vnext"][0]["users"][0]["id"] = CAROL.replace("5b0e", "6c1f")
    diff = _text_diff(CONFIG, live_config(), (json.dumps(document, indent=2) + "\n").encode(), Redactor())
    out = printed(CONFIG, diff)
    assert not any(uuid in out for uuid in (ALICE, CAROL, RELAY_UUID, CAROL.replace("5b0e", "6c1f")))
    assert '+            "email": "carol@global",' in diff
    assert any(line.startswith("-") and '"id": "<secret ' in line for line in diff)  # the relay UUID changed


def test_env_secrets_are_tagged_per_variable() -> None:
    live = b"XRAY_IMAGE=ghcr.io/xtls/xray-core:26.7.28\nOVPN_AGENT_TOKEN=old-token-0123456789\n"
    new = b"XRAY_IMAGE=ghcr.io/xtls/xray-core:26.7.29\nOVPN_AGENT_TOKEN=new-token-0123456789\n"
    diff = _text_diff(".env", live, new, Redactor())
    out = printed(".env", diff)
    assert "old-token" not in out and "new-token" not in out
    assert "+XRAY_IMAGE=ghcr.io/xtls/xray-core:26.7.29" in diff
    assert any(line.startswith("+OVPN_AGENT_TOKEN=<secret ") for line in diff)


def test_a_copy_of_a_known_secret_in_another_file_is_masked() -> None:
    redactor = Redactor()
    redactor.json_text(live_config().decode())
    diff = _text_diff("monitoring/notes.yml", b"a: 1\n", f"a: 1\nkey: {LIVE_KEY}\n".encode(), redactor)
    assert LIVE_KEY not in printed("monitoring/notes.yml", diff) and "+key: <secret " in "\n".join(diff)


def test_a_live_file_that_is_not_json_is_not_printed() -> None:
    live = live_config().replace(b"{", b"{ broken", 1)
    diff = _text_diff(CONFIG, live, live_config(), Redactor())
    assert LIVE_KEY not in printed(CONFIG, diff) and "diff withheld" in diff[0]


def test_reveal_shows_the_keys_and_tags_do_not_link_across_plans() -> None:
    new = live_config().replace(LIVE_KEY.encode(), NEW_KEY.encode())
    revealed = "\n".join(_text_diff(CONFIG, live_config(), new, None))
    assert f'-          "privateKey": "{LIVE_KEY}",' in revealed and NEW_KEY in revealed
    one, other = Redactor(), Redactor()
    assert one.placeholder(LIVE_KEY) == one.placeholder(LIVE_KEY) != other.placeholder(LIVE_KEY)
