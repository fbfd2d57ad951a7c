// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/* Portcullis guard programs: what fanotify cannot see.
 *
 * Exec backstop (always, a tp_btf tracepoint): a program started from a filesystem the agent
 * does not watch — a tmpfs mounted a moment ago in a new mount namespace, a memfd — is killed
 * before its first instruction (Secured) or reported (the other modes). The agent keeps the
 * set of watched superblocks in `watched` and, in scoped mode, the scope directories.
 *
 * Executable mappings (BPF LSM, where the kernel accepts it): mmap_file and file_mprotect
 * refuse to make memory executable from a file that is not on a watched filesystem, was
 * never permitted as code (`approved`), or is open for writing in the same descriptor.
 *
 * Kernel types are declared here with only the fields used, marked preserve_access_index:
 * libbpf relocates the offsets against the running kernel's BTF (CO-RE). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "guard_logic.h"

#define EPERM 1
#define SIGKILL 9
#define PROT_WRITE 0x2
#define PROT_EXEC 0x4
#define FMODE_WRITE 0x2
/* How many path components the scope walk climbs (files deeper than this below every mount
 * are taken as outside the scope). */
#define GUARD_WALK 64

struct super_block {
	__u32 s_dev;
} __attribute__((preserve_access_index));

struct inode {
	unsigned long i_ino;
	struct super_block *i_sb;
} __attribute__((preserve_access_index));

struct dentry {
	struct dentry *d_parent;
	struct inode *d_inode;
	struct super_block *d_sb;
} __attribute__((preserve_access_index));

struct vfsmount {
	struct dentry *mnt_root;
} __attribute__((preserve_access_index));

struct mount {
	struct mount *mnt_parent;
	struct dentry *mnt_mountpoint;
	struct vfsmount mnt;
} __attribute__((preserve_access_index));

struct path {
	struct vfsmount *mnt;
	struct dentry *dentry;
} __attribute__((preserve_access_index));

struct file {
	struct path f_path;
	struct inode *f_inode;
	unsigned int f_mode;
} __attribute__((preserve_access_index));

struct linux_binprm {
	struct file *file;
	const char *filename;
} __attribute__((preserve_access_index));

struct task_struct {
	int tgid;
} __attribute__((preserve_access_index));

struct vm_area_struct {
	struct file *vm_file;
} __attribute__((preserve_access_index));

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct guard_config);
} config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, __u8);
} watched SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, struct guard_inode);
	__type(value, __u8);
} scope_dirs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 262144);
	__type(key, struct guard_inode);
	__type(value, __u8);
} approved SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

static __always_inline const struct guard_config *guard_config(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&config, &zero);
}

static __always_inline int is_watched(struct file *file)
{
	__u64 dev = BPF_CORE_READ(file, f_inode, i_sb, s_dev);
	return bpf_map_lookup_elem(&watched, &dev) != 0;
}

/* Whether `file` lies below one of the scope directories, walking up its path the way
 * d_path does: dentry by dentry to the root of its mount, then on from the mount point in
 * the parent mount. Directories are known by (s_dev, inode), so the same directory counts
 * in every mount namespace, whatever is mounted where. */
static __always_inline int below_scope(struct file *file)
{
	struct vfsmount *vfs = BPF_CORE_READ(file, f_path.mnt);
	struct dentry *d = BPF_CORE_READ(file, f_path.dentry);
	struct mount *m = (struct mount *)((void *)vfs - bpf_core_field_offset(struct mount, mnt));
	for (int i = 0; i < GUARD_WALK; i++) {
		struct guard_inode key = {
			.dev = BPF_CORE_READ(d, d_sb, s_dev),
			.ino = BPF_CORE_READ(d, d_inode, i_ino),
		};
		if (bpf_map_lookup_elem(&scope_dirs, &key))
			return 1;
		if (d == BPF_CORE_READ(m, mnt.mnt_root)) {
			struct mount *parent = BPF_CORE_READ(m, mnt_parent);
			if (parent == m)
				return 0;
			d = BPF_CORE_READ(m, mnt_mountpoint);
			m = parent;
			continue;
		}
		struct dentry *up = BPF_CORE_READ(d, d_parent);
		if (up == d)
			return 0;
		d = up;
	}
	return 0;
}

