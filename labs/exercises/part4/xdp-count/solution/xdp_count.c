// SPDX-License-Identifier: GPL-2.0
//
// Exercise part4/xdp-count, solved: this XDP program counts
// every packet by its IP protocol number in the `packets` map (key: the
// protocol, 1 ICMP, 6 TCP, 17 UDP; 255 for frames that are not IPv4) and
// lets every packet pass.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define NOT_IP 255

// Protocol number -> packets, one copy per CPU (labctl sums them).
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u64);
} packets SEC(".maps");

SEC("xdp")
int xdp_count(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 protocol = NOT_IP;

	struct ethhdr *eth = data;
	__u64 *slot;

	if ((void *)(eth + 1) <= data_end && eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) <= data_end)
			protocol = ip->protocol;
	}
	slot = bpf_map_lookup_elem(&packets, &protocol);
	if (slot)
		*slot += 1;

	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
