#!/usr/bin/env bash
# labctl bench's reference: the same N-host star labctl builds, with one
# iproute2 command per object, as hand-written lab scripts do.
#
#   ip-star.sh up N [PREFIX]     namespaces PREFIX-h1..N, each with eth0 on bridge br0 of PREFIX-sw
#   ip-star.sh down N [PREFIX]
#
# Host i gets 198.18.(i/250).(i%250+1)/15 (RFC 2544 range). Run it inside a
# throwaway namespace (labctl bench does): nothing is left in the caller's.
set -euo pipefail

usage() { echo "usage: $0 up|down N [PREFIX]" >&2; exit 2; }
[ $# -ge 2 ] || usage
action=$1 hosts=$2 prefix=${3:-ipstar}
switch="$prefix-sw"

host_up() {
    local i=$1 ns="$prefix-h$1"
    ip netns add "$ns"
    ip link add eth0 netns "$ns" type veth peer name "p$i" netns "$switch"
    ip -n "$switch" link set "p$i" master br0 up
    ip -n "$ns" addr add "198.18.$((i / 250)).$((i % 250 + 1))/15" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
}

star_up() {
    ip netns add "$switch"
    ip -n "$switch" link add br0 type bridge
    ip -n "$switch" link set br0 up
    for ((i = 1; i <= hosts; i++)); do host_up "$i"; done
}

star_down() {
    for ((i = 1; i <= hosts; i++)); do ip netns del "$prefix-h$i"; done
    ip netns del "$switch"
}

case $action in
    up) star_up ;;
    down) star_down ;;
    *) usage ;;
esac