static __always_inline void report(__u32 what, __u32 mode, __u32 why, struct file *file, const char *name)
{
	struct guard_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e)
		return;
	e->tgid = bpf_get_current_pid_tgid() >> 32;
	e->what = what;
	e->mode = mode;
	e->why = why;
	e->dev = file ? BPF_CORE_READ(file, f_inode, i_sb, s_dev) : 0;
	e->ino = file ? BPF_CORE_READ(file, f_inode, i_ino) : 0;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	e->path[0] = 0;
	if (name)
		bpf_probe_read_kernel_str(e->path, sizeof(e->path), name);
	bpf_ringbuf_submit(e, 0);
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(guard_exec, struct task_struct *p, int old_pid, struct linux_binprm *bprm)
{
	const struct guard_config *cfg = guard_config();
	if (!cfg || cfg->mode == GUARD_OFF)
		return 0;
	struct file *file = BPF_CORE_READ(bprm, file);
	int watched_fs = is_watched(file);
	int in_scope = 1;
	if (!watched_fs && (cfg->flags & GUARD_SCOPED))
		in_scope = below_scope(file);
	__u32 verdict = guard_exec_verdict(cfg, watched_fs, in_scope);
	if (!verdict)
		return 0;
	/* The new image has not run yet: the kill lands before its first instruction. */
	if (verdict == GUARD_ENFORCE)
		bpf_send_signal(SIGKILL);
	report(GUARD_EXEC_UNWATCHED, verdict, GUARD_WHY_UNWATCHED, file, BPF_CORE_READ(bprm, filename));
	return 0;
}

/* ---- BPF LSM: loaded only where the kernel accepts it (see the loader's probe) ---- */

static __always_inline int judge_map(struct file *file, int wants_write, __u32 what)
{
	const struct guard_config *cfg = guard_config();
	if (!cfg || cfg->mode == GUARD_OFF)
		return 0;
	int has_file = file != 0;
	int in_scope = 1, watched_fs = 0, is_approved = 0, writable = 0;
	if (has_file) {
		watched_fs = is_watched(file);
		if (cfg->flags & GUARD_SCOPED)
			in_scope = below_scope(file);
		struct guard_inode key = {
			.dev = BPF_CORE_READ(file, f_inode, i_sb, s_dev),
			.ino = BPF_CORE_READ(file, f_inode, i_ino),
		};
		is_approved = bpf_map_lookup_elem(&approved, &key) != 0;
		writable = (BPF_CORE_READ(file, f_mode) & FMODE_WRITE) != 0;
	}
	__u32 why = 0;
	__u32 verdict = guard_map_verdict(cfg, has_file, in_scope, watched_fs, is_approved, writable, wants_write, &why);
	if (!verdict)
		return 0;
	report(what, verdict, why, file, 0);
	return verdict == GUARD_ENFORCE ? -EPERM : 0;
}

SEC("lsm/mmap_file")
int BPF_PROG(guard_lsm_mmap, struct file *file, unsigned long reqprot, unsigned long prot, unsigned long flags, int ret)
{
	if (ret || !(prot & PROT_EXEC))
		return ret;
	return judge_map(file, (prot & PROT_WRITE) != 0, GUARD_MMAP_EXEC);
}

SEC("lsm/file_mprotect")
int BPF_PROG(guard_lsm_mprotect, struct vm_area_struct *vma, unsigned long reqprot, unsigned long prot, int ret)
{
	if (ret || !(prot & PROT_EXEC))
		return ret;
	return judge_map(BPF_CORE_READ(vma, vm_file), (prot & PROT_WRITE) != 0, GUARD_MPROTECT_EXEC);
}
