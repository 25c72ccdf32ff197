"""Runs cloud-init's OpenStack datasource with its own default metadata URLs (no metadata_urls
setting), from inside a VM namespace, and prints what it found as JSON on stdout.

stdin: {"dmi": <fake /sys/class/dmi/id>, "work": <temp dir>}

Since 23.1 the defaults are http://[fe80::a9fe:a9fe%25<fallback nic>] and http://169.254.169.254,
tried in parallel: on an IPv6-only VM only the first can answer. The DMI data says OpenStack Nova;
the container check is off (the test runs in one but plays a KVM guest). The rest, the nic,
the probe, the crawl and the network config conversion, is cloud-init's own code.
"""

import json

import guest
from cloudinit.sources.DataSourceOpenStack import DataSourceOpenStack

args = guest.args()
guest.debug_log()
guest.kvm_guest(args["dmi"])
paths, distro = guest.debian(args["work"])
sys_cfg = {"datasource_list": ["OpenStack"], "datasource": {"OpenStack": {"max_wait": 20, "timeout": 5, "retries": 1}}}
ds = DataSourceOpenStack(sys_cfg, distro, paths)
found = ds.get_data()
out = {**guest.which_cloud_init(), "found": found}
if found:
    f = guest.facts(ds)
    out.update(
        {
            "metadata_address": ds.metadata_address,
            "uuid": ds.metadata.get("uuid"),
            "hostname": f["hostname"],
            "public_keys": f["public_keys"],
            "network_config": ds.network_config,
        }
    )
print(json.dumps(out, default=repr))
