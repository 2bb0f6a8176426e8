"""Subcommands beyond serving and migrating: ledger, bench, demo, ..."""

from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    return None
