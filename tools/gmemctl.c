// SPDX-License-Identifier: GPL-2.0-only
/*
 * gmemctl: the operator's view of gmem.
 *
 * gmem's private memory is mapped nowhere, so top, smaps and numastat
 * cannot see it.  gmemctl shows who holds how much of it, and on which
 * NUMA nodes (from the gmem-* keys of /proc/<pid>/fdinfo), whether gmem
 * is usable, and loads and unloads the module through libkmod.  See
 * usage_text or `gmemctl --help` for the commands and their output.
 *
 * Build: make -C tools (links with libkmod: Debian's libkmod-dev).
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
#include <syslog.h>

#include <libkmod.h>

#define GMEM_MODULE		"gmem"
#define GMEM_DEV		"/dev/gmem"
#define GMEM_SYSFS		"/sys/class/misc/gmem"
#define GMEM_SYSMOD		"/sys/module/gmem"
/* Exported by KVM only when it carries gmem's patches (kernel/patches/). */
#define PROVIDER_SYMBOL		"kvm_gmem_register_provider"
#define PROVIDER_CONFIG		"CONFIG_KVM_GMEM_PROVIDER"
/* What readlink(/proc/<pid>/fd/N) says for a gmem file and a KVM VM. */
#define GMEM_FILE_LINK		"anon_inode:[gmem]"
#define KVM_VM_LINK		"anon_inode:kvm-vm"

/* Exit statuses. */
#define EXIT_FAIL		1	/* an error, or gmem is not usable */
#define EXIT_USAGE		2	/* bad command line */

#define __printf(a, b)		__attribute__((format(printf, a, b)))

static bool opt_human;
static bool opt_json;
static bool opt_nodes;

