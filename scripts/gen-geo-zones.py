#!/usr/bin/env python3
"""Regenerates geo/zones_gen.go from the system tz database (Debian tzdata):
the zone of every country zone.tab lists with exactly one zone. Countries
with several zones are in geo/geo.go, by hand (a default where one zone
holds most people, else per region)."""
import os
root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
rows = [l.split("\t") for l in open("/usr/share/zoneinfo/zone.tab") if not l.startswith("#") and l.strip()]
zones = {}
for r in rows:
    zones.setdefault(r[0], []).append(r[2].strip())
first = {cc: zs[0] for cc, zs in zones.items() if len(zs) == 1}
names = {}
for l in open("/usr/share/zoneinfo/iso3166.tab"):
    if not l.startswith("#"):
        cc, n = l.rstrip("\n").split("\t")
        names[cc] = n
lines = [f'\t"{cc}": "{first[cc]}", // {names.get(cc, "")}' for cc in sorted(first)]
src = '''// Code generated from the tz database's zone.tab (every country it lists
// with exactly one zone); DO NOT EDIT by hand: regenerate with
// scripts/gen-geo-zones.py. Countries with several zones are in geo.go.

package geo

// singleZone maps ISO 3166-1 alpha-2 codes of one-zone countries to it.
var singleZone = map[string]string{
''' + "\n".join(lines) + "\n}\n"
open(os.path.join(root, "geo", "zones_gen.go"), "w").write(src)
import subprocess
subprocess.run(["gofmt", "-w", os.path.join(root, "geo", "zones_gen.go")], check=True)
