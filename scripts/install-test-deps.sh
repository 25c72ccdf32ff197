#!/usr/bin/env bash
# Installs the Debian packages the test suite drives for real: dnsmasq, cloud-init and
# amazon-ec2-utils (as clients only: their services are never enabled), a DHCP client, iproute2
# for network namespaces, nftables (its bridge rules stand in for libvirt's clean-traffic nwfilter),
# shellcheck and systemd-analyze, logrotate (to run the shipped snippet), and virsh
# (libvirt-clients, whose test driver stands in for a libvirt host in the sync test),
# prometheus_client (its text-format parser reads /metrics as Prometheus does), and PostgreSQL
# (the shared store: the tests run their own server in a temporary directory and never use the
# packaged one). Needs root.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends \
  dnsmasq-base cloud-init amazon-ec2-utils busybox isc-dhcp-client iproute2 nftables curl wget procps shellcheck systemd \
  libvirt-clients python3 logrotate python3-prometheus-client postgresql
