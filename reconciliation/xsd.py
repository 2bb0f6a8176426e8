"""XSD validation against the camt schemas shipped in ``reconciliation/schemas``,
and the hardened lxml parser every bank file goes through.

The package carries its own copies (ISO 20022 camt.053.001.02/.08 and
camt.054.001.02/.08, byte-identical to the ones in shared/bank-files/xsd,
which came from genkgo/camt) so a file is validated against exactly the
schema the code was written for, on any machine, without network access.
The parser is a copy of ``sepa.xsd.hardened_parser``: the two packages may
not import each other.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from itertools import islice
from pathlib import Path
from typing import Any, cast

from lxml import etree

from reconciliation.errors import MalformedStatement, SchemaInvalid

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
SCHEMAS = frozenset({"camt.053.001.02", "camt.053.001.08", "camt.054.001.02", "camt.054.001.08"})
# How many lxml error lines a SchemaInvalid carries: enough to fix the input,
# bounded so a file with 100,000 bad entries does not make a 100,000-line error.
MAX_REPORTED_ERRORS = 50


def hardened_parser() -> etree.XMLParser:
    """Parser for bytes we did not write: no entity expansion, no DTD, no network,
    libxml2's default size/depth limits (huge_tree off)."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        huge_tree=False,
        load_dtd=False,
        dtd_validation=False,
        remove_comments=True,
        remove_pis=True,
    )


def parse_untrusted(data: bytes) -> etree._Element:
    """Parse a whole document with the hardened parser; refuse anything carrying a DTD.

    ISO 20022 messages never have one, and a DTD is where entity bombs and
    external entities live, so refusing it outright beats defusing it.
    """
    try:
        root = etree.fromstring(data, parser=hardened_parser())
    except etree.XMLSyntaxError as e:
        raise MalformedStatement(f"not well-formed XML: {e}") from None
    docinfo = root.getroottree().docinfo
    if docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise MalformedStatement("XML with a DTD (DOCTYPE) is refused: entity declarations are not allowed")
    return root


class _Schema:
    """A compiled schema plus the lock that guards it.

    lxml keeps the last error log on the validator object itself, so two
    threads validating with one instance would read each other's errors.
    """

    def __init__(self, name: str) -> None:
        path = SCHEMA_DIR / f"{name}.xsd"
        doc = etree.parse(str(path), parser=hardened_parser())
        self.schema = etree.XMLSchema(doc)
        self.lock = threading.Lock()


_cache: dict[str, _Schema] = {}
_cache_lock = threading.Lock()


def _schema(name: str) -> _Schema:
    if name not in SCHEMAS:
        raise ValueError(f"unknown schema {name!r}; shipped: {sorted(SCHEMAS)}")
    cached = _cache.get(name)
    if cached is None:
        with _cache_lock:
            cached = _cache.get(name)
            if cached is None:
                cached = _cache[name] = _Schema(name)
    return cached


def validate_tree(root: etree._Element, schema: str) -> None:
    s = _schema(schema)
    with s.lock:
        if s.schema.validate(root):
            return
        # lxml-stubs declare the error log opaque; at runtime it iterates _LogEntry.
        entries = cast("Iterable[Any]", s.schema.error_log)
        errors = [f"line {e.line}: {e.message}" for e in islice(entries, MAX_REPORTED_ERRORS)]
    raise SchemaInvalid(schema, errors)


def validate(data: bytes, schema: str) -> None:
    """Raise ``SchemaInvalid`` (with lxml's error lines) unless ``data`` is valid against ``schema``.

    ``schema`` is a message name such as ``"camt.053.001.02"``.
    """
    validate_tree(parse_untrusted(data), schema)
