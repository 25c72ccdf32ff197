"""Loads the YAML file named on stdin (a JSON string) with PyYAML, as Prometheus' rule files are
read, and prints it as JSON."""
import json
import sys

import yaml

with open(json.load(sys.stdin), encoding="utf-8") as f:
    json.dump(yaml.safe_load(f), sys.stdout)
