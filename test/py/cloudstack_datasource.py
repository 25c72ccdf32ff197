"""Runs cloud-init's own CloudStack datasource, discovery of its server and password client
included, and prints what it concluded as one JSON object on stdout (cloud-init's debug log goes
to stderr). Meant to run inside a VM's network namespace, in a mount namespace whose
/etc/resolv.conf and lease directories the caller has bound (see test/cloudstack-netns.test.ts).

stdin: {"work": <temp dir>}
"""

import json
import logging
import os
import sys

from cloudinit import distros, helpers, version
from cloudinit.sources import DataSourceCloudStack as cs_module


def main():
    args = json.load(sys.stdin)
    workdir = args["work"]
    # force: importing cloudinit already gave the root logger a handler.
    logging.basicConfig(stream=sys.stderr, level=logging.DEBUG, force=True)
    paths = helpers.Paths(
        {
            "cloud_dir": os.path.join(workdir, "cloud"),
            "run_dir": os.path.join(workdir, "run"),
            "templates_dir": os.path.join(workdir, "templates"),
        }
    )
    distro = distros.fetch("debian")("debian", {}, paths)
    sys_cfg = {"datasource": {"CloudStack": {"max_wait": 20, "timeout": 5}}}
    ds = cs_module.DataSourceCloudStack(sys_cfg, distro, paths)
    found = ds.get_data()
    out = {"cloud_init_version": version.version_string(), "vr_addr": ds.vr_addr, "get_data": bool(found)}
    if found:
        host = ds.get_hostname()
        raw = ds.get_userdata_raw()
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8")
        out.update(
            {
                "instance_id": ds.get_instance_id(),
                "hostname": getattr(host, "hostname", host),
                "public_keys": ds.get_public_ssh_keys(),
                "availability_zone": ds.availability_zone,
                "userdata_raw": raw,
                "config": ds.get_config_obj(),
                "metadata": ds.metadata,
            }
        )
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
