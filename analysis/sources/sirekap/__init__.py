"""Sirekap (Pemilu 2024) as a source: API paths (``endpoints``), the polite resumable crawler
(``scrape``), the versioned snapshot store (``store``), the raw JSON parser and snapshot reader
(``parse``: ``read_tps_bodies``, ``read_snapshot``), the legislative candidate lists per dapil and
their join to the per-candidate votes (``caleg``), and a local stand-in server for tests and
benchmarks (``testserver``)."""
