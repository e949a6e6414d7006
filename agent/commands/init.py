"""`storesync init`: write a commented starting config for the channels a merchant sells on.

The text comes from config/storesync.example.toml, which documents every key (a test keeps it in
step with the config models): the general tables verbatim, one table per channel asked for, and
the per-SKU and bundle examples commented out. Beside it goes an environment file naming every
secret the config reads, with a fresh ops token filled in and the channel secrets left to fill.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from agent.commands.context import EXIT_CONFIG, EXIT_OK, CommandFailed, stdout
from agent.processes import REPO

EXAMPLE = REPO / "config" / "storesync.example.toml"
KINDS = ("shopify", "woocommerce", "amazon", "ebay")
OPS_TOKEN_VARIABLE = "STORESYNC_OPS_TOKEN"

_HEADER = re.compile(r"^\s*(?P<commented>#\s*)?\[\[?\s*(?P<name>[A-Za-z0-9_.<>-]+)\s*\]\]?\s*$")
_KIND = re.compile(r'^\s*kind\s*=\s*"(?P<kind>[a-z]+)"')
_ENV = re.compile(r'\{\s*env\s*=\s*"(?P<name>[A-Z0-9_]+)"\s*\}')


@dataclass(slots=True)
class Section:
    """One top-level table of the example and the comment lines just above it."""

    name: str  # "" for the file's preamble
    lines: list[str]

    @property
    def kind(self) -> str | None:
        """A channel table's `kind`."""
        for line in self.lines:
            if match := _KIND.match(line):
                return match["kind"]
        return None


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add the init command."""
    parser = sub.add_parser(
        "init",
        parents=[common],
        help="write a commented starting config",
        description="Write a commented config for the channels you sell on, and an environment "
        "file naming every secret it needs. Then fill in the secrets and run "
        "`storesync check-config --online`.",
    )
    parser.add_argument(
        "--channels", required=True, metavar="KINDS",
        help=f"comma-separated channel kinds: {', '.join(KINDS)}",
    )
    parser.add_argument("--path", default="storesync.toml", metavar="FILE",
                        help="where to write the config (default: ./storesync.toml)")
    parser.add_argument("--env-file", metavar="FILE",
                        help="where to write the secrets file (default: storesync.env beside it)")
    parser.add_argument("--force", action="store_true", help="overwrite existing files")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the config and the environment file."""
    kinds = parse_kinds(args.channels)
    config_path = Path(args.path)
    env_path = Path(args.env_file) if args.env_file else config_path.with_name("storesync.env")
    if not args.force:
        for path in (config_path, env_path):
            if path.exists():
                raise CommandFailed(f"{path} exists; pass --force to overwrite it", EXIT_CONFIG)
    text = starting_config(EXAMPLE.read_text(encoding="utf-8"), kinds)
    variables = sorted(set(_ENV.findall(_live(text))))
    config_path.parent.mkdir(parents=True, exist_ok=True)
    _write_private(config_path, text)
    _write_private(env_path, environment_file(variables, config_path))
    stdout.print(f"wrote {config_path} for {', '.join(kinds)}", markup=False)
    stdout.print(f"wrote {env_path}: fill in {len(variables) - 1} secret(s) there", markup=False)
    stdout.print(
        "next: edit both files, then run\n"
        f"  set -a; . {env_path}; set +a\n"
        f"  storesync check-config --online {config_path}",
        markup=False,
    )
    return EXIT_OK


def parse_kinds(text: str) -> list[str]:
    """The channel kinds asked for, in the order given; a clear error for unknown ones."""
    kinds = [k.strip().lower() for k in text.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise CommandFailed(
            f"unknown channel kind(s): {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(KINDS)}",
            EXIT_CONFIG,
        )
    return list(dict.fromkeys(kinds))


def split_sections(text: str) -> list[Section]:
    """The example cut at each live top-level table, comments staying with the table below."""
    sections = [Section("", [])]
    pending: list[str] = []  # comment lines that may introduce the next table
    for line in text.splitlines():
        header = _HEADER.match(line)
        if header and not header["commented"]:
            sections.append(Section(header["name"], pending))
            pending = []
            sections[-1].lines.append(line)
        elif line.startswith("#") and not (header and header["commented"]):
            pending.append(line)
        else:
            sections[-1].lines.extend(pending)
            pending = []
            sections[-1].lines.append(line)
    sections[-1].lines.extend(pending)
    return sections


def starting_config(example: str, kinds: list[str]) -> str:
    """The example trimmed to the channels asked for, per-SKU examples commented out."""
    out = [
        "# Written by `storesync init`. Every key is explained below; see the README's config",
        "# reference for the rest. Validate with `storesync check-config --online`.",
        "",
    ]
    for section in split_sections(example):
        top = section.name.split(".", 1)[0]
        if top == "channels":
            if section.kind not in kinds:
                continue
            out.extend(section.lines)
        elif top in ("skus", "bundles"):
            # Examples of the shape only: declaring the example's SKUs would create them.
            out.extend(line if line.startswith("#") or not line else f"# {line}"
                       for line in section.lines)
        else:
            out.extend(section.lines)
    text = "\n".join(out).rstrip() + "\n"
    # The reference channel (a test API) is documented commented-out at the end of the example.
    return text.split("\n# The reference channel", 1)[0].rstrip() + "\n"


def environment_file(variables: list[str], config_path: Path) -> str:
    """KEY=VALUE lines for every secret: a fresh ops token, the channel secrets left empty."""
    lines = [
        f"# Secrets for {config_path.name}, read as environment variables.",
        "# Under systemd: EnvironmentFile= (keep this file root-only), or move each value to a",
        "# file and use LoadCredential= with { credential = \"name\" } in the config.",
    ]
    for name in variables:
        value = secrets.token_urlsafe(24) if name == OPS_TOKEN_VARIABLE else ""
        lines.append(f"{name}={value}")
    return "\n".join(lines) + "\n"


def _live(text: str) -> str:
    """The config's uncommented lines."""
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read: both files lead to secrets."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    path.chmod(0o600)
