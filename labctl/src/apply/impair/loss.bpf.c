// SPDX-License-Identifier: GPL-2.0
//
// Seeded packet loss of labctl (labctl/src/apply/impair/loss.rs loads it).
//
// Attached at the ingress (tcx) of the end that RECEIVES an impaired end's
// packets: a packet dropped here was sent, so the sender's stack cannot
// retry it away as it would a drop in its own qdisc.
//
// Deterministic: the n-th IP packet since the state was last written is
// dropped when mix(seed, n) falls below ppm (parts per million). Which n
// a packet gets may depend on timing, but how many of the first N packets
// are dropped depends only on seed, ppm and N: a run that sends a fixed
// count loses exactly the same number every time. Only unicast IP counts:
// ARP, IPv6 neighbour discovery and multicast or broadcast frames (MLD and
// IGMP reports, routing hellos) pass, uncounted: losing them only delays,
// and their number varies from run to run, which would shift the count.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL";

struct loss_state {
	__u64 seed;
	__u32 ppm;     // 0: pass everything
	__u32 pad;
	__u64 seen;    // IP packets counted since the state was written
	__u64 dropped;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct loss_state);
} loss SEC(".maps");

// splitmix64's finaliser: every bit of the input moves every bit of the output.
static __always_inline __u64 mix(__u64 x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

// ICMPv6 router/neighbour solicitations and advertisements, redirects.
static __always_inline int is_neighbour_discovery(struct __sk_buff *skb)
{
	__u8 next = 0, type = 0;
	if (bpf_skb_load_bytes(skb, ETH_HLEN + 6, &next, 1) < 0 || next != 58)
		return 0;
	if (bpf_skb_load_bytes(skb, ETH_HLEN + 40, &type, 1) < 0)
		return 0;
	return type >= 133 && type <= 137;
}

SEC("classifier")
int loss_ingress(struct __sk_buff *skb)
{
	__u32 key = 0;
	struct loss_state *s = bpf_map_lookup_elem(&loss, &key);
	if (!s || s->ppm == 0)
		return TC_ACT_OK;
	__u8 dst0 = 0;
	if (bpf_skb_load_bytes(skb, 0, &dst0, 1) < 0 || (dst0 & 1))
		return TC_ACT_OK; // group address: multicast or broadcast
	if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		if (is_neighbour_discovery(skb))
			return TC_ACT_OK;
	} else if (skb->protocol != bpf_htons(ETH_P_IP)) {
		return TC_ACT_OK;
	}
	__u64 n = __sync_fetch_and_add(&s->seen, 1);
	if (mix(s->seed ^ mix(n + 1)) % 1000000 < s->ppm) {
		__sync_fetch_and_add(&s->dropped, 1);
		return TC_ACT_SHOT;
	}
	return TC_ACT_OK;
}
