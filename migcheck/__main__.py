from migcheck.cli import console

raise SystemExit(console())
