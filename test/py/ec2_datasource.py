"""Runs cloud-init's own EC2 datasource, get_data() and all, against a metadata server, and prints
what it concluded as one JSON object on stdout (cloud-init's debug log goes to stderr).

stdin: {"platform": ..., "url": <metadata URL>, "work": <temp dir>, "iface": <VM interface>}

"platform" is what DMI would have told cloud-init ("aws" when the SMBIOS uuid starts with ec2,
"unknown" otherwise). Everything cloud-init writes goes under "work". "iface" is the VM's network
interface; its MAC is read from the namespace's own /sys, as on a real guest. Nothing here enables
a cloud-init service or touches the system's cloud-init state.
"""

import json
import sys
from unittest import mock

import guest
from cloudinit import net, util
from cloudinit.sources import DataSourceEc2 as ec2_module


def main():
    args = guest.args()
    platform, url, workdir, iface = args["platform"], args["url"], args["work"], args["iface"]
    guest.debug_log()
    with open(f"/sys/class/net/{iface}/address", encoding="ascii") as f:
        mac = f.read().strip()

    paths, distro = guest.debian(workdir)
    sys_cfg = {
        "datasource": {
            "Ec2": {"metadata_urls": [url], "max_wait": 6, "timeout": 2}
        }
    }
    # The VM namespace has no resolver: skip cloud-init's probe for DNS hijacking, which would
    # look up names that cannot resolve (the metadata URL is an address and needs no lookup).
    util._DNS_REDIRECT_IP = set()

    with mock.patch.object(
        ec2_module, "identify_platform", return_value=platform
    ), mock.patch.object(
        net, "get_interfaces_by_mac", return_value={mac: iface}
    ), mock.patch.object(
        net, "find_fallback_nic", return_value=iface
    ):
        ds = ec2_module.DataSourceEc2(sys_cfg, distro, paths)
        found = ds.get_data()
        out = {**guest.which_cloud_init(), "get_data": bool(found), "cloud_name": ds.cloud_name}
        if found:
            fqdn = ds.get_hostname(fqdn=True)
            out.update(guest.facts(ds))
            raw = out["userdata_raw"]
            out.update(
                {
                    "fqdn": getattr(fqdn, "hostname", fqdn),
                    "userdata": util.load_yaml(raw) if raw else None,
                    "availability_zone": ds.availability_zone,
                    "region": ds.region,
                    "launch_index": ds.launch_index,
                    "network_config": ds.network_config,
                    "api_version": ds._crawled_metadata.get(
                        "_metadata_api_version"
                    ),
                    "metadata": ds.metadata,
                    "identity": ds.identity,
                    "mac": mac,
                }
            )
    json.dump(out, sys.stdout, default=str)


if __name__ == "__main__":
    main()
