"""Reports: the ledger's books as files people and their tools read.

Pure functions over small records, no database, no network:

- ``xaf``      XML Auditfile Financieel 3.2, the journal export Dutch
               accountants load into their audit tools.
- ``formats``  a ``Table`` as CSV, XLSX or PDF (one writer per format, the
               same columns and totals in each).

Whoever reads the ledger (a flow in ``settlement/``) builds the records and
picks the format; nothing here knows SQL or HTTP.
"""
