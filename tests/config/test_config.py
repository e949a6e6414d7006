"""Config loading as a merchant meets it: each mistake named by file and key path, all at once."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest

from agent.config import (
    Config,
    ConfigError,
    ConfigIssue,
    ListenAddress,
    Secret,
    ShopifyChannel,
    default_config_path,
    format_duration,
    format_summary,
    load_config,
    parse_duration,
)

# A Shopify channel that loads, so each test only adds the mistake it is about.
SHOP = """
[channels.shop]
kind = "shopify"
shop = "acme.myshopify.com"
access_token = { env = "SHOPIFY_TOKEN" }
"""
ENVIRON = {"SHOPIFY_TOKEN": "shpat_test"}

# Distinctive so that finding it anywhere it should not be is unambiguous.
LEAK_CANARY = "canary-7f1c-DO-NOT-PRINT"


def write_config(tmp_path: Path, text: str, *, mode: int = 0o600) -> Path:
    """Write a config file with the given permissions and return its path."""
    path = tmp_path / "storesync.toml"
    path.write_text(text)
    path.chmod(mode)
    return path


def load_errors(path: Path, environ: dict[str, str] | None = None) -> ConfigError:
    """Load a config that must fail and return the error."""
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ=ENVIRON if environ is None else environ)
    return caught.value


def find_issue(error: ConfigError, path: Path, key_path: str) -> ConfigIssue:
    """The issue at key_path; its text must name the file and the key path."""
    matching = [issue for issue in error.issues if issue.key_path == key_path]
    assert matching, f"no issue at {key_path}; got:\n{error}"
    issue = matching[0]
    assert str(path) in str(issue)
    assert key_path in str(issue)
    assert str(issue) == f"{path}: {key_path}: {issue.message}"
    return issue


def test_syntax_error_reports_line_and_column(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[agent]\nlog_level = "info"\ndatabase = \n')
    error = load_errors(path)
    assert len(error.issues) == 1
    issue = find_issue(error, path, "line 3, column 12")
    assert "invalid TOML" in issue.message


def test_missing_config_file_is_a_file_issue(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    issue = find_issue(load_errors(path), path, "(file)")
    assert "No such file or directory" in issue.message


def test_unknown_key_suggests_the_closest_key(tmp_path: Path) -> None:
    path = write_config(tmp_path, SHOP + 'webhok_secret = { env = "SHOPIFY_TOKEN" }\n')
    issue = find_issue(load_errors(path), path, "channels.shop.webhok_secret")
    assert issue.message == "unknown key 'webhok_secret' (did you mean 'webhook_secret'?)"


def test_unknown_key_without_a_close_match_has_no_hint(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[agent]\nzzz = 1\n")
    issue = find_issue(load_errors(path), path, "agent.zzz")
    assert issue.message == "unknown key 'zzz'"


def test_key_of_another_channel_kind_says_which_kinds_have_it(tmp_path: Path) -> None:
    path = write_config(tmp_path, SHOP + 'marketplace_id = "EBAY_US"\n')
    issue = find_issue(load_errors(path), path, "channels.shop.marketplace_id")
    assert "only ebay channels have it" in issue.message


def test_wrong_type_shows_expected_and_actual(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[stock]\nbuffer = "ten"\n')
    issue = find_issue(load_errors(path), path, "stock.buffer")
    assert issue.message == 'expected an integer, got "ten"'


def test_out_of_range_value(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[stock]\nallocation_pct = 150\n")
    issue = find_issue(load_errors(path), path, "stock.allocation_pct")
    assert issue.message == "must be at most 100, got 150"


def test_missing_secret_env_var(tmp_path: Path) -> None:
    path = write_config(tmp_path, SHOP)
    issue = find_issue(load_errors(path, environ={}), path, "channels.shop.access_token")
    assert issue.message == "environment variable SHOPIFY_TOKEN is not set"


def test_unreadable_secret_file(tmp_path: Path) -> None:
    secret_file = tmp_path / "token"
    secret_file.write_text("shpat_unreadable\n")
    secret_file.chmod(0o000)
    expected_reason = "Permission denied"
    if os.geteuid() == 0:
        # root reads any file whatever its mode; a directory is unreadable as a file for anyone.
        secret_file.chmod(0o600)
        secret_file.unlink()
        secret_file.mkdir()
        expected_reason = "Is a directory"
    text = SHOP.replace(
        'access_token = { env = "SHOPIFY_TOKEN" }', 'access_token = { file = "token" }'
    )
    path = write_config(tmp_path, text)
    issue = find_issue(load_errors(path), path, "channels.shop.access_token")
    assert issue.message == f"cannot read secret file {secret_file}: {expected_reason}"


def test_missing_secret_file(tmp_path: Path) -> None:
    text = SHOP.replace('{ env = "SHOPIFY_TOKEN" }', '{ file = "secrets/absent" }')
    path = write_config(tmp_path, text)
    issue = find_issue(load_errors(path), path, "channels.shop.access_token")
    expected = f"cannot read secret file {tmp_path / 'secrets' / 'absent'}: No such file"
    assert issue.message.startswith(expected)


def test_secret_file_is_read_relative_to_the_config_without_its_newline(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("shpat_from_file\n")
    path = write_config(tmp_path, SHOP.replace('{ env = "SHOPIFY_TOKEN" }', '{ file = "token" }'))
    channel = load_config(path, environ={}).channels["shop"]
    assert isinstance(channel, ShopifyChannel) and channel.access_token is not None
    assert channel.access_token.reveal() == "shpat_from_file"
    assert channel.access_token.source == f"file:{tmp_path / 'token'}"


def test_credential_is_read_from_credentials_directory(tmp_path: Path) -> None:
    credentials = tmp_path / "creds"
    credentials.mkdir()
    (credentials / "shop-token").write_text("shpat_from_systemd")
    text = SHOP.replace('{ env = "SHOPIFY_TOKEN" }', '{ credential = "shop-token" }')
    path = write_config(tmp_path, text)
    config = load_config(path, environ={"CREDENTIALS_DIRECTORY": str(credentials)})
    token = config.channels["shop"].access_token  # type: ignore[union-attr]
    assert token.reveal() == "shpat_from_systemd"
    assert token.source == "credential:shop-token"


def test_credential_without_credentials_directory(tmp_path: Path) -> None:
    text = SHOP.replace('{ env = "SHOPIFY_TOKEN" }', '{ credential = "shop-token" }')
    path = write_config(tmp_path, text)
    issue = find_issue(load_errors(path, environ={}), path, "channels.shop.access_token")
    assert "$CREDENTIALS_DIRECTORY" in issue.message and "not set" in issue.message


def test_empty_secret_is_an_error(tmp_path: Path) -> None:
    path = write_config(tmp_path, SHOP)
    error = load_errors(path, environ={"SHOPIFY_TOKEN": ""})
    issue = find_issue(error, path, "channels.shop.access_token")
    assert issue.message == "environment variable SHOPIFY_TOKEN is empty"


def test_duplicate_location(tmp_path: Path) -> None:
    text = "".join(f'[[locations]]\nname = "{name}"\n' for name in ["main", "back", "main"])
    path = write_config(tmp_path, text)
    issue = find_issue(load_errors(path), path, "locations[2].name")
    assert issue.message == "duplicate location 'main' (first defined at locations[0])"


def test_channel_with_unknown_location_suggests_one(tmp_path: Path) -> None:
    text = '[[locations]]\nname = "overflow"\n' + SHOP + 'locations = ["overfow"]\n'
    path = write_config(tmp_path, text)
    issue = find_issue(load_errors(path), path, "channels.shop.locations[0]")
    assert "unknown location 'overfow' (did you mean 'overflow'?)" in issue.message


def test_bundle_with_unknown_component(tmp_path: Path) -> None:
    text = '[[bundles]]\nsku = "SET"\ncomponents = { MUG = 1, MUGG = 2 }\n[skus.MUG]\n'
    path = write_config(tmp_path, text)
    error = load_errors(path)
    issue = find_issue(error, path, "bundles[0].components.MUGG")
    assert issue.message == (
        "unknown component 'MUGG' (did you mean 'MUG'?); declare it under [skus.MUGG]"
    )
    assert len(error.issues) == 1


def test_bundle_cannot_contain_itself_or_another_bundle(tmp_path: Path) -> None:
    text = (
        '[[bundles]]\nsku = "A"\ncomponents = { MUG = 1 }\n'
        '[[bundles]]\nsku = "B"\ncomponents = { A = 1, B = 1 }\n'
        '[[bundles]]\nsku = "A"\ncomponents = { MUG = 2 }\n'
        "[skus.MUG]\n"
    )
    path = write_config(tmp_path, text)
    error = load_errors(path)
    assert "bundles cannot be nested" in find_issue(error, path, "bundles[1].components.A").message
    assert "cannot contain itself" in find_issue(error, path, "bundles[1].components.B").message
    duplicate = find_issue(error, path, "bundles[2].sku")
    assert duplicate.message == "duplicate bundle 'A' (first defined at bundles[0])"


def test_sku_override_for_unknown_channel(tmp_path: Path) -> None:
    path = write_config(tmp_path, SHOP + "[skus.MUG.channels.shopp]\nfixed_qty = 1\n")
    issue = find_issue(load_errors(path), path, "skus.MUG.channels.shopp")
    assert "unknown channel 'shopp' (did you mean 'shop'?)" in issue.message


def test_unknown_channel_kind_lists_valid_kinds(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[channels.zon]\nkind = "amazn"\n')
    issue = find_issue(load_errors(path), path, "channels.zon.kind")
    assert issue.message == (
        "unknown channel kind 'amazn' (did you mean 'amazon'?);"
        " valid kinds: shopify, woocommerce, amazon, ebay, reference"
    )


def test_channel_without_kind(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[channels.zon]\nseller_id = "A1"\n')
    issue = find_issue(load_errors(path), path, "channels.zon.kind")
    assert issue.message.startswith("missing required key")


def test_errors_inside_a_channel_drop_the_kind_segment(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[channels.woo]\nkind = "woocommerce"\nenabled = "yes"\n')
    error = load_errors(path)
    assert find_issue(error, path, "channels.woo.enabled").message == (
        'expected true or false, got "yes"'
    )
    find_issue(error, path, "channels.woo.api_url")  # required for woocommerce
    assert find_issue(error, path, "channels.woo.consumer_key").message == "missing required key"


def test_invalid_channel_name(tmp_path: Path) -> None:
    path = write_config(tmp_path, SHOP.replace("[channels.shop]", "[channels.Shop]"))
    issue = find_issue(load_errors(path), path, "channels.Shop")
    assert "invalid channel name 'Shop'" in issue.message


def test_shopify_needs_one_way_to_authenticate(tmp_path: Path) -> None:
    path = write_config(tmp_path, SHOP + 'client_id = "abc"\n')
    issue = find_issue(load_errors(path), path, "channels.shop.access_token")
    assert "not both" in issue.message


def test_shopify_client_credentials_need_both_halves(tmp_path: Path) -> None:
    text = '[channels.shop]\nkind = "shopify"\nshop = "a.myshopify.com"\nclient_id = "abc"\n'
    path = write_config(tmp_path, text)
    issue = find_issue(load_errors(path), path, "channels.shop.access_token")
    assert issue.message.startswith("client_secret is missing")


def test_bad_duration(tmp_path: Path) -> None:
    path = write_config(tmp_path, SHOP + 'poll_interval = "5 minutes"\n')
    issue = find_issue(load_errors(path), path, "channels.shop.poll_interval")
    assert issue.message == (
        'invalid duration \'5 minutes\': use a number with a unit, e.g. "90s", "5m", "1h"'
    )


@pytest.mark.parametrize("value", ["1e300", '"99999999999999d"', '"3651d"'])
def test_a_duration_past_ten_years_is_a_config_error_naming_the_key(
    tmp_path: Path, value: str
) -> None:
    # Past what a timedelta holds, this was an OverflowError traceback from load_config.
    path = write_config(tmp_path, SHOP + f"poll_interval = {value}\n")
    issue = find_issue(load_errors(path), path, "channels.shop.poll_interval")
    assert issue.message.startswith("duration must be at most 3650d"), issue.message


def test_a_stock_figure_past_a_billion_units_is_a_config_error(tmp_path: Path) -> None:
    # Past 2**63 the numbers it makes could not be stored; past a billion it is a typo anyway.
    path = write_config(tmp_path, SHOP + "buffer = 99999999999999999999\n")
    issue = find_issue(load_errors(path), path, "channels.shop.buffer")
    assert issue.message.startswith("must be at most 1000000000"), issue.message


def test_zero_poll_interval_is_rejected(tmp_path: Path) -> None:
    path = write_config(tmp_path, SHOP + 'poll_interval = "0s"\n')
    issue = find_issue(load_errors(path), path, "channels.shop.poll_interval")
    assert issue.message == "must be longer than 0s"


def test_bad_url(tmp_path: Path) -> None:
    path = write_config(tmp_path, SHOP + 'api_url = "shop.example.com"\n')
    issue = find_issue(load_errors(path), path, "channels.shop.api_url")
    assert "use an http:// or https:// URL" in issue.message


def test_non_loopback_ops_listen_needs_allow_remote_ops(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[agent]\nops_listen = "0.0.0.0:8081"\n')
    issue = find_issue(load_errors(path), path, "agent.ops_listen")
    assert "allow_remote_ops = true" in issue.message

    allowed = write_config(
        tmp_path, '[agent]\nops_listen = "0.0.0.0:8081"\nallow_remote_ops = true\n'
    )
    assert str(load_config(allowed, environ={}).agent.ops_listen) == "0.0.0.0:8081"


@pytest.mark.parametrize("address", ["127.0.0.1:8081", "127.8.9.10:1", "localhost:9", "[::1]:8081"])
def test_loopback_ops_listen_needs_nothing(tmp_path: Path, address: str) -> None:
    path = write_config(tmp_path, f'[agent]\nops_listen = "{address}"\n')
    assert str(load_config(path, environ={}).agent.ops_listen) == address


def test_listen_address_parsing() -> None:
    assert ListenAddress.parse("[::1]:8080") == ListenAddress("::1", 8080)
    assert str(ListenAddress("::1", 8080)) == "[::1]:8080"
    assert ListenAddress.parse("0.0.0.0:0").port == 0
    for junk in ["8080", "::1:8080", "host:65536", "host:http", ":80", "[nope]:80"]:
        with pytest.raises(ValueError, match="invalid listen address"):
            ListenAddress.parse(junk)


def test_several_errors_are_all_reported_in_file_order(tmp_path: Path) -> None:
    text = (
        '[agent]\nops_listen = "10.0.0.1:8081"\nlog_level = "loud"\n'
        "[stock]\nbuffer = -1\n"
        '[[locations]]\nname = "main"\n[[locations]]\nname = "main"\n'
        + SHOP
        + 'poll_interval = "soon"\nlocations = ["nowhere"]\n'
        '[[bundles]]\nsku = "SET"\ncomponents = { CUP = 1 }\n'
    )
    path = write_config(tmp_path, text)
    error = load_errors(path, environ={})
    assert [issue.key_path for issue in error.issues] == [
        "agent.ops_listen",
        "agent.log_level",
        "stock.buffer",
        "locations[1].name",
        "channels.shop.access_token",
        "channels.shop.poll_interval",
        "channels.shop.locations[0]",
        "bundles[0].components.CUP",
    ]
    assert str(error) == "\n".join(str(issue) for issue in error.issues)


def test_literal_secret_in_group_readable_file_warns(tmp_path: Path) -> None:
    text = SHOP.replace('{ env = "SHOPIFY_TOKEN" }', f'"{LEAK_CANARY}"')
    path = write_config(tmp_path, text, mode=0o644)
    config = load_config(path, environ={})
    assert [warning.key_path for warning in config.warnings] == ["channels.shop.access_token"]
    warning = config.warnings[0]
    assert str(path) in str(warning)
    assert "chmod 600" in warning.message and "{ env" in warning.message
    assert LEAK_CANARY not in str(warning)


def test_literal_secret_in_private_file_does_not_warn(tmp_path: Path) -> None:
    text = SHOP.replace('{ env = "SHOPIFY_TOKEN" }', f'"{LEAK_CANARY}"')
    path = write_config(tmp_path, text, mode=0o600)
    assert load_config(path, environ={}).warnings == []


def test_secrets_never_appear_in_output(tmp_path: Path) -> None:
    credentials = tmp_path / "creds"
    credentials.mkdir()
    (credentials / "ops").write_text(LEAK_CANARY + "-ops\n")
    text = (
        '[agent]\nops_token = { credential = "ops" }\n'
        + SHOP.replace('{ env = "SHOPIFY_TOKEN" }', f'"{LEAK_CANARY}-literal"')
        + 'webhook_secret = { env = "HOOK" }\n'
    )
    path = write_config(tmp_path, text, mode=0o644)
    environ = {"HOOK": LEAK_CANARY + "-env", "CREDENTIALS_DIRECTORY": str(credentials)}
    config = load_config(path, environ=environ)
    channel = config.channels["shop"]
    assert isinstance(channel, ShopifyChannel) and channel.access_token is not None
    assert channel.access_token.reveal() == LEAK_CANARY + "-literal"

    secret = channel.access_token
    assert repr(secret) == str(secret) == f"{secret}" == "Secret('***')"
    dumped = config.model_dump()
    assert dumped["channels"]["shop"]["access_token"] == "***"
    assert dumped["agent"]["ops_token"] == "***"
    outputs = [
        repr(config),
        str(config),
        str(dumped),
        config.model_dump_json(),
        format_summary(config),
        "\n".join(str(warning) for warning in config.warnings),
    ]
    for output in outputs:
        assert LEAK_CANARY not in output

    # Errors elsewhere in the same file, and malformed secret tables, must not echo values either.
    broken = text + f'buffer = "x"\nacces_token = "{LEAK_CANARY}-typo"\n'
    broken += '[channels.woo]\nkind = "woocommerce"\napi_url = "https://w.example"\n'
    broken += f'consumer_key = {{ env = "HOOK", value = "{LEAK_CANARY}-table" }}\n'
    broken += "consumer_secret = 12345\n"
    error = load_errors(write_config(tmp_path, broken), environ=environ)
    assert "consumer_key" in str(error) and "consumer_secret" in str(error)
    assert LEAK_CANARY not in str(error)
    assert "12345" not in str(error)
    assert error.__cause__ is None and error.__context__ is None


def test_relative_database_path_resolves_against_config_dir(tmp_path: Path) -> None:
    config_dir = tmp_path / "etc"
    config_dir.mkdir()
    path = write_config(config_dir, '[agent]\ndatabase = "data/storesync.db"\n')
    assert load_config(path, environ={}).agent.database == config_dir / "data" / "storesync.db"


def test_database_path_defaults_to_var_lib(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, ""), environ={})
    assert config.agent.database == Path("/var/lib/storesync/storesync.db")
    assert config.path == tmp_path / "storesync.toml"


def test_default_config_path_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STORESYNC_CONFIG", raising=False)
    assert default_config_path(None) == Path("/etc/storesync/storesync.toml")
    monkeypatch.setenv("STORESYNC_CONFIG", "/srv/env.toml")
    assert default_config_path(None) == Path("/srv/env.toml")
    assert default_config_path("cli.toml") == Path("cli.toml")
    assert default_config_path(None, environ={}) == Path("/etc/storesync/storesync.toml")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("5m", timedelta(minutes=5)),
        ("1h", timedelta(hours=1)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("500ms", timedelta(milliseconds=500)),
        ("1d", timedelta(days=1)),
        ("1.5h", timedelta(minutes=90)),
        ("2m30s", timedelta(minutes=2, seconds=30)),
    ],
)
def test_durations_parse(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "junk", ["", "90", "5 minutes", "5min", "1h 30m", "30m1h", "5m5m", "-5s", "h", "1.s"]
)
def test_durations_reject_junk(junk: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(junk)


def test_duration_formatting_round_trips() -> None:
    for text in ["90s", "1h30m", "500ms", "1d2h", "0s"]:
        formatted = format_duration(parse_duration(text))
        assert parse_duration(formatted) == parse_duration(text)
    assert format_duration(timedelta(seconds=90)) == "1m30s"


def test_bare_number_duration_means_seconds(tmp_path: Path) -> None:
    path = write_config(tmp_path, SHOP + "poll_interval = 45\n")
    assert load_config(path, environ=ENVIRON).channels["shop"].poll_interval == timedelta(
        seconds=45
    )


def test_implicit_main_location(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, SHOP + 'locations = ["main"]\n'), environ=ENVIRON)
    assert [location.name for location in config.locations] == ["main"]
    assert config.channels["shop"].locations == ["main"]


def test_channel_defaults(tmp_path: Path) -> None:
    channel = load_config(write_config(tmp_path, SHOP), environ=ENVIRON).channels["shop"]
    assert isinstance(channel, ShopifyChannel)
    assert channel.poll_interval == timedelta(seconds=60)
    assert channel.reconcile_interval == timedelta(minutes=15)
    assert (channel.api_version, channel.cost_bucket_size, channel.cost_restore_rate) == (
        "2026-07",
        1000,
        100,
    )
    assert channel.stock_edits == "overwrite" and channel.enabled and channel.api_url is None


def test_config_built_in_code_checks_references() -> None:
    with pytest.raises(ValueError, match="unknown component 'CUP'"):
        Config.model_validate({"bundles": [{"sku": "SET", "components": {"CUP": 1}}]})
    assert Config().locations[0].name == "main"


def test_secret_compares_by_value_and_source() -> None:
    assert Secret("a", "env:X") == Secret("a", "env:X")
    assert Secret("a", "env:X") != Secret("b", "env:X")
    assert Secret("a", "env:X") != Secret("a", "env:Y")


def test_summary_describes_channels_bundles_and_overrides(tmp_path: Path) -> None:
    text = (
        '[[locations]]\nname = "main"\n[[locations]]\nname = "back"\ntitle = "Back room"\n'
        + SHOP
        + 'locations = ["back"]\nsku_map = { "M-1" = "MUG" }\nstock_edits = "import"\n'
        '[[bundles]]\nsku = "SET"\ncomponents = { MUG = 1, CUP = 2 }\n'
        "[skus.MUG]\nbuffer = 3\n[skus.CUP]\n[skus.CUP.channels.shop]\nfixed_qty = 0\n"
    )
    summary = format_summary(load_config(write_config(tmp_path, text), environ=ENVIRON))
    assert "shop (shopify)" in summary
    assert "api_url (default)" in summary
    assert "poll every 1m, reconcile every 15m" in summary
    assert "locations back (ships from back)" in summary
    assert "stock_edits import" in summary and "sku_map 1 entry" in summary
    assert "access_token from env:SHOPIFY_TOKEN" in summary
    assert "back - Back room" in summary
    assert "SET: MUG x 1, CUP x 2" in summary
    assert "sku overrides (2):" in summary
    assert "MUG (buffer 3)" in summary and "CUP (shop: fixed_qty 0)" in summary
    assert summary.endswith("warnings: none")


AMAZON_TABLE = """
[channels.amz]
kind = "amazon"
seller_id = "A2EXAMPLE"
marketplace_ids = ["ATVPDKIKX0DER"]
lwa_client_id = "amzn1.application-oa2-client.x"
lwa_client_secret = "s3cret"
refresh_token = "Atzr|x"
order_settle = "10s"
"""


def test_amazon_order_settle_under_two_minutes_needs_a_sandbox(tmp_path: Path) -> None:
    path = write_config(tmp_path, AMAZON_TABLE)
    issue = find_issue(load_errors(path), path, "channels.amz")
    assert "order_settle must be at least 2m" in issue.message
    sandbox = write_config(tmp_path, AMAZON_TABLE + 'api_url = "http://127.0.0.1:9103"\n')
    config = load_config(sandbox, environ=ENVIRON)
    assert config.channels["amz"].order_settle.total_seconds() == 10  # type: ignore[union-attr]
