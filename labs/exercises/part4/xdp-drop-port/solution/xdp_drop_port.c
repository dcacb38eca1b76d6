// SPDX-License-Identifier: GPL-2.0
//
// Exercise part4/xdp-drop-port, solved: UDP packets to port 9 are
// dropped (XDP_DROP) and everything else passes.
//
// Keep the `actions` map and return through count(): the grader reads
// it to see what your program did with each packet.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define DISCARD_PORT 9

// One counter per XDP action (XDP_ABORTED = 0 ... XDP_REDIRECT = 4), per CPU.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XDP_REDIRECT + 1);
	__type(key, __u32);
	__type(value, __u64);
} actions SEC(".maps");

static __always_inline int count(__u32 action)
{
	__u64 *n = bpf_map_lookup_elem(&actions, &action);

	if (n)
		*n += 1;
	return action;
}

SEC("xdp")
int xdp_drop_port(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return count(XDP_PASS);

	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		struct udphdr *udp;

		if ((void *)(ip + 1) > data_end || ip->ihl < 5)
			return count(XDP_PASS);
		if (ip->protocol != IPPROTO_UDP)
			return count(XDP_PASS);
		udp = (void *)ip + ip->ihl * 4;
		if ((void *)(udp + 1) > data_end)
			return count(XDP_PASS);
		if (udp->dest == bpf_htons(DISCARD_PORT))
			return count(XDP_DROP);
	}

	return count(XDP_PASS);
}

char LICENSE[] SEC("license") = "GPL";
