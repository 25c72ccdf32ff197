"""What every driver of a cloud-init datasource in this directory sets up the same way: its
arguments, cloud-init's debug log on stderr, a Debian distro whose state lives in a scratch
directory, a guest's DMI data, and the facts read back from a datasource that found its data.

Only the setup is shared: each driver still calls cloud-init's own datasource class itself.
"""

import json
import logging
import os
import sys

import cloudinit
from cloudinit import distros, helpers, util, version


def args():
    """The JSON object the test wrote on stdin."""
    return json.load(sys.stdin)


def debug_log():
    """cloud-init's debug log on stderr (the test shows it when something fails)."""
    # force: importing cloudinit may already have given the root logger a handler.
    logging.basicConfig(stream=sys.stderr, level=logging.DEBUG, force=True)


def debian(work):
    """cloud-init's Paths under `work` and a Debian distro on them: nothing of the system's own
    cloud-init state is read or written."""
    paths = helpers.Paths(
        {
            "cloud_dir": os.path.join(work, "cloud"),
            "run_dir": os.path.join(work, "run"),
            "templates_dir": os.path.join(work, "templates"),
        }
    )
    return paths, distros.fetch("debian")("debian", {}, paths)


def kvm_guest(dmi_dir):
    """DMI data from a fake /sys/class/dmi/id, and no container: the test runs in one but plays a
    KVM guest."""
    from cloudinit import dmi

    dmi.DMI_SYS_PATH = dmi_dir
    dmi.is_container = lambda: False
    util.is_container = lambda: False


def which_cloud_init():
    """The version that ran, and where it was imported from (Debian's, or another on PYTHONPATH)."""
    return {
        "cloud_init_version": version.version_string(),
        "cloud_init_path": os.path.dirname(cloudinit.__file__),
    }


def text(raw):
    """User-data as text (cloud-init keeps it as bytes or str, depending on the version)."""
    if isinstance(raw, bytes):
        return raw.decode("utf-8")
    return raw


def facts(ds):
    """What a datasource that found its data says about the instance."""
    host = ds.get_hostname()
    return {
        "instance_id": ds.get_instance_id(),
        # 22.4 and later return a (hostname, is_default) tuple.
        "hostname": getattr(host, "hostname", host),
        "public_keys": ds.get_public_ssh_keys(),
        "userdata_raw": text(ds.get_userdata_raw()),
    }