static void __printf(1, 2) error(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("gmemctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void *xrealloc(void *p, size_t n, size_t size)
{
	p = reallocarray(p, n, size);
	if (!p) {
		error("out of memory");
		exit(EXIT_FAIL);
	}
	return p;
}

/* ---- small readers -------------------------------------------------- */

/*
 * read_line() - the first line of @path, without its newline, in @buf.
 * Return: 0, or -errno.
 */
static int read_line(const char *path, char *buf, size_t size)
{
	FILE *f = fopen(path, "re");
	int r = 0;

	if (!f)
		return -errno;
	if (!fgets(buf, size, f))
		r = ferror(f) ? -EIO : -ENODATA;
	else
		buf[strcspn(buf, "\n")] = '\0';
	fclose(f);
	return r;
}

/* read_u64() - the decimal number in @path.  Return: 0, or -errno. */
static int read_u64(const char *path, unsigned long long *val)
{
	char buf[64], *end;
	int r;

	r = read_line(path, buf, sizeof(buf));
	if (r)
		return r;
	errno = 0;
	*val = strtoull(buf, &end, 10);
	if (errno || end == buf)
		return -EINVAL;
	return 0;
}

/*
 * fmt_size() - @bytes as text in @buf: exact bytes, or with -h a
 * binary-prefixed size the way ls -h prints one (4.0K, 12K, 1.5G).
 */
static const char *fmt_size(char *buf, size_t size, unsigned long long bytes)
{
	static const char units[] = "KMGTPE";
	double v = bytes;
	int i = -1;

	if (!opt_human || bytes < 1024) {
		snprintf(buf, size, "%llu", bytes);
		return buf;
	}
	while (v >= 1024 && i < 5) {
		v /= 1024;
		i++;
	}
	if (v < 9.95)
		snprintf(buf, size, "%.1f%c", v, units[i]);
	else
		snprintf(buf, size, "%.0f%c", v, units[i]);
	return buf;
}

/* ---- bytes per NUMA node --------------------------------------------- */

/* The bytes on one NUMA node. */
struct node_bytes {
	int node;
	unsigned long long bytes;
};

/*
 * Bytes per NUMA node, as the gmem-nodes line of a file's fdinfo and
 * gmem's node_bytes give them ("N0=<bytes> N1=<bytes>": every node with
 * memory, ascending), or a sum of such lines.  @n is -1 when there was no
 * such line: a gmem from before NUMA placement.
 */
struct nodes {
	struct node_bytes *v;		/* ascending by node */
	int n;
};

#define NODES_NONE	((struct nodes){ .v = NULL, .n = -1 })

/*
 * parse_nodes() - the "N<node>=<bytes>" words of @s in @nb (an empty @s
 * gives no nodes).
 * Return: 0, or -EINVAL for anything else (@nb is then NODES_NONE).
 */
static int parse_nodes(const char *s, struct nodes *nb)
{
	unsigned long long bytes;
	char *end;
	long node;

	*nb = (struct nodes){ .v = NULL, .n = 0 };
	for (;;) {
		s += strspn(s, " \t\n");
		if (!*s)
			return 0;
		if (s[0] != 'N' || !isdigit((unsigned char)s[1]))
			break;
		errno = 0;
		node = strtol(s + 1, &end, 10);
		if (errno || node > INT_MAX || end[0] != '=' ||
		    !isdigit((unsigned char)end[1]))
			break;
		bytes = strtoull(end + 1, &end, 10);
		if (errno || (*end && !isspace((unsigned char)*end)))
			break;
		if (nb->n && node <= nb->v[nb->n - 1].node)
			break;
		nb->v = xrealloc(nb->v, nb->n + 1, sizeof(*nb->v));
		nb->v[nb->n].node = node;
		nb->v[nb->n].bytes = bytes;
		nb->n++;
		s = end;
	}
	free(nb->v);
	*nb = NODES_NONE;
	return -EINVAL;
}

/* nodes_get() - whether @nb lists @node; its bytes in *@bytes. */
static bool nodes_get(const struct nodes *nb, int node,
		      unsigned long long *bytes)
{
	int i;

	for (i = 0; i < nb->n; i++) {
		if (nb->v[i].node == node) {
			*bytes = nb->v[i].bytes;
			return true;
		}
	}
	return false;
}

/*
 * nodes_add() - add @nb to @sum node by node; a node that @sum lacks
 * joins it (with @scale 0: joins it with 0 bytes, to collect the nodes
 * of several lists).  NODES_NONE adds nothing; a @sum of NODES_NONE
 * becomes a list.
 */
static void nodes_add(struct nodes *sum, const struct nodes *nb, int scale)
{
	int i, j;

	if (nb->n < 0)
		return;
	if (sum->n < 0)
		sum->n = 0;
	for (i = 0; i < nb->n; i++) {
		for (j = 0; j < sum->n && sum->v[j].node < nb->v[i].node; j++)
			;
		if (j == sum->n || sum->v[j].node != nb->v[i].node) {
			sum->v = xrealloc(sum->v, sum->n + 1, sizeof(*sum->v));
			memmove(&sum->v[j + 1], &sum->v[j],
				(sum->n - j) * sizeof(*sum->v));
			sum->v[j].node = nb->v[i].node;
			sum->v[j].bytes = 0;
			sum->n++;
		}
		sum->v[j].bytes += scale * nb->v[i].bytes;
	}
}

/*
 * read_nodes_file() - @path's first line (gmem's node_bytes) in @nb;
 * NODES_NONE when there is no such file, or it says something else.
 */
static void read_nodes_file(const char *path, struct nodes *nb)
{
	FILE *f = fopen(path, "re");
	size_t cap = 0;
	char *line = NULL;

	*nb = NODES_NONE;
	if (!f)
		return;
	if (getline(&line, &cap, f) > 0 && parse_nodes(line, nb))
		error("%s: cannot read '%s' as N<node>=<bytes> words", path,
		      strtok(line, "\n"));
	free(line);
	fclose(f);
}

/* ---- gmem files held by processes ------------------------------------ */

/* One gmem file as one process holds it. */
struct gfile {
	unsigned long long id;		/* gmem-id: the inode number */
	unsigned long long size;	/* gmem-size */
	unsigned long long allocated;	/* gmem-allocated */
	unsigned long long held;	/* gmem-held */
	unsigned long long flags;	/* gmem-flags */
	struct nodes nodes;		/* gmem-nodes: live and held pages */
	char vm[32];			/* gmem-vm, "" while unbound */
	int nfds;			/* fds of the process on the file */
	int nprocs;			/* processes holding it, all told */
};

/* A process that holds gmem files, /dev/gmem or KVM VMs open. */
struct gproc {
	pid_t pid;
	char comm[32];
	struct gfile *files;
	int nfiles;
	int ndev;			/* fds on /dev/gmem */
	int nvms;			/* fds of KVM VMs */
};

struct scan {
	struct gproc *procs;
	int nprocs;
	int denied;			/* processes whose fds we may not read */
	dev_t gmem_rdev;		/* /dev/gmem's device number, 0 if none */
};

/* gmem's device number from sysfs: it holds even if /dev is unusual. */
static dev_t gmem_rdev(void)
{
	unsigned int maj, min;
	char buf[32];

	if (read_line(GMEM_SYSFS "/dev", buf, sizeof(buf)) ||
	    sscanf(buf, "%u:%u", &maj, &min) != 2)
		return 0;
	return makedev(maj, min);
}

/*
 * parse_fdinfo() - fill @gf from /proc/@pid/fdinfo/@fd.  A gmem without
 * gmem-held or gmem-nodes leaves held 0 and nodes NODES_NONE.
 * Return: 0; -ENOENT when the fd is gone or shows no gmem-id.
 */
static int parse_fdinfo(pid_t pid, const char *fd, struct gfile *gf)
{
	static const char nodes_key[] = "gmem-nodes:";
	char path[300], *line = NULL;
	bool has_id = false;
	size_t cap = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%s", pid, fd);
	f = fopen(path, "re");
	if (!f)
		return -ENOENT;
	memset(gf, 0, sizeof(*gf));
	gf->nodes = NODES_NONE;
	while (getline(&line, &cap, f) > 0) {
		if (sscanf(line, "gmem-id: %llu", &gf->id) == 1) {
			has_id = true;
		} else if (!strncmp(line, nodes_key, strlen(nodes_key))) {
			free(gf->nodes.v);
			if (parse_nodes(line + strlen(nodes_key), &gf->nodes))
				error("%s: cannot read '%s' as N<node>=<bytes> words",
				      path, strtok(line, "\n"));
		} else if (sscanf(line, "gmem-size: %llu", &gf->size) == 1 ||
			   sscanf(line, "gmem-allocated: %llu", &gf->allocated) == 1 ||
			   sscanf(line, "gmem-held: %llu", &gf->held) == 1 ||
			   sscanf(line, "gmem-flags: %llx", &gf->flags) == 1 ||
			   sscanf(line, "gmem-vm: %31s", gf->vm) == 1) {
			continue;
		}
	}
	free(line);
	fclose(f);
	if (has_id)
		return 0;
	free(gf->nodes.v);
	return -ENOENT;
}

/* Count a gmem file into @p: a file held through several fds counts once. */
static void proc_add_file(struct gproc *p, struct gfile *gf)
{
	int i;

	for (i = 0; i < p->nfiles; i++) {
		if (p->files[i].id == gf->id) {
			p->files[i].nfds++;
			free(gf->nodes.v);
			return;
		}
	}
	p->files = xrealloc(p->files, p->nfiles + 1, sizeof(*p->files));
	p->files[p->nfiles] = *gf;
	p->files[p->nfiles].nfds = 1;
	p->nfiles++;
}

/* Look at one fd of @p: a gmem file, /dev/gmem, a KVM VM or else. */
static void scan_fd(struct scan *s, struct gproc *p, int dirfd, const char *fd)
{
	char link[64];
	struct gfile gf;
	struct stat st;
	ssize_t n;

	n = readlinkat(dirfd, fd, link, sizeof(link) - 1);
	if (n < 0)
		return;
	link[n] = '\0';
	if (!strcmp(link, GMEM_FILE_LINK)) {
		if (!parse_fdinfo(p->pid, fd, &gf))
			proc_add_file(p, &gf);
	} else if (!strcmp(link, KVM_VM_LINK)) {
		p->nvms++;
	} else if (!strncmp(link, "/dev/", 5) && s->gmem_rdev &&
		   !fstatat(dirfd, fd, &st, 0) && S_ISCHR(st.st_mode) &&
		   st.st_rdev == s->gmem_rdev) {
		p->ndev++;
	}
}

/* Scan the fds of process @pid; keep it in @s if it holds anything. */
static void scan_proc(struct scan *s, pid_t pid)
{
	struct gproc p = { .pid = pid };
	char path[64];
	struct dirent *de;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%d/fd", pid);
	dir = opendir(path);
	if (!dir) {
		if (errno == EACCES || errno == EPERM)
			s->denied++;
		return;
	}
	while ((de = readdir(dir)))
		if (de->d_name[0] != '.')
			scan_fd(s, &p, dirfd(dir), de->d_name);
	closedir(dir);
	if (!p.nfiles && !p.ndev && !p.nvms)
		return;

	snprintf(path, sizeof(path), "/proc/%d/comm", pid);
	if (read_line(path, p.comm, sizeof(p.comm)))
		snprintf(p.comm, sizeof(p.comm), "?");
	s->procs = xrealloc(s->procs, s->nprocs + 1, sizeof(*s->procs));
	s->procs[s->nprocs++] = p;
}

/* Count in every gfile how many processes hold that file. */
static void scan_count_sharing(struct scan *s)
{
	int i, j, k, l;

	for (i = 0; i < s->nprocs; i++)
		for (j = 0; j < s->procs[i].nfiles; j++)
			s->procs[i].files[j].nprocs = 0;
	for (i = 0; i < s->nprocs; i++)
		for (j = 0; j < s->procs[i].nfiles; j++)
			for (k = 0; k < s->nprocs; k++)
				for (l = 0; l < s->procs[k].nfiles; l++)
					if (s->procs[k].files[l].id ==
					    s->procs[i].files[j].id)
						s->procs[i].files[j].nprocs++;
}

/* Scan /proc for processes that hold gmem files, /dev/gmem or VMs. */
static int scan_procs(struct scan *s)
{
	struct dirent *de;
	char *end;
	long pid;
	DIR *dir;

	memset(s, 0, sizeof(*s));
	s->gmem_rdev = gmem_rdev();
	dir = opendir("/proc");
	if (!dir) {
		error("cannot read /proc: %s", strerror(errno));
		return -1;
	}
	while ((de = readdir(dir))) {
		pid = strtol(de->d_name, &end, 10);
		if (*end || pid <= 0)
			continue;
		scan_proc(s, pid);
	}
	closedir(dir);
	scan_count_sharing(s);
	return 0;
}

static void scan_free(struct scan *s)
{
	int i, j;

	for (i = 0; i < s->nprocs; i++) {
		for (j = 0; j < s->procs[i].nfiles; j++)
			free(s->procs[i].files[j].nodes.v);
		free(s->procs[i].files);
	}
	free(s->procs);
}

/*
 * Totals over every distinct gmem file found: each file counts once.
 * nodes is NODES_NONE when no file has a gmem-nodes line.
 */
struct totals {
	unsigned long long files, size, allocated, held;
	struct nodes nodes;
};

static struct totals scan_totals(const struct scan *s)
{
	struct totals t = { .nodes = NODES_NONE };
	int i, j, k, l;
	bool seen;

	for (i = 0; i < s->nprocs; i++) {
		for (j = 0; j < s->procs[i].nfiles; j++) {
			const struct gfile *gf = &s->procs[i].files[j];

			/* Count the file at its first holder only. */
			seen = false;
			for (k = 0; k <= i && !seen; k++)
				for (l = 0; l < s->procs[k].nfiles; l++) {
					if (k == i && l == j)
						break;
					if (s->procs[k].files[l].id == gf->id) {
						seen = true;
						break;
					}
				}
			if (seen)
				continue;
			t.files++;
			t.size += gf->size;
			t.allocated += gf->allocated;
			t.held += gf->held;
			nodes_add(&t.nodes, &gf->nodes, 1);
		}
	}
	return t;
}

/*
 * The module's counters in GMEM_SYSFS.  held is -1ULL and nodes
 * NODES_NONE when this gmem lacks held_bytes or node_bytes.
 */
struct modcount {
	unsigned long long files, allocated, held;
	struct nodes nodes;
};

/* ---- aligned text tables --------------------------------------------- */

struct table {
	int ncols;
	const char *align;		/* 'l' or 'r' per column */
	char **cells;			/* row by row, ncols each; NULL: empty */
	int nrows;
};

static void __printf(3, 4)
table_cell(struct table *t, int col, const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	if (!s) {
		error("out of memory");
		exit(EXIT_FAIL);
	}
	t->cells[(t->nrows - 1) * t->ncols + col] = s;
}

static void table_row(struct table *t)
{
	int c;

	t->cells = xrealloc(t->cells, (t->nrows + 1) * t->ncols,
			    sizeof(*t->cells));
	for (c = 0; c < t->ncols; c++)
		t->cells[t->nrows * t->ncols + c] = NULL;
	t->nrows++;
}

/* Print @t with its columns aligned, two spaces apart; frees it. */
static void table_print(struct table *t)
{
	int *width = xrealloc(NULL, t->ncols, sizeof(*width));
	int r, c, last, w;
	char **row;
	const char *s;

	for (c = 0; c < t->ncols; c++)
		width[c] = 0;
	for (r = 0; r < t->nrows; r++)
		for (c = 0; c < t->ncols; c++) {
			s = t->cells[r * t->ncols + c];
			if (s && (int)strlen(s) > width[c])
				width[c] = strlen(s);
		}
	for (r = 0; r < t->nrows; r++) {
		row = &t->cells[r * t->ncols];
		for (last = t->ncols - 1; last > 0 && !row[last]; last--)
			;
		for (c = 0; c <= last; c++) {
			s = row[c] ? row[c] : "";
			w = c == last && t->align[c] == 'l' ? 0 : width[c];
			printf(t->align[c] == 'r' ? "%*s" : "%-*s", w, s);
			printf(c == last ? "\n" : "  ");
		}
		for (c = 0; c < t->ncols; c++)
			free(row[c]);
	}
	free(t->cells);
	free(width);
}

/* ---- gmemctl ps ------------------------------------------------------ */

/* The distinct VMs of @p's files, comma separated, in @buf. */
static const char *proc_vms(const struct gproc *p, char *buf, size_t size)
{
	size_t len = 0;
	int i, j;

	buf[0] = '\0';
	for (i = 0; i < p->nfiles; i++) {
		const char *vm = p->files[i].vm;

		if (!vm[0])
			continue;
		for (j = 0; j < i; j++)
			if (!strcmp(p->files[j].vm, vm))
				break;
		if (j < i)
			continue;
		len += snprintf(buf + len, len < size ? size - len : 0, "%s%s",
				len ? "," : "", vm);
	}
	return buf[0] ? buf : "-";
}

/* What a process holds, summed over its files. */
struct proc_sums {
	unsigned long long size, allocated, held;
	int shared;
	struct nodes nodes;		/* NODES_NONE: no file has gmem-nodes */
};

static struct proc_sums proc_sums(const struct gproc *p)
{
	struct proc_sums ps = { .nodes = NODES_NONE };
	int i;

	for (i = 0; i < p->nfiles; i++) {
		ps.size += p->files[i].size;
		ps.allocated += p->files[i].allocated;
		ps.held += p->files[i].held;
		ps.shared += p->files[i].nprocs > 1;
		nodes_add(&ps.nodes, &p->files[i].nodes, 1);
	}
	return ps;
}

/* The cell of @node in @nb in column @col: its bytes, or "-". */
static void node_cell(struct table *tab, int col, const struct nodes *nb,
		      int node)
{
	unsigned long long bytes;
	char a[32];

	if (nodes_get(nb, node, &bytes))
		table_cell(tab, col, "%s", fmt_size(a, sizeof(a), bytes));
	else
		table_cell(tab, col, "-");
}

/*
 * With --nodes: HELD and one column per node after ALLOCATED, for the
 * nodes of @ids (every node of a file or of the module's node_bytes).
 */
static void ps_print_table(const struct scan *s, const struct totals *t,
			   const struct modcount *m, const struct nodes *ids)
{
	int nn = opt_nodes ? 1 + ids->n : 0, i, k, vm = 6 + nn;
	struct table tab = { .ncols = 7 + nn };
	char a[32], b[32], vms[256], *align;
	struct proc_sums ps;

	align = xrealloc(NULL, tab.ncols + 1, 1);
	memset(align, 'r', tab.ncols);
	align[1] = 'l';
	align[vm] = 'l';
	align[tab.ncols] = '\0';
	tab.align = align;
	table_row(&tab);
	table_cell(&tab, 0, "PID");
	table_cell(&tab, 1, "COMMAND");
	table_cell(&tab, 2, "FILES");
	table_cell(&tab, 3, "SHARED");
	table_cell(&tab, 4, "SIZE");
	table_cell(&tab, 5, "ALLOCATED");
	if (opt_nodes) {
		table_cell(&tab, 6, "HELD");
		for (k = 0; k < ids->n; k++)
			table_cell(&tab, 7 + k, "N%d", ids->v[k].node);
	}
	table_cell(&tab, vm, "VM");
	for (i = 0; i < s->nprocs; i++) {
		const struct gproc *p = &s->procs[i];

		if (!p->nfiles)
			continue;
		ps = proc_sums(p);
		table_row(&tab);
		table_cell(&tab, 0, "%d", p->pid);
		table_cell(&tab, 1, "%s", p->comm);
		table_cell(&tab, 2, "%d", p->nfiles);
		table_cell(&tab, 3, "%d", ps.shared);
		table_cell(&tab, 4, "%s", fmt_size(a, sizeof(a), ps.size));
		table_cell(&tab, 5, "%s", fmt_size(b, sizeof(b), ps.allocated));
		if (opt_nodes) {
			table_cell(&tab, 6, "%s", fmt_size(a, sizeof(a), ps.held));
			for (k = 0; k < ids->n; k++)
				node_cell(&tab, 7 + k, &ps.nodes, ids->v[k].node);
		}
		table_cell(&tab, vm, "%s", proc_vms(p, vms, sizeof(vms)));
		free(ps.nodes.v);
	}
	table_row(&tab);
	table_cell(&tab, 1, "total");
	table_cell(&tab, 2, "%llu", t->files);
	table_cell(&tab, 4, "%s", fmt_size(a, sizeof(a), t->size));
	table_cell(&tab, 5, "%s", fmt_size(b, sizeof(b), t->allocated));
	if (opt_nodes) {
		table_cell(&tab, 6, "%s", fmt_size(a, sizeof(a), t->held));
		for (k = 0; k < ids->n; k++)
			node_cell(&tab, 7 + k, &t->nodes, ids->v[k].node);
	}
	table_cell(&tab, vm, "(each file once)");
	table_row(&tab);
	table_cell(&tab, 1, "gmem module");
	table_cell(&tab, 2, "%llu", m->files);
	table_cell(&tab, 5, "%s", fmt_size(b, sizeof(b), m->allocated));
	if (opt_nodes) {
		if (m->held != -1ULL)
			table_cell(&tab, 6, "%s", fmt_size(a, sizeof(a), m->held));
		else
			table_cell(&tab, 6, "-");
		for (k = 0; k < ids->n; k++)
			node_cell(&tab, 7 + k, &m->nodes, ids->v[k].node);
	}
	table_cell(&tab, vm, "(%s)", GMEM_SYSFS);
	table_print(&tab);
	free(align);
}

/* @s as a JSON string, escaped. */
static void json_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", *s);
		else
			putchar(*s);
	}
	putchar('"');
}

