# Runs cloud-init's own reporting as its stages do, against the `reporting` configuration of the
# cloud-config it is given (as cloud-init's main applies it: reporting.update_configuration), and
# optionally its phone_home module. Module events are nested under their stage with the names and
# descriptions cloud-init's module runner gives them; a module listed in "fail" raises inside its
# event, as a failing module does.
# stdin: {"cloud_config": text, "stages": {"init-network": ["ssh"], ...}, "fail": ["runcmd"],
#         "phone_home": {"url": ..., "post": "all", "tries": 1} | null}
import json
import logging
import sys

from cloudinit import reporting, util
from cloudinit.config import cc_phone_home
from cloudinit.reporting import events

inp = json.load(sys.stdin)
cfg = util.load_yaml(inp["cloud_config"])
reporting.update_configuration(cfg["reporting"])


class Hostname:
    def __init__(self, name):
        self.hostname = name
        self.is_default = False


class Cloud:
    """What cc_phone_home asks of the cloud object: the instance id and host names."""

    paths = None

    def get_instance_id(self):
        return inp.get("instance_id", "i-unknown")

    def get_hostname(self, fqdn=False, **_kwargs):
        return Hostname("vm.example" if fqdn else "vm")


for stage, modules in inp["stages"].items():
    with events.ReportEventStack(stage, "running 'cloud-init %s'" % stage, reporting_enabled=True) as parent:
        for name in modules:
            run_name = "config-%s" % name
            try:
                with events.ReportEventStack(run_name, "running %s with frequency once-per-instance" % run_name, parent=parent) as rep:
                    if name in inp.get("fail", []):
                        raise RuntimeError("%s was made to fail" % name)
                    if name == "phone_home" and inp.get("phone_home"):
                        cc_phone_home.handle("phone_home", {"phone_home": inp["phone_home"]}, Cloud(), logging.getLogger(), [])
                    rep.message = "%s ran successfully" % run_name
            except RuntimeError:
                pass
    reporting.flush_events()
print(json.dumps({"ok": True}))
