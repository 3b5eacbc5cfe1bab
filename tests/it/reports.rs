//! Reports: snapshots of report.md and junit.xml, `report` and `diff`.