/* @nb as a JSON object {"0": bytes, "1": bytes}, or null if unknown. */
static void json_nodes(const struct nodes *nb)
{
	int i;

	if (nb->n < 0) {
		printf("null");
		return;
	}
	putchar('{');
	for (i = 0; i < nb->n; i++)
		printf("%s\"%d\": %llu", i ? ", " : "", nb->v[i].node,
		       nb->v[i].bytes);
	putchar('}');
}

static void ps_print_json_proc(const struct gproc *p)
{
	struct proc_sums ps = proc_sums(p);
	int i;

	printf("{\"pid\": %d, \"command\": ", p->pid);
	json_string(p->comm);
	printf(", \"files\": %d, \"shared\": %d", p->nfiles, ps.shared);
	printf(", \"size\": %llu, \"allocated\": %llu, \"held\": %llu",
	       ps.size, ps.allocated, ps.held);
	printf(", \"nodes\": ");
	json_nodes(&ps.nodes);
	printf(", \"gmem_dev_fds\": %d, \"kvm_vm_fds\": %d", p->ndev, p->nvms);
	printf(", \"file_list\": [");
	for (i = 0; i < p->nfiles; i++) {
		const struct gfile *gf = &p->files[i];

		printf("%s{\"id\": %llu, \"size\": %llu, \"allocated\": %llu",
		       i ? ", " : "", gf->id, gf->size, gf->allocated);
		printf(", \"held\": %llu, \"nodes\": ", gf->held);
		json_nodes(&gf->nodes);
		printf(", \"flags\": %llu, \"fds\": %d, \"processes\": %d",
		       gf->flags, gf->nfds, gf->nprocs);
		printf(", \"vm\": ");
		if (gf->vm[0])
			json_string(gf->vm);
		else
			printf("null");
		putchar('}');
	}
	printf("]}");
	free(ps.nodes.v);
}

