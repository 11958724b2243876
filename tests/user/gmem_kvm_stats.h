/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * KVM's per-vCPU statistics (KVM_GET_STATS_FD of a vCPU), for the tests
 * and gmem-bench.  Include after kvm_util.h.
 */
#ifndef GMEM_KVM_STATS_H
#define GMEM_KVM_STATS_H

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The vCPU statistic @name, e.g. "exits"; asserts that it exists. */
static inline uint64_t gmem_vcpu_stat(struct kvm_vcpu *vcpu, const char *name)
{
	struct kvm_stats_desc *descs, *desc;
	struct kvm_stats_header header;
	uint64_t data = 0;
	size_t size;
	int fd, i;

	fd = vcpu_get_stats_fd(vcpu);
	read_stats_header(fd, &header);
	descs = read_stats_descriptors(fd, &header);
	size = get_stats_descriptor_size(&header);
	for (i = 0; i < header.num_desc; i++) {
		desc = (void *)descs + i * size;
		if (!strcmp(desc->name, name)) {
			read_stat_data(fd, &header, desc, &data, 1);
			break;
		}
	}
	TEST_ASSERT(i < header.num_desc, "no vCPU statistic %s", name);
	free(descs);
	close(fd);
	return data;
}

#endif /* GMEM_KVM_STATS_H */
