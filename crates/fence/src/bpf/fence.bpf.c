// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/* Portcullis ringfence programs.
 *
 * Tagging (always): exec, fork and exit tracepoints keep `tags` (tgid -> ringfence) in step
 * with the process tree. Network (fallback): cgroup connect4/6 and sendmsg4/6 deny tagged
 * processes' connects and datagrams outside their allow-list. BPF LSM (where the kernel
 * accepts it, chosen by the agent's probe): bprm_check_security tags, socket_connect and
 * socket_sendmsg judge the network, file_open denies files the agent found denied.
 *
 * Kernel types are declared here with only the fields used, marked preserve_access_index:
 * libbpf relocates the offsets against the running kernel's BTF (CO-RE), so no vmlinux.h
 * is generated or committed. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "fence_logic.h"

#define AF_INET 2
#define AF_INET6 10
#define EPERM 1

struct super_block {
	__u32 s_dev;
} __attribute__((preserve_access_index));

struct inode {
	unsigned long i_ino;
	struct super_block *i_sb;
} __attribute__((preserve_access_index));

struct file {
	struct inode *f_inode;
} __attribute__((preserve_access_index));

struct linux_binprm {
	struct file *file;
} __attribute__((preserve_access_index));

struct signal_struct {
	struct {
		int counter;
	} live;
} __attribute__((preserve_access_index));

struct task_struct {
	int pid;
	int tgid;
	struct signal_struct *signal;
} __attribute__((preserve_access_index));

struct socket;
struct sockaddr;

struct msghdr {
	void *msg_name;
	int msg_namelen;
} __attribute__((preserve_access_index));

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct fence_tag);
} tags SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct fence_exe);
	__type(value, struct fence_tag);
} exes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct fence_profile);
} profiles SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct fence_net_key);
	__type(value, struct fence_ports);
} net_allow SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct fence_file);
	__type(value, __u8);
} denied_files SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

static __always_inline void exe_of(struct file *file, struct fence_exe *exe)
{
	exe->dev = BPF_CORE_READ(file, f_inode, i_sb, s_dev);
	exe->ino = BPF_CORE_READ(file, f_inode, i_ino);
}

static __always_inline void tag_exec(__u32 tgid, struct file *file)
{
	struct fence_exe exe = {};
	exe_of(file, &exe);
	const struct fence_tag *current = bpf_map_lookup_elem(&tags, &tgid);
	const struct fence_tag *of_exe = bpf_map_lookup_elem(&exes, &exe);
	const struct fence_tag *tag = fence_exec_tag(current, of_exe);
	if (tag && tag != current) {
		struct fence_tag copy = *tag;
		bpf_map_update_elem(&tags, &tgid, &copy, BPF_ANY);
	}
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(fence_exec, struct task_struct *p, int old_pid, struct linux_binprm *bprm)
{
	tag_exec(BPF_CORE_READ(p, tgid), BPF_CORE_READ(bprm, file));
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(fence_fork, struct task_struct *parent, struct task_struct *child)
{
	__u32 parent_tgid = BPF_CORE_READ(parent, tgid);
	__u32 child_tgid = BPF_CORE_READ(child, tgid);
	if (!fence_fork_is_process(parent_tgid, child_tgid))
		return 0;
	const struct fence_tag *tag = bpf_map_lookup_elem(&tags, &parent_tgid);
	if (tag) {
		struct fence_tag copy = *tag;
		bpf_map_update_elem(&tags, &child_tgid, &copy, BPF_ANY);
	}
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(fence_exit, struct task_struct *p)
{
	if (!fence_group_dead(BPF_CORE_READ(p, signal, live.counter)))
		return 0;
	__u32 tgid = BPF_CORE_READ(p, tgid);
	bpf_map_delete_elem(&tags, &tgid);
	return 0;
}

static __always_inline void report(const struct fence_tag *tag, __u32 tgid, __u16 op, __u16 family,
				   __u32 protocol, __u16 port, const struct fence_net_key *key)
{
	struct fence_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e)
		return;
	e->tgid = tgid;
	e->id = tag->id;
	e->flags = tag->flags;
	e->op = op;
	e->family = family;
	e->protocol = protocol;
	e->port = port;
	e->pad = 0;
	__builtin_memcpy(e->addr, key->addr, 16);
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, 0);
}

/* 1 lets the connect or datagram through, 0 denies it. */
static __always_inline int judge_net(struct fence_net_key *key, __u16 op, __u16 family, __u32 protocol, __u16 port)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	const struct fence_tag *tag = bpf_map_lookup_elem(&tags, &tgid);
	if (!tag)
		return 1;
	const struct fence_profile *profile = bpf_map_lookup_elem(&profiles, &tag->id);
	key->id = tag->id;
	const struct fence_ports *match = bpf_map_lookup_elem(&net_allow, key);
	int should_report = 0;
	int verdict = fence_net_verdict(tag, profile, match, port, &should_report);
	if (should_report)
		report(tag, tgid, op, family, protocol, port, key);
	return verdict;
}

