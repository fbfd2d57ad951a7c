/* Shared by the BPF programs, the host-compiled logic tests and the Rust loader (src/lib.rs:
 * the skeleton's generated types, and parse_event for fence_event). Every struct here is a map key, a map value or a ring buffer record:
 * change one and change its Rust twin in the same commit. */
#ifndef PORTCULLIS_FENCE_H
#define PORTCULLIS_FENCE_H

#include <linux/types.h>

#define FENCE_MAX_PORT_RANGES 16

/* fence_tag.flags */
#define FENCE_ENFORCE 1u /* deny; without it, report what would have been denied */

/* fence_profile.flags */
#define FENCE_NET_RESTRICTED 1u /* connects and datagrams only to allowed addresses */

/* fence_event.op */
#define FENCE_OP_CONNECT 1
#define FENCE_OP_SENDMSG 2

/* A ringfenced process, by thread-group id: which ringfence (an id the agent gives each
 * policy/profile pair) and whether it is enforced. */
struct fence_tag {
	__u32 id;
	__u32 flags;
};

/* An executable, as the kernel names its file: s_dev (major << 20 | minor) and inode. */
struct fence_exe {
	__u64 dev;
	__u64 ino;
};

/* What a ringfence limits in the kernel. */
struct fence_profile {
	__u32 flags;
};

/* LPM trie key: prefixlen counts the 32 bits of id, then the address bits. IPv4 addresses
 * are stored IPv4-mapped (::ffff:a.b.c.d) so that one trie serves both families. */
struct fence_net_key {
	__u32 prefixlen;
	__u32 id;
	__u8 addr[16];
};

/* Allowed ports for one prefix; count == 0 means every port. */
struct fence_ports {
	__u16 count;
	__u16 lo[FENCE_MAX_PORT_RANGES];
	__u16 hi[FENCE_MAX_PORT_RANGES];
};

/* A file a ringfence denied, remembered for the LSM file_open program. */
struct fence_file {
	__u32 id;
	__u32 pad;
	__u64 dev;
	__u64 ino;
};

/* One denial (or would-be denial), sent to the agent through the ring buffer. */
struct fence_event {
	__u32 tgid;
	__u32 id;
	__u32 flags; /* the tag's flags: FENCE_ENFORCE when it was denied */
	__u16 op;
	__u16 family; /* AF_INET or AF_INET6 */
	__u32 protocol;
	__u16 port;
	__u16 pad;
	__u8 addr[16];
	char comm[16];
};

#endif
