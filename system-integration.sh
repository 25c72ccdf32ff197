#!/bin/bash
# Installs mdserver's host integration: the configuration, the upload token, the user-data
# directory, the systemd units, the libvirt hook, /etc/default/mdserver and the logrotate snippet,
# and creates the mdserver user. The mdserver
# command itself comes from npm (see doc/setup.md).
#
# Safe to run again: files that belong to mdserver (units, hook, the sample) are replaced only
# when they differ, and the configuration files an administrator edits (mdserver.conf,
# /etc/default/mdserver) and the upload token are installed only when they do not exist yet.
#
# Environment:
#   PREFIX=DIR        stage the installation under DIR (for packaging or tests); nothing outside
#                     DIR is touched: no user is created and no ownership is changed
#   MDS_USER=NAME     the service user (default mdserver; md_server's MDS_DNSMASQ_USER also works)
#   MDS_SKIP_USER=1   do not create the user, nor set group ownership
#   MDSERVER_BIN=PATH the mdserver command the unit runs (default: the one on PATH, else
#                     /usr/local/bin/mdserver, where `npm install -g` puts it)
#   MDSERVER_URL=URL  written to /etc/default/mdserver for the hook (default http://169.254.169.254)
#   MDSERVER_SOCKET=PATH  likewise, mdserver's admin socket (default /run/mdserver/admin.sock;
#                     empty: the hook uses HTTP only)

set -euo pipefail

