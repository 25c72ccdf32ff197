# Runs one of cloud-init's own datasources (as Debian installs it) against the metadata service
# at 169.254.169.254, from inside a VM network namespace, and prints what it found as JSON.
#
# stdin: {"kind": "openstack" | "nocloud", "dmi": <fake /sys/class/dmi/id>, "work": <temp dir>}
#
# The guest's DMI data comes from the fake directory (built from the domain's <sysinfo>); the
# container check is turned off, since a test runs in one but plays a KVM guest. Everything else
# (detection, the HTTP crawl, parsing, network config conversion) is cloud-init's own code.
import json

import guest
from cloudinit import util
from cloudinit.net import eni, network_state

args = guest.args()
guest.kvm_guest(args["dmi"])
# A guest kernel command line without any ds= hint: the DMI data alone must select the source.
util.get_cmdline = lambda: "BOOT_IMAGE=/vmlinuz root=/dev/vda1 ro"
paths, distro = guest.debian(args["work"])
URL = "http://169.254.169.254"


def render_eni(net_cfg):
    """The /etc/network/interfaces text cloud-init would write for a network config."""
    if not net_cfg:
        return None
    state = network_state.parse_net_config_data(net_cfg)
    return eni.Renderer()._render_interfaces(state)


if args["kind"] == "openstack":
    from cloudinit.sources.DataSourceOpenStack import DataSourceOpenStack, detect_openstack

    sys_cfg = {
        "datasource_list": ["OpenStack"],
        "datasource": {"OpenStack": {"metadata_urls": [URL], "max_wait": 10, "timeout": 5, "retries": 1}},
    }
    ds = DataSourceOpenStack(sys_cfg, distro, paths)
    detected = detect_openstack()
else:
    from cloudinit.sources.DataSourceNoCloud import DataSourceNoCloudNet

    # No seed directory and no cidata disk here: the DMI serial is the only way in.
    sys_cfg = {"datasource_list": ["NoCloudNet"], "datasource": {"NoCloud": {"fs_label": None}}}
    ds = DataSourceNoCloudNet(sys_cfg, distro, paths)
    detected = None

found = ds.get_data()
out = {"detected": detected, "found": found}
if found:
    out.update(
        {
            "datasource": str(ds),
            "instance_id": ds.get_instance_id(),
            "hostname": ds.get_hostname().hostname,
            "public_keys": ds.get_public_ssh_keys(),
            "userdata": util.decode_binary(ds.get_userdata_raw() or b""),
            "vendordata": ds.vendordata_raw if isinstance(ds.vendordata_raw, (str, type(None))) else util.decode_binary(ds.vendordata_raw),
            "metadata": ds.metadata,
            "availability_zone": ds.availability_zone,
            "check_instance_id": ds.check_instance_id(sys_cfg),
            "network_config": ds.network_config,
            "eni": render_eni(ds.network_config),
        }
    )
    if args["kind"] == "openstack":
        out["ec2_metadata_keys"] = sorted((ds.ec2_metadata or {}).keys())
    else:
        # cloud-init 22.x reads network-config from a local seed only (24.3 and later fetch it
        # from the seed URL too); read it as they would and convert it with cloud-init's code.
        from cloudinit import url_helper

        seed = ds.metadata.get("seedfrom", "")
        resp = url_helper.readurl(seed + "network-config", timeout=5, retries=1)
        net_cfg = util.load_yaml(util.decode_binary(resp.contents))
        out["seed_network_config"] = net_cfg
        out["seed_eni"] = render_eni(net_cfg)
print(json.dumps(out, default=repr))