static void ps_print_json(const struct scan *s, const struct totals *t,
			  const struct modcount *m)
{
	bool first = true;
	int i;

	printf("{\"processes\": [");
	for (i = 0; i < s->nprocs; i++) {
		if (!s->procs[i].nfiles)
			continue;
		printf(first ? "\n  " : ",\n  ");
		first = false;
		ps_print_json_proc(&s->procs[i]);
	}
	printf("%s],\n", first ? "" : "\n");
	printf(" \"totals\": {\"files\": %llu, \"size\": %llu, \"allocated\": %llu, \"held\": %llu, \"nodes\": ",
	       t->files, t->size, t->allocated, t->held);
	json_nodes(&t->nodes);
	printf("},\n \"module\": {\"files\": %llu, \"allocated\": %llu, \"held\": ",
	       m->files, m->allocated);
	if (m->held != -1ULL)
		printf("%llu", m->held);
	else
		printf("null");
	printf(", \"nodes\": ");
	json_nodes(&m->nodes);
	printf("},\n \"unreadable_processes\": %d}\n", s->denied);
}

/* Say why the totals may differ from the module's counters. */
static void ps_notes(const struct scan *s, const struct totals *t,
		     const struct modcount *m)
{
	if (s->denied)
		printf("note: %d process(es) not inspected (permission denied): run as root\n",
		       s->denied);
	if (m->files > t->files)
		printf("note: %llu gmem file(s) in no fd gmemctl can see (in a unix socket%s)\n",
		       m->files - t->files,
		       s->denied ? ", or in those processes" : "");
	else if (m->files < t->files)
		printf("note: files were closed while gmemctl read them: run it again\n");
	if (opt_nodes && t->nodes.n < 0 && m->nodes.n < 0)
		printf("note: this gmem reports no bytes per node (no gmem-nodes in fdinfo, no %s/node_bytes): it predates NUMA placement\n",
		       GMEM_SYSFS);
}

