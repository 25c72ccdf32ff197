# Reads NoCloud documents the way cloud-init does and prints what it understood, as JSON.
# stdin: {"meta-data": text, "network-config": text}
import json
import sys

from cloudinit import util
from cloudinit.net import network_state

docs = json.load(sys.stdin)
md = util.load_yaml(docs["meta-data"])
net = util.load_yaml(docs["network-config"])
state = network_state.parse_net_config_data(net)
out = {
    "meta-data": md,
    "network-config": net,
    "interfaces": [
        {
            "name": i.get("name"),
            "mac": i.get("mac_address"),
            "subnets": i.get("subnets"),
        }
        for i in state.iter_interfaces()
    ],
    "nameservers": state.dns_nameservers,
}
print(json.dumps(out, default=str))