src=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
prefix=${PREFIX:-}
user=${MDS_USER:-${MDS_DNSMASQ_USER:-mdserver}}
data_dir=/var/lib/mdserver
url=${MDSERVER_URL:-http://169.254.169.254}
socket=${MDSERVER_SOCKET-/run/mdserver/admin.sock}
token_file=/etc/mdserver/upload-token
bin=${MDSERVER_BIN:-$(command -v mdserver || echo /usr/local/bin/mdserver)}

manage_user=yes
if [ -n "$prefix" ] || [ -n "${MDS_SKIP_USER:-}" ]; then
    manage_user=no
fi

say() {
    printf '%-10s %s\n' "$1" "$2"
}

# Group ownership for files the service reads; only when this run manages the user.
group_opts=()
set_group_opts() {
    group_opts=()
    if [ "$manage_user" = yes ]; then
        group_opts=(-g "$user")
    fi
}

# put MODE SOURCE DEST: install SOURCE as DEST unless DEST already has the same content.
put() {
    local mode=$1 from=$2 to=$3
    if [ -f "$to" ] && cmp -s "$from" "$to"; then
        say unchanged "$to"
        return
    fi
    install -m "$mode" "${group_opts[@]}" "$from" "$to"
    say installed "$to"
}

# put_once MODE SOURCE DEST: install SOURCE as DEST only when DEST does not exist yet.
put_once() {
    local mode=$1 from=$2 to=$3
    if [ -e "$to" ]; then
        say kept "$to (exists; not overwritten)"
        return
    fi
    install -m "$mode" "${group_opts[@]}" "$from" "$to"
    say installed "$to"
}

dir() {
    local mode=$1 path=$2
    shift 2
    install -d -m "$mode" "$@" "$path"
}

# The user first, so that files can be given its group.
if [ "$manage_user" = yes ]; then
    if getent passwd "$user" > /dev/null; then
        say unchanged "user $user"
    else
        useradd --system --user-group --home-dir "$data_dir" --no-create-home \
            --shell /usr/sbin/nologin --comment "mdserver metadata server" "$user"
        say created "user $user"
    fi
fi
set_group_opts

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Configuration: readable by the service's group only (templates may hold secrets).
dir 0750 "$prefix/etc/mdserver" "${group_opts[@]}"
dir 0750 "$prefix/etc/mdserver/userdata" "${group_opts[@]}"
# Shared templates that a domain's userdata_prefix names ([mdserver] userdata_prefix_dir).
dir 0750 "$prefix/etc/mdserver/userdata/prefixes" "${group_opts[@]}"
dir 0750 "$prefix/etc/mdserver/mdserver.conf.d" "${group_opts[@]}"
put 0640 "$src/mdserver.conf.sample" "$prefix/etc/mdserver/mdserver.conf.sample"

# The upload token: once the configuration names it, uploads over HTTP must carry it, so that
# other local users cannot rewrite VMs' records. Root (the hook) and the service's group (mdserver
# reads it at start and at each reload) may read it, no one else; an existing one is kept.
if [ -e "$prefix$token_file" ]; then
    say kept "$prefix$token_file (exists; not overwritten)"
else
    od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > "$tmp/token"
    install -m 0640 "${group_opts[@]}" "$tmp/token" "$prefix$token_file"
    say created "$prefix$token_file"
fi

# A new configuration names the token; an existing one is left as it is, but told about it.
conf=$prefix/etc/mdserver/mdserver.conf
if [ ! -e "$conf" ]; then
    sed "s#^\# upload_token_file =\$#upload_token_file = $token_file#" "$src/mdserver.conf.sample" > "$tmp/mdserver.conf"
    put_once 0640 "$tmp/mdserver.conf" "$conf"
else
    say kept "$conf (exists; not overwritten)"
    if ! cat "$conf" "$prefix"/etc/mdserver/mdserver.conf.d/*.conf 2> /dev/null |
        grep -Eq '^[[:space:]]*upload_token_file[[:space:]]*=[[:space:]]*[^[:space:]]'; then
        say warning "$conf sets no upload_token_file: every local user can upload domains over HTTP; add 'upload_token_file = $token_file' under [mdserver] and run mdserver reload"
    fi
fi

# The hook's settings. It sends the upload token from MDSERVER_TOKEN_FILE, by default the file
# created above.
cat > "$tmp/default" <<EOF
# Settings for mdserver's libvirt hook (/etc/libvirt/hooks/qemu.d/mdserver).
# mdserver's admin socket ([mdserver] admin_socket): the hook uploads through it first, where
# nothing the VMs do to the metadata port can get in the way; empty for HTTP only.
MDSERVER_SOCKET=$socket
# Where mdserver listens: [mdserver] listen_address and port in /etc/mdserver/mdserver.conf.
# The hook uploads there when the socket is not set or does not answer.
MDSERVER_URL=$url
# Seconds to wait for the connection, and for the whole upload; a VM's start waits at most this.
MDSERVER_CONNECT_TIMEOUT=2
MDSERVER_MAX_TIME=5
EOF
dir 0755 "$prefix/etc/default"
group_opts=()
put_once 0644 "$tmp/default" "$prefix/etc/default/mdserver"
if ! grep -q '^MDSERVER_SOCKET=' "$prefix/etc/default/mdserver"; then
    say note "$prefix/etc/default/mdserver has no MDSERVER_SOCKET: the hook uploads over HTTP only; add MDSERVER_SOCKET=/run/mdserver/admin.sock to use the admin socket first"
fi

# The libvirt hook, in qemu.d (libvirt 6.5 and later) so that it runs beside any other qemu hook.
dir 0755 "$prefix/etc/libvirt/hooks/qemu.d"
put 0755 "$src/hooks/qemu" "$prefix/etc/libvirt/hooks/qemu.d/mdserver"
if [ -f "$prefix/etc/libvirt/hooks/qemu" ] && grep -q 'instance-upload' "$prefix/etc/libvirt/hooks/qemu"; then
    say warning "$prefix/etc/libvirt/hooks/qemu looks like md_server's hook: remove it, or every VM is uploaded twice"
fi

# The systemd units, running the mdserver command this host has.
dir 0755 "$prefix/etc/systemd/system"
for unit in mdserver.service mdserver-dnsmasq.service; do
    sed -e "s#^ExecStart=/usr/local/bin/mdserver #ExecStart=$bin #" \
        -e "s#^ExecStartPre=+/usr/local/bin/mdserver #ExecStartPre=+$bin #" "$src/systemd/$unit" > "$tmp/$unit"
    put 0644 "$tmp/$unit" "$prefix/etc/systemd/system/$unit"
done

# What an earlier setup may have left that would start dnsmasq, as root, from a configuration file
# the mdserver account can write: md_server's path unit, and drop-ins naming a --conf-file (which
# earlier versions of doc/setup.md suggested for a changed net_name or base_dir).
if [ -f "$prefix/etc/systemd/system/mdserver-dnsmasq.path" ]; then
    say warning "$prefix/etc/systemd/system/mdserver-dnsmasq.path is md_server's: remove it (systemctl disable --now mdserver-dnsmasq.path); mdserver tells systemd when it is ready"
fi
for dropin in "$prefix"/etc/systemd/system/mdserver-dnsmasq.service.d/*.conf; do
    if [ -f "$dropin" ] && grep -q -e '--conf-file' -e '-C ' "$dropin"; then
        say warning "$dropin starts dnsmasq with a configuration file of its own: remove its ExecStartPre= and ExecStart= lines (the unit has root write dnsmasq's configuration at each start)"
    fi
done

# logrotate: the service user rotates its own logfile, and mdserver reopens it on SIGUSR1.
dir 0755 "$prefix/etc/logrotate.d"
sed "s/^\( *su \)mdserver mdserver\$/\1$user $user/" "$src/systemd/mdserver.logrotate" > "$tmp/logrotate"
put 0644 "$tmp/logrotate" "$prefix/etc/logrotate.d/mdserver"

# State: systemd's StateDirectory= would create it too, but dnsmasq's files live below it and an
# admin may want to run mdserver by hand first.
set_group_opts
owner_opts=()
if [ "$manage_user" = yes ]; then
    owner_opts=(-o "$user" -g "$user")
fi
dir 0755 "$prefix$data_dir" "${owner_opts[@]}"
dir 0755 "$prefix$data_dir/dnsmasq" "${owner_opts[@]}"
dir 0750 "$prefix/var/log/mdserver" "${owner_opts[@]}"

if [ -z "$prefix" ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    say reloaded "systemd units"
fi

cat <<EOF

Next steps (doc/setup.md has the details):
  1. edit $prefix/etc/mdserver/mdserver.conf (at least [public-keys]); check it with
       $bin --check-config /etc/mdserver/mdserver.conf
  2. define and start the libvirt network: virsh net-define $src/doc/mds-network.xml;
       virsh net-autostart mds; virsh net-start mds
  3. restart libvirtd (or virtqemud) once so that it sees the new hook
  4. systemctl enable --now mdserver.service mdserver-dnsmasq.service
  5. for VMs that already exist: mdserver sync
EOF
