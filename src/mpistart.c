/*
 * mpistart.c -- what mrflow asks of the MPI library before MPI_Init, where
 * neither the user nor the site has said.
 *
 * Open MPI opens its "cm" messaging layer at start-up to find out whether a
 * fabric library (libfabric, PSM, PSM2) sees hardware.  On a machine with
 * none that probe costs every run 0.2 s of start-up, and the library then
 * picks its ob1 layer anyway (mpirun -np 2 of an empty MPI program: 0.42 s,
 * 0.21 s with pml ob1; medians of 5 on the 2-vCPU development VM, where a
 * 1 GiB terasort takes 2-3 s).  So, in an Open MPI build, where no RDMA or
 * fabric device exists (/sys/class/infiniband, /dev/hfi1_*, /dev/ipath*,
 * /dev/cxi*), OMPI_MCA_pml is unset and neither the user's nor Open MPI's
 * MCA parameter file (found by configure with ompi_info) chooses a pml,
 * mrflow sets OMPI_MCA_pml=ob1.  On a cluster with such a device nothing
 * changes.  MRFLOW_MPI_DEFAULTS=0 leaves every choice to Open MPI.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "internal.h"

#ifdef OPEN_MPI
#ifndef MRF_OMPI_SYSCONFDIR
#define MRF_OMPI_SYSCONFDIR "/etc/openmpi"
#endif

/* Whether a folder holds an entry whose name starts with prefix. */
static bool has_entry(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    if (!d)
        return false;
    bool found = false;
    struct dirent *e;
    size_t n = strlen(prefix);
    while (!found && (e = readdir(d)))
        found = e->d_name[0] != '.' && strncmp(e->d_name, prefix, n) == 0;
    closedir(d);
    return found;
}

/* Whether an MCA parameter file chooses the pml: "pml = ob1" or "pml = cm"
 * stands; an exclusion that leaves ob1 ("pml = ^ucx", as Debian's own file
 * has) is no choice ob1 would go against. */
static bool file_chooses_pml(const char *path)
{
    FILE *f = path && *path ? fopen(path, "r") : NULL;
    if (!f)
        return false;
    char line[512];
    bool found = false;
    while (!found && fgets(line, sizeof line, f)) {
        const char *p = line + strspn(line, " \t");
        if (strncmp(p, "pml", 3) != 0 || !strchr(" \t=", p[3]))
            continue;
        p += 3 + strspn(p + 3, " \t");
        if (*p++ != '=')
            continue;
        p += strspn(p, " \t");
        found = *p != '^' || strstr(p, "ob1") != NULL;
    }
    fclose(f);
    return found;
}
#endif

static const char *said;

const char *mrf__mpi_defaults_said(void)
{
    return said;
}

void mrf__mpi_defaults(void)
{
#ifdef OPEN_MPI
    const char *off = getenv("MRFLOW_MPI_DEFAULTS");
    if (off && strcmp(off, "0") == 0) {
        said = "MRFLOW_MPI_DEFAULTS=0: Open MPI chooses its pml";
        return;
    }
    if (getenv("OMPI_MCA_pml")) {
        said = "OMPI_MCA_pml given: Open MPI's pml as chosen";
        return;
    }
    if (has_entry("/sys/class/infiniband", "") || has_entry("/dev", "hfi1_") ||
        has_entry("/dev", "ipath") || has_entry("/dev", "cxi")) {
        said = "a fabric device here: Open MPI chooses its pml";
        return;
    }
    char user[4096] = "";
    const char *home = getenv("HOME");
    if (home)
        snprintf(user, sizeof user, "%s/.openmpi/mca-params.conf", home);
    const char *site = getenv("OMPI_MCA_mca_base_param_files"); /* replaces both */
    said = "an MCA parameter file chooses the pml";
    if (site || file_chooses_pml(user) ||
        file_chooses_pml(MRF_OMPI_SYSCONFDIR "/openmpi-mca-params.conf"))
        return;
    setenv("OMPI_MCA_pml", "ob1", 0);
    said = "no fabric device and no pml chosen: OMPI_MCA_pml=ob1 (MRFLOW_MPI_DEFAULTS=0 to "
           "leave it to Open MPI)";
#endif
}