static int cmd_ps(void)
{
	struct modcount m;
	struct nodes ids = { .v = NULL, .n = 0 };
	struct totals t;
	struct scan s;

	if (access(GMEM_SYSMOD, F_OK)) {
		error("gmem is not loaded: no gmem files exist (gmemctl load)");
		return EXIT_FAIL;
	}
	if (scan_procs(&s))
		return EXIT_FAIL;
	t = scan_totals(&s);
	if (read_u64(GMEM_SYSFS "/files", &m.files) ||
	    read_u64(GMEM_SYSFS "/allocated_bytes", &m.allocated)) {
		error("cannot read gmem's counters in %s: %s", GMEM_SYSFS,
		      strerror(errno));
		free(t.nodes.v);
		scan_free(&s);
		return EXIT_FAIL;
	}
	if (read_u64(GMEM_SYSFS "/held_bytes", &m.held))
		m.held = -1ULL;
	read_nodes_file(GMEM_SYSFS "/node_bytes", &m.nodes);
	/* The node columns: every node that a file or the module lists. */
	nodes_add(&ids, &t.nodes, 0);
	nodes_add(&ids, &m.nodes, 0);
	if (opt_json) {
		ps_print_json(&s, &t, &m);
	} else {
		ps_print_table(&s, &t, &m, &ids);
		ps_notes(&s, &t, &m);
	}
	free(ids.v);
	free(m.nodes.v);
	free(t.nodes.v);
	scan_free(&s);
	return 0;
}

/* ---- libkmod --------------------------------------------------------- */

static void kmod_log(void *data, int priority, const char *file, int line,
		     const char *fn, const char *format, va_list args)
{
	fputs("gmemctl: libkmod: ", stderr);
	vfprintf(stderr, format, args);
}

static struct kmod_ctx *kmod_open(void)
{
	struct kmod_ctx *ctx = kmod_new(NULL, NULL);

	if (!ctx) {
		error("libkmod: cannot set up (is /lib/modules/<release> there?)");
		exit(EXIT_FAIL);
	}
	kmod_set_log_fn(ctx, kmod_log, NULL);
	return ctx;
}

/*
 * module_lookup() - the module @name, as modprobe finds it: by name,
 * alias or the modules.dep of the running kernel.
 * Return: a reference to the module, or NULL when none is installed.
 */
static struct kmod_module *module_lookup(struct kmod_ctx *ctx, const char *name)
{
	struct kmod_module *mod = NULL;
	struct kmod_list *list = NULL;

	if (kmod_module_new_from_lookup(ctx, name, &list) < 0 || !list)
		return NULL;
	mod = kmod_module_ref(kmod_module_get_module(list));
	kmod_module_unref_list(list);
	return mod;
}

/* The "key" field of @mod's modinfo in @buf ("" if none). */
static const char *module_info(struct kmod_module *mod, const char *key,
			       char *buf, size_t size)
{
	struct kmod_list *info = NULL, *l;

	buf[0] = '\0';
	if (kmod_module_get_info(mod, &info) < 0)
		return buf;
	kmod_list_foreach(l, info) {
		if (!strcmp(kmod_module_info_get_key(l), key)) {
			snprintf(buf, size, "%s", kmod_module_info_get_value(l));
			break;
		}
	}
	kmod_module_info_free_list(info);
	return buf;
}

/* Names of the modules that hold @mod, comma separated, in @buf. */
static const char *module_holders(struct kmod_module *mod, char *buf,
				  size_t size)
{
	struct kmod_list *holders = kmod_module_get_holders(mod), *l;
	size_t len = 0;

	buf[0] = '\0';
	kmod_list_foreach(l, holders) {
		struct kmod_module *h = kmod_module_get_module(l);

		len += snprintf(buf + len, len < size ? size - len : 0, "%s%s",
				len ? ", " : "", kmod_module_get_name(h));
		kmod_module_unref(h);
	}
	kmod_module_unref_list(holders);
	return buf;
}

static bool module_is_live(struct kmod_module *mod)
{
	int state = kmod_module_get_initstate(mod);

	return state == KMOD_MODULE_LIVE || state == KMOD_MODULE_BUILTIN;
}

/* ---- does the kernel carry the KVM provider patch? ------------------- */

/* Provider patch: 1 yes, 0 no, -1 the signal cannot tell. */
struct provider {
	int present;
	char how[256];			/* which signal answered, and how */
};

/* 1. The running kernel: kvm (loaded or built in) exports the symbol. */
static int provider_kallsyms(struct kmod_ctx *ctx, struct provider *pv)
{
	struct kmod_module *kvm = NULL;
	char line[512], name[256];
	bool kvm_in = false;
	FILE *f;

	if (!kmod_module_new_from_name(ctx, "kvm", &kvm)) {
		kvm_in = kmod_module_get_initstate(kvm) >= 0;
		kmod_module_unref(kvm);
	}
	f = fopen("/proc/kallsyms", "re");
	if (!f || !kvm_in) {
		if (f)
			fclose(f);
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%*s %*s %255s", name) == 1 &&
		    !strcmp(name, PROVIDER_SYMBOL)) {
			fclose(f);
			snprintf(pv->how, sizeof(pv->how),
				 "%s in /proc/kallsyms", PROVIDER_SYMBOL);
			return 1;
		}
	}
	fclose(f);
	snprintf(pv->how, sizeof(pv->how),
		 "kvm is loaded and /proc/kallsyms has no %s", PROVIDER_SYMBOL);
	return 0;
}

/* 2. The installed modules: depmod's modules.symbols, through libkmod. */
static int provider_modules(struct kmod_ctx *ctx, struct provider *pv)
{
	struct kmod_module *mod = module_lookup(ctx, "symbol:" PROVIDER_SYMBOL);

	if (!mod) {
		struct kmod_module *kvm = module_lookup(ctx, "kvm");

		/* A built-in kvm is in no module index: this cannot tell. */
		if (!kvm || kmod_module_get_initstate(kvm) == KMOD_MODULE_BUILTIN) {
			kmod_module_unref(kvm);
			return -1;
		}
		snprintf(pv->how, sizeof(pv->how),
			 "the installed kvm module does not export %s",
			 PROVIDER_SYMBOL);
		kmod_module_unref(kvm);
		return 0;
	}
	snprintf(pv->how, sizeof(pv->how),
		 "installed module %s exports %s (modules.symbols)",
		 kmod_module_get_name(mod), PROVIDER_SYMBOL);
	kmod_module_unref(mod);
	return 1;
}