static __always_inline int judge_sock_addr4(struct bpf_sock_addr *ctx, __u16 op)
{
	struct fence_net_key key = {};
	__u32 ip = ctx->user_ip4;
	fence_net_key_v4(&key, 0, ip);
	__u16 port = bpf_ntohs((__u16)ctx->user_port);
	return judge_net(&key, op, AF_INET, ctx->protocol, port);
}

static __always_inline int judge_sock_addr6(struct bpf_sock_addr *ctx, __u16 op)
{
	struct fence_net_key key = {};
	__u32 ip[4];
	ip[0] = ctx->user_ip6[0];
	ip[1] = ctx->user_ip6[1];
	ip[2] = ctx->user_ip6[2];
	ip[3] = ctx->user_ip6[3];
	fence_net_key_v6(&key, 0, (const __u8 *)ip);
	__u16 port = bpf_ntohs((__u16)ctx->user_port);
	return judge_net(&key, op, AF_INET6, ctx->protocol, port);
}

SEC("cgroup/connect4")
int fence_connect4(struct bpf_sock_addr *ctx)
{
	return judge_sock_addr4(ctx, FENCE_OP_CONNECT);
}

SEC("cgroup/connect6")
int fence_connect6(struct bpf_sock_addr *ctx)
{
	return judge_sock_addr6(ctx, FENCE_OP_CONNECT);
}

SEC("cgroup/sendmsg4")
int fence_sendmsg4(struct bpf_sock_addr *ctx)
{
	return judge_sock_addr4(ctx, FENCE_OP_SENDMSG);
}

SEC("cgroup/sendmsg6")
int fence_sendmsg6(struct bpf_sock_addr *ctx)
{
	return judge_sock_addr6(ctx, FENCE_OP_SENDMSG);
}

/* ---- BPF LSM: loaded only where the kernel accepts it (see the agent's probe) ---- */

/* 1 lets it through, 0 denies; reads a sockaddr the kernel copied in. */
static __always_inline int judge_sockaddr(const void *addr, int len, __u16 op, __u32 protocol)
{
	__u16 family = 0;
	if (!addr || len < 2 || bpf_probe_read_kernel(&family, sizeof(family), addr))
		return 1;
	struct fence_net_key key = {};
	__u16 port_be = 0;
	if (family == AF_INET && len >= 8) {
		__u32 ip = 0;
		bpf_probe_read_kernel(&port_be, 2, addr + 2);
		bpf_probe_read_kernel(&ip, 4, addr + 4);
		fence_net_key_v4(&key, 0, ip);
	} else if (family == AF_INET6 && len >= 24) {
		__u8 ip[16];
		bpf_probe_read_kernel(&port_be, 2, addr + 2);
		bpf_probe_read_kernel(ip, 16, addr + 8);
		fence_net_key_v6(&key, 0, ip);
	} else {
		return 1;
	}
	return judge_net(&key, op, family, protocol, bpf_ntohs(port_be));
}

SEC("lsm/bprm_check_security")
int BPF_PROG(fence_lsm_exec, struct linux_binprm *bprm, int ret)
{
	if (ret)
		return ret;
	tag_exec(bpf_get_current_pid_tgid() >> 32, BPF_CORE_READ(bprm, file));
	return 0;
}

SEC("lsm/socket_connect")
int BPF_PROG(fence_lsm_connect, struct socket *sock, struct sockaddr *address, int addrlen, int ret)
{
	if (ret)
		return ret;
	return judge_sockaddr(address, addrlen, FENCE_OP_CONNECT, 0) ? 0 : -EPERM;
}

SEC("lsm/socket_sendmsg")
int BPF_PROG(fence_lsm_sendmsg, struct socket *sock, struct msghdr *msg, int size, int ret)
{
	if (ret)
		return ret;
	void *name = BPF_CORE_READ(msg, msg_name);
	int len = BPF_CORE_READ(msg, msg_namelen);
	if (!name)
		return 0;
	return judge_sockaddr(name, len, FENCE_OP_SENDMSG, 0) ? 0 : -EPERM;
}

SEC("lsm/file_open")
int BPF_PROG(fence_lsm_open, struct file *file, int ret)
{
	if (ret)
		return ret;
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	const struct fence_tag *tag = bpf_map_lookup_elem(&tags, &tgid);
	if (!tag || !(tag->flags & FENCE_ENFORCE))
		return 0;
	struct fence_exe exe = {};
	exe_of(file, &exe);
	struct fence_file key = { .id = tag->id, .dev = exe.dev, .ino = exe.ino };
	return bpf_map_lookup_elem(&denied_files, &key) ? -EPERM : 0;
}
