/* The decisions the BPF programs make, as plain functions of plain data so that the same
 * code is compiled into the kernel programs and into the host-side unit tests
 * (src/bpf/logic_test.c). No helpers, no maps, no kernel types here. */
#ifndef PORTCULLIS_FENCE_LOGIC_H
#define PORTCULLIS_FENCE_LOGIC_H

#include "fence.h"

#ifndef FENCE_INLINE
#define FENCE_INLINE static inline __attribute__((always_inline))
#endif

/* Whether `ports` (the entry of the longest matching prefix, or NULL) lets `port` through. */
FENCE_INLINE int fence_ports_allow(const struct fence_ports *ports, __u16 port)
{
	if (!ports)
		return 0;
	if (ports->count == 0)
		return 1;
	for (int i = 0; i < FENCE_MAX_PORT_RANGES; i++) {
		if (i >= ports->count)
			break;
		if (port >= ports->lo[i] && port <= ports->hi[i])
			return 1;
	}
	return 0;
}

/* The verdict on a connect or datagram: 1 lets it through, 0 denies it. *report is set when
 * the ringfence did not allow it (denied, or let through only because it reports). */
FENCE_INLINE int fence_net_verdict(const struct fence_tag *tag, const struct fence_profile *profile,
				   const struct fence_ports *match, __u16 port, int *report)
{
	*report = 0;
	if (!tag || !profile || !(profile->flags & FENCE_NET_RESTRICTED))
		return 1;
	if (fence_ports_allow(match, port))
		return 1;
	*report = 1;
	return (tag->flags & FENCE_ENFORCE) ? 0 : 1;
}

/* Fill an LPM key for `id` and a 16-byte address. */
FENCE_INLINE void fence_net_key_v6(struct fence_net_key *key, __u32 id, const __u8 *addr)
{
	key->prefixlen = 32 + 128;
	key->id = id;
	for (int i = 0; i < 16; i++)
		key->addr[i] = addr[i];
}

/* Fill an LPM key for `id` and an IPv4 address in network byte order (as the kernel keeps
 * it), mapped into IPv6. */
FENCE_INLINE void fence_net_key_v4(struct fence_net_key *key, __u32 id, __u32 addr_be)
{
	const __u8 *b = (const __u8 *)&addr_be;
	key->prefixlen = 32 + 128;
	key->id = id;
	for (int i = 0; i < 10; i++)
		key->addr[i] = 0;
	key->addr[10] = 0xff;
	key->addr[11] = 0xff;
	key->addr[12] = b[0];
	key->addr[13] = b[1];
	key->addr[14] = b[2];
	key->addr[15] = b[3];
}

/* Whether a fork creates a new process (threads share their parent's tag by tgid). */
FENCE_INLINE int fence_fork_is_process(__u32 parent_tgid, __u32 child_tgid)
{
	return parent_tgid != child_tgid;
}

/* Whether an exiting task is the last of its thread group, so its tag can go: the leader
 * may exit before its threads, which keep running ringfenced. */
FENCE_INLINE int fence_group_dead(int live)
{
	return live <= 0;
}

/* The tag an exec gives: a tagged process keeps its tag whatever it runs (the ringfence
 * covers the whole tree), an untagged one takes the tag of the executable, if any. */
FENCE_INLINE const struct fence_tag *fence_exec_tag(const struct fence_tag *current, const struct fence_tag *of_exe)
{
	return current ? current : of_exe;
}

/* The kernel's s_dev from major and minor numbers (stat's st_dev is encoded differently). */
FENCE_INLINE __u64 fence_kernel_dev(__u32 major, __u32 minor)
{
	return ((__u64)major << 20) | minor;
}

#endif