/* 3. The kernel's config, as Debian installs it in /boot. */
static int provider_config(struct provider *pv)
{
	char path[96], line[256];
	struct utsname u;
	int r = 0;
	FILE *f;

	uname(&u);
	snprintf(path, sizeof(path), "/boot/config-%s", u.release);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strcmp(line, PROVIDER_CONFIG "=y\n"))
			r = 1;
	fclose(f);
	snprintf(pv->how, sizeof(pv->how), "%s %s %s", path,
		 r ? "has" : "lacks", PROVIDER_CONFIG "=y");
	return r;
}

static struct provider provider_check(struct kmod_ctx *ctx)
{
	struct provider pv = { .present = -1 };

	pv.present = provider_kallsyms(ctx, &pv);
	if (pv.present < 0)
		pv.present = provider_modules(ctx, &pv);
	if (pv.present < 0)
		pv.present = provider_config(&pv);
	if (pv.present < 0)
		snprintf(pv.how, sizeof(pv.how),
			 "kvm is not loaded, not installed, and /boot has no config of this kernel");
	return pv;
}

/* ---- gmemctl status -------------------------------------------------- */

static void __printf(2, 3) status_line(const char *key, const char *fmt, ...)
{
	va_list ap;

	printf("%-12s ", key);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

/* Give @why (of @size bytes) its reason, unless it has one already. */
static void __printf(3, 4)
set_why(char *why, size_t size, const char *fmt, ...)
{
	va_list ap;

	if (why[0])
		return;
	va_start(ap, fmt);
	vsnprintf(why, size, fmt, ap);
	va_end(ap);
}

/* Every parameter in /sys/module/gmem/parameters, as name=value. */
static void status_params(void)
{
	char path[PATH_MAX], val[128], buf[32];
	unsigned long long n;
	struct dirent *de;
	DIR *dir;

	dir = opendir(GMEM_SYSMOD "/parameters");
	if (!dir)
		return;
	while ((de = readdir(dir))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), GMEM_SYSMOD "/parameters/%s",
			 de->d_name);
		if (read_line(path, val, sizeof(val)))
			snprintf(val, sizeof(val), "?");
		if (opt_human && !read_u64(path, &n) && strstr(de->d_name, "size"))
			fmt_size(val, sizeof(val), n);
		snprintf(buf, sizeof(buf), "parameter");
		status_line(buf, "%s=%s", de->d_name, val);
	}
	closedir(dir);
}

/* The module: loaded?  Version, refcount, holders, parameters. */
static bool status_module(struct kmod_ctx *ctx, char *why, size_t size)
{
	struct kmod_module *mod = module_lookup(ctx, GMEM_MODULE);
	char ver[64], src[64], file_src[64], buf[256];
	bool live;

	if (!mod && kmod_module_new_from_name(ctx, GMEM_MODULE, &mod) < 0)
		mod = NULL;
	live = mod && module_is_live(mod);
	if (!live) {
		status_line("module", "gmem is not loaded");
		set_why(why, size, "gmem is not loaded (gmemctl load)");
	} else {
		if (read_line(GMEM_SYSMOD "/version", ver, sizeof(ver)))
			snprintf(ver, sizeof(ver), "unknown");
		status_line("module", "gmem %s, loaded (%s)", ver,
			    kmod_module_initstate_str(kmod_module_get_initstate(mod)));
		status_line("refcount", "%d", kmod_module_get_refcnt(mod));
		module_holders(mod, buf, sizeof(buf));
		status_line("holders", "%s", buf[0] ? buf : "none");
		status_params();
	}
	if (mod && kmod_module_get_path(mod)) {
		module_info(mod, "version", ver, sizeof(ver));
		status_line("installed", "%s (version %s)",
			    kmod_module_get_path(mod), ver[0] ? ver : "unknown");
		if (live && !read_line(GMEM_SYSMOD "/srcversion", src, sizeof(src)) &&
		    module_info(mod, "srcversion", file_src, sizeof(file_src))[0] &&
		    strcmp(src, file_src))
			status_line("", "(not the module that is loaded: reload to run it)");
	} else {
		status_line("installed", "no gmem module for this kernel (make install)");
	}
	kmod_module_unref(mod);
	return live;
}

/* The KVM side: kvm loaded?  Provider patch?  /dev/kvm? */
static void status_kvm(struct kmod_ctx *ctx, char *why, size_t size)
{
	struct provider pv = provider_check(ctx);
	struct kmod_module *kvm = NULL;
	const char *state = "not loaded";

	if (!kmod_module_new_from_name(ctx, "kvm", &kvm)) {
		if (kmod_module_get_initstate(kvm) == KMOD_MODULE_BUILTIN)
			state = "built in";
		else if (kmod_module_get_initstate(kvm) >= 0)
			state = "loaded";
		kmod_module_unref(kvm);
	}
	status_line("kvm", "%s, %s", state,
		    access("/dev/kvm", F_OK) ? "no /dev/kvm (load kvm_amd or kvm_intel)" :
		    "/dev/kvm present");
	status_line("kvm patch", "%s: %s",
		    pv.present > 0 ? "yes" : pv.present ? "unknown" : "no", pv.how);
	if (!pv.present)
		set_why(why, size, "the kernel lacks gmem's KVM provider patch (%s)",
			pv.how);
}

static const char *user_name(uid_t uid, char *buf, size_t size)
{
	struct passwd *pw = getpwuid(uid);

	if (pw)
		return pw->pw_name;
	snprintf(buf, size, "%u", uid);
	return buf;
}

static const char *group_name(gid_t gid, char *buf, size_t size)
{
	struct group *gr = getgrgid(gid);

	if (gr)
		return gr->gr_name;
	snprintf(buf, size, "%u", gid);
	return buf;
}

/* /dev/gmem: there, the right device, and open to us for writing? */
static void status_dev(bool loaded, char *why, size_t size)
{
	char mode[11] = "c---------", u[16], g[16];
	dev_t want = gmem_rdev();
	struct stat st;
	int i;

	if (stat(GMEM_DEV, &st)) {
		status_line(GMEM_DEV, "absent");
		if (loaded)
			set_why(why, size, "%s is absent (no devtmpfs or udev?)",
				GMEM_DEV);
		return;
	}
	for (i = 0; i < 9; i++)
		if (st.st_mode & (1 << (8 - i)))
			mode[i + 1] = "rwxrwxrwx"[i];
	status_line(GMEM_DEV, "%s %s %s %u:%u, %s", mode,
		    user_name(st.st_uid, u, sizeof(u)),
		    group_name(st.st_gid, g, sizeof(g)),
		    major(st.st_rdev), minor(st.st_rdev),
		    access(GMEM_DEV, R_OK | W_OK) ? "you may not open it for writing" :
		    "you may open it for writing");
	if (loaded && (!S_ISCHR(st.st_mode) || st.st_rdev != want))
		set_why(why, size, "%s is not gmem's device %u:%u", GMEM_DEV,
			major(want), minor(want));
	if (access(GMEM_DEV, R_OK | W_OK))
		set_why(why, size, "%s is not open to uid %u for writing (%s)",
			GMEM_DEV, getuid(), mode);
}

