"""Parses Prometheus text exposition (a JSON string on stdin) with prometheus_client's own parser and prints
every sample as JSON: [[name, {labels}, value], ...]. A malformed exposition raises."""
import json
import math
import sys

from prometheus_client.parser import text_string_to_metric_families

samples = []
types = {}
for family in text_string_to_metric_families(json.load(sys.stdin)):
    types[family.name] = family.type
    for s in family.samples:
        value = s.value if math.isfinite(s.value) else str(s.value)
        samples.append([s.name, s.labels, value])
json.dump({"types": types, "samples": samples}, sys.stdout)
