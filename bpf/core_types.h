/* core_types.h: the kernel types hakmem.bpf.c reads, hand-written for CO-RE.
 *
 * Owns: the few kernel structs, enums and constants the BPF side needs, so
 * that the build never depends on the build host's kernel (no vmlinux.h, no
 * kernel headers). Every struct is marked preserve_access_index: libbpf
 * relocates each field access against the running kernel's BTF
 * (/sys/kernel/btf/vmlinux) at load time, so only field names and types
 * matter here, never offsets or sizes. Enum values used through
 * bpf_core_enum_value() are relocated the same way; the numbers written
 * below are those of 6.18 and serve only as documentation.
 *
 * Must not: grow into a vmlinux.h. Add a field only when the BPF code reads
 * it; a renamed or retyped field gets a `___suffix` flavour below with the
 * kernel commit that changed it (libbpf ignores the suffix when matching).
 * User space never includes this file.
 */
#ifndef HAKMEM_CORE_TYPES_H
#define HAKMEM_CORE_TYPES_H

/* ---- fixed-width types (uapi <linux/types.h>, stable ABI) ---- */
typedef signed char __s8;
typedef unsigned char __u8;
typedef short __s16;
typedef unsigned short __u16;
typedef int __s32;
typedef unsigned int __u32;
typedef long long __s64;
typedef unsigned long long __u64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
typedef __u32 u32;
typedef __u64 u64;
typedef unsigned int gfp_t;
typedef unsigned int uid_t;
typedef _Bool bool;
#define true 1
#define false 0

/* ---- uapi <linux/bpf.h> constants the maps use (stable ABI) ---- */
enum bpf_map_type {
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_LRU_HASH = 9,
	BPF_MAP_TYPE_RINGBUF = 27,
};

enum {
	BPF_ANY = 0,
	BPF_NOEXIST = 1,
	BPF_EXIST = 2,
};

/* ---- cgroups ---- */

/* kernfs_node::id is the node's inode number (on 64-bit: generation << 32
 * | ino, as stat(2) reports it) and, for cgroup2, the cgroup id. It is a
 * u64 since v5.5 ("kernfs: convert kernfs_node->id from union
 * kernfs_node_id to u64", Tejun Heo); older kernels are below hakmem's
 * minimum (5.12, for the BPF atomics), so no ___old flavour is needed. */
struct kernfs_node {
	__u64 id;
} __attribute__((preserve_access_index));

struct cgroup {
	struct kernfs_node *kn;
} __attribute__((preserve_access_index));

struct cgroup_subsys_state {
	struct cgroup *cgroup;
} __attribute__((preserve_access_index));

/* Index of a controller in css_set::subsys[]; the value depends on the
 * kernel config (4 on the 6.18 test machines), hence bpf_core_enum_value. */
enum cgroup_subsys_id {
	memory_cgrp_id = 4,
};

struct css_set {
	struct cgroup_subsys_state *subsys[12];
} __attribute__((preserve_access_index));

struct task_struct {
	struct css_set *cgroups;
} __attribute__((preserve_access_index));

/* css is the first member; only its address is taken. */
struct mem_cgroup {
	struct cgroup_subsys_state css;
} __attribute__((preserve_access_index));

/* ---- vm events (include/linux/vm_event_item.h) ----
 * Numbers vary with the config (CONFIG_ZONE_DMA, THP, ...); 6.18's shown.
 * PGSCAN/PGSTEAL_KHUGEPAGED appeared in v6.0 and _PROACTIVE in v6.16;
 * hakmem.bpf.c guards each with bpf_core_enum_value_exists(). */
enum vm_event_item {
	PGSTEAL_KSWAPD = 28,
	PGSTEAL_DIRECT = 29,
	PGSCAN_KSWAPD = 32,
	PGSCAN_DIRECT = 33,
	OOM_KILL = 52,
};

#endif /* HAKMEM_CORE_TYPES_H */
