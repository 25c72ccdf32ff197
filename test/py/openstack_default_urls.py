"""Runs cloud-init's OpenStack datasource with its own default metadata URLs (no metadata_urls
setting), from inside a VM namespace, and prints what it found as JSON on stdout.

stdin: {"dmi": <fake /sys/class/dmi/id>, "work": <temp dir>}

Since 23.1 the defaults are http://[fe80::a9fe:a9fe%25<fallback nic>] and http://169.254.169.254,
tried in parallel: on an IPv6-only VM only the first can answer. The DMI data says OpenStack Nova;
the container check is off (the test runs in one but plays a KVM guest). The rest, the nic,
the probe, the crawl and the network config conversion, is cloud-init's own code.
"""

import json
import logging
import os
import sys

import cloudinit
from cloudinit import dmi, distros, helpers, util, version
from cloudinit.sources.DataSourceOpenStack import DataSourceOpenStack

args = json.load(sys.stdin)
logging.basicConfig(stream=sys.stderr, level=logging.DEBUG)
dmi.DMI_SYS_PATH = args["dmi"]
dmi.is_container = lambda: False
util.is_container = lambda: False
work = args["work"]
paths = helpers.Paths(
    {
        "cloud_dir": os.path.join(work, "cloud"),
        "run_dir": os.path.join(work, "run"),
        "templates_dir": os.path.join(work, "templates"),
    }
)
distro = distros.fetch("debian")("debian", {}, paths)
sys_cfg = {"datasource_list": ["OpenStack"], "datasource": {"OpenStack": {"max_wait": 20, "timeout": 5, "retries": 1}}}
ds = DataSourceOpenStack(sys_cfg, distro, paths)
found = ds.get_data()
out = {
    "cloud_init_version": version.version_string(),
    "cloud_init_path": os.path.dirname(cloudinit.__file__),
    "found": found,
}
if found:
    out.update(
        {
            "metadata_address": ds.metadata_address,
            "uuid": ds.metadata.get("uuid"),
            "hostname": ds.get_hostname().hostname,
            "public_keys": ds.get_public_ssh_keys(),
            "network_config": ds.network_config,
        }
    )
print(json.dumps(out, default=repr))