static void status_totals(void)
{
	unsigned long long files, alloc, held = 0;
	char a[32], h[32];

	if (read_u64(GMEM_SYSFS "/files", &files) ||
	    read_u64(GMEM_SYSFS "/allocated_bytes", &alloc))
		return;
	/* Held pages: kept for 2 MiB blocks, holes to the files. */
	read_u64(GMEM_SYSFS "/held_bytes", &held);
	status_line("totals", "%llu file(s), %s%s allocated, %s%s held (%s)", files,
		    fmt_size(a, sizeof(a), alloc), opt_human ? "" : " bytes",
		    fmt_size(h, sizeof(h), held), opt_human ? "" : " bytes",
		    GMEM_SYSFS);
}

static int cmd_status(void)
{
	struct kmod_ctx *ctx = kmod_open();
	char why[256] = "";
	bool loaded;

	/* Every check runs and prints; the first reason found is given. */
	loaded = status_module(ctx, why, sizeof(why));
	status_kvm(ctx, why, sizeof(why));
	status_dev(loaded, why, sizeof(why));
	if (loaded)
		status_totals();
	kmod_unref(ctx);
	if (why[0]) {
		error("gmem is not usable: %s", why);
		return EXIT_FAIL;
	}
	printf("gmem is usable\n");
	return 0;
}

/* ---- gmemctl load / unload ------------------------------------------- */

static void load_action(struct kmod_module *m, bool install,
			const char *options)
{
	printf("%s %s%s%s\n", install ? "install" : "insmod",
	       kmod_module_get_path(m) ?: kmod_module_get_name(m),
	       options && options[0] ? " " : "", options ?: "");
}

static const char *load_hint(struct kmod_ctx *ctx, int err, char *buf,
			     size_t size)
{
	struct provider pv;

	switch (err) {
	case ENOENT:
		pv = provider_check(ctx);
		snprintf(buf, size, "unknown symbol in the module%s (see dmesg)",
			 pv.present == 0 ? ": the kernel lacks gmem's KVM provider patch" : "");
		return buf;
	case ENOEXEC:
		return "invalid module format: built for another kernel? (see dmesg)";
	case EPERM:
		return "not permitted: loading modules needs root (CAP_SYS_MODULE)";
	default:
		return strerror(err);
	}
}

static int cmd_load(void)
{
	struct kmod_ctx *ctx = kmod_open();
	struct kmod_module *mod;
	struct utsname u;
	char buf[160];
	int r;

	mod = module_lookup(ctx, GMEM_MODULE);
	if (!mod) {
		uname(&u);
		error("cannot load gmem: no gmem module for kernel %s in %s (make install)",
		      u.release, kmod_get_dirname(ctx));
		kmod_unref(ctx);
		return EXIT_FAIL;
	}
	if (module_is_live(mod)) {
		printf("gmem is already loaded\n");
	} else {
		/* Dependencies first (kvm), as modprobe does. */
		r = kmod_module_probe_insert_module(mod, 0, NULL, NULL, NULL,
						    load_action);
		if (r < 0 && r != -EEXIST) {
			error("cannot load gmem: %s", load_hint(ctx, -r, buf, sizeof(buf)));
			kmod_module_unref(mod);
			kmod_unref(ctx);
			return EXIT_FAIL;
		}
		printf("gmem is loaded\n");
	}
	kmod_module_unref(mod);
	kmod_unref(ctx);
	return 0;
}

/* Append "pid N (comm) what" for each process that holds gmem to @buf. */
static size_t busy_processes(const struct scan *s, char *buf, size_t size)
{
	size_t len = 0;
	int i;

	buf[0] = '\0';
	for (i = 0; i < s->nprocs; i++) {
		const struct gproc *p = &s->procs[i];

		if (!p->nfiles && !p->ndev)
			continue;
		len += snprintf(buf + len, len < size ? size - len : 0,
				"%spid %d (%s)", len ? ", " : "", p->pid, p->comm);
		if (p->nfiles)
			len += snprintf(buf + len, len < size ? size - len : 0,
					" %d file%s", p->nfiles,
					p->nfiles > 1 ? "s" : "");
		if (p->ndev)
			len += snprintf(buf + len, len < size ? size - len : 0,
					"%s" GMEM_DEV, p->nfiles ? " and " : " ");
	}
	return len;
}

/* The processes that hold KVM VMs, for references no gmem fd explains. */
static size_t busy_vms(const struct scan *s, char *buf, size_t size)
{
	size_t len = 0;
	int i;

	buf[0] = '\0';
	for (i = 0; i < s->nprocs; i++)
		if (s->procs[i].nvms)
			len += snprintf(buf + len, len < size ? size - len : 0,
					"%spid %d (%s)", len ? ", " : "",
					s->procs[i].pid, s->procs[i].comm);
	return len;
}

/*
 * Why gmem cannot go: modules that use it, processes with its files or
 * /dev/gmem open, and references that no open fd explains.  Every gmem
 * file and every open of /dev/gmem holds one module reference, and so
 * does every KVM memslot bound to a gmem file, even after that file was
 * closed.  gmem's internal file system holds one more while any gmem
 * file exists, or an inode of a closed one is still held (an O_PATH fd
 * opened through /proc/<pid>/fd/).
 */
static void unload_explain(struct kmod_module *mod)
{
	char holders[256], procs[1024], vms[512], extra[768] = "";
	unsigned long long files = 0;
	int refcnt, ndev = 0, i;
	long long unexplained;
	struct scan s;

	module_holders(mod, holders, sizeof(holders));
	refcnt = kmod_module_get_refcnt(mod);
	if (scan_procs(&s))
		return;
	busy_processes(&s, procs, sizeof(procs));
	busy_vms(&s, vms, sizeof(vms));
	for (i = 0; i < s.nprocs; i++)
		ndev += s.procs[i].ndev;
	read_u64(GMEM_SYSFS "/files", &files);
	unexplained = refcnt - (long long)files - ndev - (files > 0);
	if (unexplained > 0)
		snprintf(extra, sizeof(extra),
			 "%s%lld module reference%s held by no open gmem fd, e.g. by a KVM memslot bound to a gmem file, even a closed one, or by an O_PATH fd of a closed gmem file%s%s%s",
			 procs[0] ? "; and " : "", unexplained,
			 unexplained > 1 ? "s" : "",
			 vms[0] ? "; processes with KVM VMs: " : "", vms,
			 s.denied ? "; some processes could not be inspected (run as root)" : "");
	if (holders[0])
		error("cannot unload gmem: module %s uses it (unload that first)",
		      holders);
	else if (procs[0] || extra[0])
		error("cannot unload gmem: %s%s%s", procs[0] ? "in use by: " : "",
		      procs, extra);
	else
		error("cannot unload gmem: it is busy (refcount %d)", refcnt);
	scan_free(&s);
}

