"""Runs cloud-init's own CloudStack datasource, discovery of its server and password client
included, and prints what it concluded as one JSON object on stdout (cloud-init's debug log goes
to stderr). Meant to run inside a VM's network namespace, in a mount namespace whose
/etc/resolv.conf and lease directories the caller has bound (see test/cloudstack-netns.test.ts).

stdin: {"work": <temp dir>}
"""

import json
import sys

import guest
from cloudinit.sources import DataSourceCloudStack as cs_module


def main():
    args = guest.args()
    guest.debug_log()
    paths, distro = guest.debian(args["work"])
    sys_cfg = {"datasource": {"CloudStack": {"max_wait": 20, "timeout": 5}}}
    ds = cs_module.DataSourceCloudStack(sys_cfg, distro, paths)
    found = ds.get_data()
    out = {**guest.which_cloud_init(), "vr_addr": ds.vr_addr, "get_data": bool(found)}
    if found:
        out.update(guest.facts(ds))
        out.update(
            {
                "availability_zone": ds.availability_zone,
                "config": ds.get_config_obj(),
                "metadata": ds.metadata,
            }
        )
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