static int cmd_unload(void)
{
	struct kmod_ctx *ctx = kmod_open();
	struct kmod_module *mod = NULL;
	int r, ret = EXIT_FAIL;

	if (kmod_module_new_from_name(ctx, GMEM_MODULE, &mod) < 0) {
		error("libkmod: cannot look up module gmem");
		goto out;
	}
	r = kmod_module_get_initstate(mod);
	if (r == KMOD_MODULE_BUILTIN) {
		error("cannot unload gmem: it is built into the kernel");
		goto out;
	} else if (r < 0) {
		error("cannot unload gmem: it is not loaded");
		goto out;
	}
	/* libkmod would log EAGAIN: unload_explain() says more. */
	kmod_set_log_priority(ctx, LOG_CRIT);
	r = kmod_module_remove_module(mod, KMOD_REMOVE_NOWAIT);
	if (r == -EBUSY || r == -EAGAIN) {
		unload_explain(mod);
	} else if (r == -EPERM) {
		error("cannot unload gmem: not permitted: needs root (CAP_SYS_MODULE)");
	} else if (r < 0) {
		error("cannot unload gmem: %s", strerror(-r));
	} else {
		printf("gmem is unloaded\n");
		ret = 0;
	}
out:
	kmod_module_unref(mod);
	kmod_unref(ctx);
	return ret;
}

/* ---- command line ---------------------------------------------------- */

static const char usage_text[] =
"NAME\n"
"    gmemctl - show and control gmem, private memory for KVM guests\n"
"\n"
"SYNOPSIS\n"
"    gmemctl status [-h]\n"
"    gmemctl ps [-h] [--json] [--nodes]\n"
"    gmemctl load\n"
"    gmemctl unload\n"
"    gmemctl --help\n"
"\n"
"DESCRIPTION\n"
"    gmem's memory is mapped by no process, so top, smaps and numastat do\n"
"    not show it.  gmemctl does, from the gmem-* keys of\n"
"    /proc/<pid>/fdinfo and the counters in " GMEM_SYSFS ".\n"
"\n"
"COMMANDS\n"
"    status  Whether gmem is usable: the module (version, refcount,\n"
"            holders, parameters, the installed file), kvm and whether\n"
"            the kernel carries gmem's KVM provider patch (and which\n"
"            signal said so: /proc/kallsyms, the installed modules'\n"
"            symbols, /boot/config-<release>), " GMEM_DEV " and its\n"
"            permissions, the module-wide totals.  Exits 0 if gmem is\n"
"            usable, 1 with a line saying why not.\n"
"\n"
"    ps      One row per process holding gmem files: PID, COMMAND,\n"
"            FILES (distinct files; dup'd fds of one file count once),\n"
"            SHARED (how many of them other processes hold too), SIZE\n"
"            and ALLOCATED (bytes, summed over its files) and VM (the\n"
"            KVM VMs the files are bound to, as kvm-<pid of the VM's\n"
"            creator>).  A file shared by several processes (fork,\n"
"            SCM_RIGHTS) is in each of their rows and counts once in\n"
"            the total, which thus matches the module's counters,\n"
"            printed below it, unless files are held where no process\n"
"            fd shows them (a note then says so).\n"
"\n"
"            With --nodes, more columns after ALLOCATED: HELD (bytes of\n"
"            held pages: zeroed pages of partly punched 2 MiB blocks,\n"
"            holes to the file) and N0, N1, ... (bytes of the files'\n"
"            pages, allocated and held, on each NUMA node with memory;\n"
"            they add up to ALLOCATED + HELD), from the gmem-nodes key\n"
"            of fdinfo and, for the module, " GMEM_SYSFS "/node_bytes;\n"
"            \"-\" where a gmem from before NUMA placement has none.\n"
"\n"
"    load    Load gmem and the modules it needs (kvm first) with\n"
"            libkmod, as modprobe does; prints each module it inserts.\n"
"\n"
"    unload  Remove gmem.  When it is in use, names what holds it: the\n"
"            processes with gmem files or " GMEM_DEV " open, and\n"
"            module references that no open fd explains (KVM memslots\n"
"            bound to gmem files, possibly closed ones; O_PATH fds of\n"
"            closed gmem files).  kvm stays.\n"
"\n"
"OPTIONS\n"
"    -h, --human  sizes with binary prefixes (4.0K, 1.5G), as ls -h\n"
"    --json       ps: one JSON object, sizes in bytes; per process, per\n"
"                 file, in the totals and for the module, \"held\" and\n"
"                 \"nodes\" ({\"0\": bytes, \"1\": bytes}, as --nodes;\n"
"                 null where gmem does not report them)\n"
"    --nodes      ps: held bytes and bytes per NUMA node\n"
"    --help       this text\n"
"\n"
"EXIT STATUS\n"
"    0 success; 1 failure, or gmem not usable (status), with one line on\n"
"    stderr saying why; 2 bad command line.\n";

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "human", no_argument, NULL, 'h' },
		{ "json", no_argument, NULL, 'j' },
		{ "nodes", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'H' },
		{ NULL, 0, NULL, 0 }
	};
	const char *cmd;
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			opt_human = true;
			break;
		case 'j':
			opt_json = true;
			break;
		case 'n':
			opt_nodes = true;
			break;
		case 'H':
			fputs(usage_text, stdout);
			return 0;
		default:
			if (optopt)
				error("unknown option '-%c' (see gmemctl --help)",
				      optopt);
			else
				error("unknown option '%s' (see gmemctl --help)",
				      argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		error(optind == argc ? "no command given (status, ps, load, unload; see --help)" :
		      "one command at a time (see gmemctl --help)");
		return EXIT_USAGE;
	}
	cmd = argv[optind];
	if ((opt_json || opt_nodes) && strcmp(cmd, "ps")) {
		error("%s works with ps only", opt_json ? "--json" : "--nodes");
		return EXIT_USAGE;
	}
	if (!strcmp(cmd, "status"))
		return cmd_status();
	if (!strcmp(cmd, "ps"))
		return cmd_ps();
	if (!strcmp(cmd, "load"))
		return cmd_load();
	if (!strcmp(cmd, "unload"))
		return cmd_unload();
	error("unknown command '%s' (status, ps, load, unload; see --help)", cmd);
	return EXIT_USAGE;
}
